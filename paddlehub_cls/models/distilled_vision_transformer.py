"""DeiT (Touvron et al., 2020), as PaddleClas 2.6.0 ``model_zoo/distilled_vision_transformer.py``.

The plain DeiT builders are :class:`~paddlehub_cls.models.vision_transformer.VisionTransformer`
(qkv bias, LayerNorm eps 1e-6). The distilled ones add a distillation token after the
class token (so the position table has two prefix rows) and a second head on it; at
inference, and in training too in PaddleClas's code, the logits are the mean of the two
heads. ``reset_classifier`` replaces both heads; the pooled features (``num_classes=0``,
``pre_logits``) are the mean of the two tokens, the input the averaged heads share when
they are equal.
"""

from __future__ import annotations

from typing import Any, List

import paddle

from paddlehub_cls.models._base import check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import create_token
from paddlehub_cls.models.vision_transformer import VisionTransformer


class DistilledVisionTransformer(VisionTransformer):
    """ViT with a class and a distillation token and one head on each (arguments as the base class)."""

    classifier_attrs = ("head", "head_dist")
    num_prefix_tokens = 2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dist_token = create_token(self, (1, 1, self.num_features))

    def _build_heads(self, num_classes: int) -> None:
        self.head = make_linear(self.num_features, num_classes)
        self.head_dist = make_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def prefix_tokens(self, n: int) -> List[paddle.Tensor]:
        return [self.cls_token.expand([n, -1, -1]), self.dist_token.expand([n, -1, -1])]

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Mean of the two heads' logits; ``pre_logits``: mean of the two tokens."""
        if pre_logits or self.num_classes == 0:
            return (x[:, 0] + x[:, 1]) / 2
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2

    def reset_classifier(self, num_classes: int) -> None:
        """Replace both heads with fresh ``num_classes``-way ones (0: pooled features)."""
        check_num_classes(num_classes)
        self._build_heads(num_classes)


def _deit(num_classes: int, in_chans: int, kwargs: Any, distilled: bool, **arch: Any) -> VisionTransformer:
    cls = DistilledVisionTransformer if distilled else VisionTransformer
    return cls(
        num_classes=num_classes,
        in_chans=in_chans,
        patch_size=16,
        qkv_bias=True,
        epsilon=1e-6,
        **arch,
        **kwargs,
    )


_TINY = dict(embed_dim=192, depth=12, num_heads=3)
_SMALL = dict(embed_dim=384, depth=12, num_heads=6)
_BASE = dict(embed_dim=768, depth=12, num_heads=12)


@register_model
def deit_tiny_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """DeiT-Ti/16 at 224."""
    return _deit(num_classes, in_chans, kwargs, False, **_TINY)


@register_model
def deit_small_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """DeiT-S/16 at 224."""
    return _deit(num_classes, in_chans, kwargs, False, **_SMALL)


@register_model
def deit_base_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """DeiT-B/16 at 224."""
    return _deit(num_classes, in_chans, kwargs, False, **_BASE)


@register_model
def deit_base_patch16_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """DeiT-B/16 at 384."""
    return _deit(num_classes, in_chans, kwargs, False, img_size=384, **_BASE)


@register_model
def deit_tiny_distilled_patch16_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> VisionTransformer:
    """DeiT-Ti/16 with a distillation token, at 224."""
    return _deit(num_classes, in_chans, kwargs, True, **_TINY)


@register_model
def deit_small_distilled_patch16_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> VisionTransformer:
    """DeiT-S/16 with a distillation token, at 224."""
    return _deit(num_classes, in_chans, kwargs, True, **_SMALL)


@register_model
def deit_base_distilled_patch16_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> VisionTransformer:
    """DeiT-B/16 with a distillation token, at 224."""
    return _deit(num_classes, in_chans, kwargs, True, **_BASE)


@register_model
def deit_base_distilled_patch16_384(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> VisionTransformer:
    """DeiT-B/16 with a distillation token, at 384."""
    return _deit(num_classes, in_chans, kwargs, True, img_size=384, **_BASE)
