"""MobileViTV2 x0.5, x1.0, x1.5 and x2.0 (Mehta and Rastegari, 2022, "Separable self-attention").

The graph of PaddleClas 2.6.0 ``model_zoo/mobilevit_v2.py`` (a port of apple/ml-cvnets): a
3x3 stride-2 conv-BN-SiLU stem; stage 1 one inverted residual, stage 2 two (the first with
stride 2); stages 3-5 one stride-2 inverted residual and a MobileViTV2 block of 2, 4 and 3
linear-attention layers (2x2 patches); global average pooling and the classifier (no
dropout, no widening conv). Inverted residuals expand by 2 to a multiple of 8. The width
multiplier ``w`` sets every width through ``make_divisible`` as PaddleClas's
``get_configuration`` does. Blocks: :mod:`paddlehub_cls.models._mobilevit`.

The released weights expect RGB input scaled to [0, 1] (no mean/std; registry ``preprocess``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from paddlehub_cls.models._mobilevit import LinearMixBlock, MobileViTNet, build_net
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import make_divisible


def v2_specs(width: float, style: str, stage2_blocks: int = 2) -> Tuple[int, List[Dict[str, Any]]]:
    """Stem width and stage specs of the v2 graph with width multiplier ``width``.

    ``style`` is the MobileViT block's (``"v2"``, or ``"v3"`` for the v2-style MobileViTV3).
    """
    stem = make_divisible(max(16, min(64, 32 * width)), 8, min_value=16)
    specs = [
        {"out": make_divisible(64 * width, 16), "blocks": 1, "stride": 1, "expansion": 2},
        {"out": make_divisible(128 * width, 8), "blocks": stage2_blocks, "stride": 2, "expansion": 2},
    ]
    for out, attn, depth in ((256, 128, 2), (384, 192, 4), (512, 256, 3)):
        mixer = {"width": make_divisible(attn * width, 8), "depth": depth, "style": style}
        specs.append(
            {"out": make_divisible(out * width, 8), "blocks": 1, "stride": 2, "expansion": 2, "mixer": mixer}
        )
    return stem, specs


def _mobilevit_v2(width: float, num_classes: int, in_chans: int, kwargs: Any) -> MobileViTNet:
    stem, specs = v2_specs(width, "v2")
    return build_net(stem, specs, 0, LinearMixBlock, True, num_classes, in_chans, **kwargs)


@register_model
def mobilevit_v2_x0_5(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV2 x0.5: stages 32-64-128-192-256, attention widths 64-96-128."""
    return _mobilevit_v2(0.5, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v2_x1_0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV2 x1.0: stages 64-128-256-384-512, attention widths 128-192-256."""
    return _mobilevit_v2(1.0, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v2_x1_5(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV2 x1.5: stages 96-192-384-576-768, attention widths 192-288-384."""
    return _mobilevit_v2(1.5, num_classes, in_chans, kwargs)


@register_model
def mobilevit_v2_x2_0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViTNet:
    """MobileViTV2 x2.0: stages 128-256-512-768-1024, attention widths 256-384-512."""
    return _mobilevit_v2(2.0, num_classes, in_chans, kwargs)
