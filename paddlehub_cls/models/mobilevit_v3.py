"""MobileViTV3 (Wadekar and Chaurasia, 2022): v1-style XXS/XS/S (and their L2 variants) and
v2-style x0.5/x0.75/x1.0.

The graph of PaddleClas 2.6.0 ``model_zoo/mobilevit_v3.py``. Both styles keep the stem and
stages of their parent (:mod:`~paddlehub_cls.models.mobilevit`, :mod:`~paddlehub_cls.models.mobilevit_v2`;
stage 2 has three inverted residuals in the v1 style, expanded to a multiple of 8) and change
the MobileViT block: the local 3x3 conv is depthwise, the fusion reads the block's
pre-transformer map instead of its input, and the block's input is added to its output
(:class:`~paddlehub_cls.models._mobilevit.TransformerMixBlock` and
:class:`~paddlehub_cls.models._mobilevit.LinearMixBlock` with ``style="v3"``). The v1 style ends
in a 1x1 conv-BN-SiLU to ``min(4 * C, 960)`` channels; both put dropout 0.1 (upscale-in-train:
the identity at inference) before the classifier. ``_L2`` variants have 2 instead of 4
transformer layers in stage 4.

The released weights expect RGB input scaled to [0, 1] (no mean/std; registry ``preprocess``).
"""

from __future__ import annotations

from typing import Any

from paddlehub_cls.models._mobilevit import LinearMixBlock, MobileViTNet, TransformerMixBlock, build_net
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.mobilevit_v2 import v2_specs

# v1 style: name -> (stage 1-2 widths, stage 3-5 (out, transformer width), expansion)
V1_STYLE = {
    "xxs": ((16, 24), ((64, 64), (80, 80), (128, 96)), 2),
    "xs": ((32, 48), ((96, 96), (160, 120), (160, 144)), 4),
    "s": ((32, 64), ((128, 144), (256, 192), (320, 240)), 4),
}
_STEM = 16
_HEAD_CAP = 960


def _v1_style(size: str, stage4_depth: int, num_classes: int, in_chans: int, kwargs: Any) -> MobileViTNet:
    (c1, c2), mixers, t = V1_STYLE[size]
    specs = [
        {"out": c1, "blocks": 1, "stride": 1, "expansion": t},
        {"out": c2, "blocks": 3, "stride": 2, "expansion": t},
    ]
    for (out, width), depth in zip(mixers, (2, stage4_depth, 3)):
        mixer = {"width": width, "depth": depth, "style": "v3"}
        specs.append({"out": out, "blocks": 1, "stride": 2, "expansion": t, "mixer": mixer})
    head = min(4 * mixers[-1][0], _HEAD_CAP)
    kwargs.setdefault("drop_rate", 0.1)
    return build_net(_STEM, specs, head, TransformerMixBlock, True, num_classes, in_chans, **kwargs)


def _v2_style(width: float, num_classes: int, in_chans: int, kwargs: Any) -> MobileViTNet:
    stem, specs = v2_specs(width, "v3")
    kwargs.setdefault("drop_rate", 0.1)
    return build_net(stem, specs, 0, LinearMixBlock, True, num_classes, in_chans, **kwargs)


@register_model
def mobilevit_v3_xxs(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-XXS: v1 style, stages 16-24-64-80-128, transformers 64-80-96, head 512."""
    return _v1_style("xxs", 4, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_xs(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-XS: v1 style, stages 32-48-96-160-160, transformers 96-120-144, head 640."""
    return _v1_style("xs", 4, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-S: v1 style, stages 32-64-128-256-320, transformers 144-192-240, head 960."""
    return _v1_style("s", 4, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_xxs_l2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-XXS with 2 transformer layers in stage 4."""
    return _v1_style("xxs", 2, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_xs_l2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-XS with 2 transformer layers in stage 4."""
    return _v1_style("xs", 2, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_s_l2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3-S with 2 transformer layers in stage 4."""
    return _v1_style("s", 2, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_x0_5(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3 x0.5: v2 style, stages 32-64-128-192-256, attention widths 64-96-128."""
    return _v2_style(0.5, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_x0_75(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3 x0.75: v2 style, stages 48-96-192-288-384, attention widths 96-144-192."""
    return _v2_style(0.75, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v3_x1_0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV3 x1.0: v2 style, stages 64-128-256-384-512, attention widths 128-192-256."""
    return _v2_style(1.0, num_classes, in_chans, kwargs)
