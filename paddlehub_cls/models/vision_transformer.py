"""Vision Transformer (Dosovitskiy et al., 2020), as PaddleClas 2.6.0 ``model_zoo/vision_transformer.py``.

A strided-conv patch embedding, a class token, learned position embeddings, ``depth``
pre-norm blocks (:mod:`paddlehub_cls.models._transformer`), a final LayerNorm and a
linear head on the class token. The PaddleClas builders differ in more than width:

- ``ViT_small_patch16_224`` is not the paper's ViT-S: width 768, 8 blocks of 8 heads,
  MLP ratio 3, no qkv bias, LayerNorm eps 1e-5 and logits scaled by ``768 ** -0.5``
  (not ``head_dim ** -0.5``), the settings of the early timm ``vit_small_patch16_224``.
- every other builder has a qkv bias and LayerNorm eps 1e-6.

``forward_features`` returns the normalised tokens ``(N, 1 + H*W, C)``, class token first
(as timm's ViT does): the class token that the head reads is not part of any spatial map.
``features_only`` gives NCHW maps of the patch tokens after three blocks (at 1/4, 1/2, 3/4
depth) and after the final norm, all at stride ``patch_size``. An input whose grid differs
from the trained one gets its position embeddings resized bicubically (the weights were
trained, and are verified, at the native size only).
"""

from __future__ import annotations

from typing import Any, List, Optional

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import (
    Block,
    PatchEmbed,
    TokensToMap,
    create_token,
    resize_position_table,
)


def tap_blocks(depth: int) -> List[int]:
    """Blocks whose outputs are ``features_only`` stages (the final norm's output is the last)."""
    return [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1]


class VisionTransformer(ClassifierNet):
    """ViT with a class token (and ``num_prefix_tokens - 1`` more prefix tokens in subclasses).

    Args:
        img_size: trained input side; fixes the position table (``(img_size // patch_size) ** 2 + prefix``).
        patch_size: patch side, the stride of every feature map.
        embed_dim: token width.
        depth: blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        qkv_bias: bias on the qkv projection.
        qk_scale: attention logits scale (default ``head_dim ** -0.5``).
        epsilon: LayerNorm epsilon.
        drop_rate: dropout after the position embedding, in the MLPs and projections (training only).
        drop_path_rate: stochastic depth, rising linearly to this over the blocks (training only).
        num_classes: classifier outputs; 0 returns the pooled (class token) features.
        in_chans: input channels.
    """

    classifier_attrs = ("head",)
    first_conv = "patch_embed.proj"
    #: tokens before the patch tokens: the class token
    num_prefix_tokens = 1

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        epsilon: float = 1e-5,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = create_token(self, (1, self.grid_size**2 + self.num_prefix_tokens, embed_dim))
        self.cls_token = create_token(self, (1, 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.LayerList(
            [
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias, qk_scale, epsilon, drop_rate, 0.0, rate)
                for rate in rates
            ]
        )
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        self._tap_at = {b: i for i, b in enumerate(tap_blocks(depth))}
        self.feature_taps = nn.LayerList(
            [TokensToMap(self.num_prefix_tokens) for _ in range(len(self._tap_at) + 1)]
        )
        self.feature_info = [
            {"module": f"feature_taps.{i}", "num_chs": embed_dim, "reduction": patch_size}
            for i in range(len(self.feature_taps))
        ]
        self.num_features = embed_dim
        self._build_heads(num_classes)

    def _build_heads(self, num_classes: int) -> None:
        self.head = make_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def prefix_tokens(self, n: int) -> List[paddle.Tensor]:
        """The learned tokens put before the patch tokens, expanded to batch ``n``."""
        return [self.cls_token.expand([n, -1, -1])]

    def position_embedding(self, grid: tuple) -> paddle.Tensor:
        """The position table for a ``grid`` of patches, resized bicubically if it is not the trained one."""
        return resize_position_table(self.pos_embed, self.num_prefix_tokens, self.grid_size, grid)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Normalised tokens ``(N, prefix + H*W, C)``; the class token is first."""
        x, grid = self.patch_embed(x)
        x = paddle.concat([*self.prefix_tokens(x.shape[0]), x], axis=1)
        x = self.pos_drop(x + self.position_embedding(grid))
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._tap_at:
                self.feature_taps[self._tap_at[i]](x, grid)
        x = self.norm(x)
        self.feature_taps[-1](x, grid)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """The class token, then the classifier (unless ``pre_logits``)."""
        x = x[:, 0]
        return x if pre_logits else self.head(x)


def _vit(num_classes: int, in_chans: int, kwargs: Any, **arch: Any) -> VisionTransformer:
    return VisionTransformer(num_classes=num_classes, in_chans=in_chans, **arch, **kwargs)


# The paper's ViT-B/L settings as PaddleClas builds them: qkv bias and LayerNorm eps 1e-6.
_BASE = dict(embed_dim=768, depth=12, num_heads=12, qkv_bias=True, epsilon=1e-6)
_LARGE = dict(embed_dim=1024, depth=24, num_heads=16, qkv_bias=True, epsilon=1e-6)


@register_model
def vit_small_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """PaddleClas's ViT_small_patch16_224: width 768, 8 blocks, 8 heads, MLP x3, scale 768**-0.5."""
    return _vit(
        num_classes,
        in_chans,
        kwargs,
        patch_size=16,
        embed_dim=768,
        depth=8,
        num_heads=8,
        mlp_ratio=3.0,
        qk_scale=768**-0.5,
    )


@register_model
def vit_base_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 at 224."""
    return _vit(num_classes, in_chans, kwargs, patch_size=16, **_BASE)


@register_model
def vit_base_patch16_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 at 384."""
    return _vit(num_classes, in_chans, kwargs, img_size=384, patch_size=16, **_BASE)


@register_model
def vit_base_patch32_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/32 at 384."""
    return _vit(num_classes, in_chans, kwargs, img_size=384, patch_size=32, **_BASE)


@register_model
def vit_large_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-L/16 at 224."""
    return _vit(num_classes, in_chans, kwargs, patch_size=16, **_LARGE)


@register_model
def vit_large_patch16_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-L/16 at 384."""
    return _vit(num_classes, in_chans, kwargs, img_size=384, patch_size=16, **_LARGE)


@register_model
def vit_large_patch32_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-L/32 at 384."""
    return _vit(num_classes, in_chans, kwargs, img_size=384, patch_size=32, **_LARGE)
