"""MobileViT v1 XXS, XS and S (Mehta and Rastegari, 2022).

The graph of PaddleClas 2.6.0 ``model_zoo/mobilevit.py`` (a port of apple/ml-cvnets): a 3x3
stride-2 conv-BN-SiLU stem; stage 1 one inverted residual, stage 2 three (the first with
stride 2); stages 3-5 one stride-2 inverted residual and a MobileViT block of 2, 4 and 3
transformer layers (4 heads, 2x2 patches); a 1x1 conv-BN-SiLU, global average pooling,
dropout 0.1 (upscale-in-train: the identity at inference) and the classifier. Every
activation is SiLU; inverted residuals expand by 2 (XXS) or 4 (XS, S) to ``round(in * t)``.
Blocks: :mod:`paddlehub_cls.models._mobilevit`.

The released weights expect **BGR** input scaled to [0, 1] (no mean/std): PaddleClas's eval
config decodes with ``to_rgb: False`` (registry ``preprocess``).
"""

from __future__ import annotations

from typing import Any

from paddlehub_cls.models._mobilevit import MobileViTNet, TransformerMixBlock, build_net
from paddlehub_cls.models._registry import register_model

# name -> (stage widths dims[1..7] as PaddleClas lists them, transformer widths, expansion, head width)
MOBILEVIT_CONFIGS = {
    "xxs": ((16, 24, 24, 24, 48, 64, 80), (64, 80, 96), 2, 320),
    "xs": ((32, 48, 48, 48, 64, 80, 96), (96, 120, 144), 4, 384),
    "s": ((32, 64, 64, 64, 96, 128, 160), (144, 192, 240), 4, 640),
}
_DEPTHS = (2, 4, 3)
_STEM = 16


def _mobilevit(size: str, num_classes: int, in_chans: int, kwargs: Any) -> MobileViTNet:
    dims, widths, t, head = MOBILEVIT_CONFIGS[size]
    # PaddleClas's dims[2..4] are three single blocks of stage 2; they are equal in every size.
    specs = [
        {"out": dims[0], "blocks": 1, "stride": 1, "expansion": t},
        {"out": dims[1], "blocks": 3, "stride": 2, "expansion": t},
    ]
    for out, width, depth in zip(dims[4:], widths, _DEPTHS):
        mixer = {"width": width, "depth": depth, "style": "v1"}
        specs.append({"out": out, "blocks": 1, "stride": 2, "expansion": t, "mixer": mixer})
    kwargs.setdefault("drop_rate", 0.1)
    return build_net(_STEM, specs, head, TransformerMixBlock, False, num_classes, in_chans, **kwargs)


@register_model
def mobilevit_xxs(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViT-XXS: stages 16-24-48-64-80, transformers 64-80-96, expansion 2, head 320."""
    return _mobilevit("xxs", num_classes, in_chans, kwargs)


@register_model
def mobilevit_xs(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViT-XS: stages 32-48-64-80-96, transformers 96-120-144, expansion 4, head 384."""
    return _mobilevit("xs", num_classes, in_chans, kwargs)


@register_model
def mobilevit_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViT-S: stages 32-64-96-128-160, transformers 144-192-240, expansion 4, head 640."""
    return _mobilevit("s", num_classes, in_chans, kwargs)
