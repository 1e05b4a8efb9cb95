"""Transformer in Transformer, small and base (Han et al., 2021), as PaddleClas 2.6.0 ``model_zoo/tnt.py``.

Each 16x16 patch is cut out of the image and embedded as 4x4 "pixel" tokens by a 7x7
stride-4 conv (padding 3, applied to the patch alone) plus a learned per-pixel position.
The pixel tokens of a patch are flattened, layer-normalised, projected and normalised
again into the patch token; a class token and a patch position table (trained for the 14x14
grid of a 224 input) are added. Every block first runs an inner transformer (attention
with 4 heads and an MLP of ratio 4) over the pixel tokens of each patch, adds the
projection of the flattened pixel tokens (LayerNorm, bias-free linear, LayerNorm) to the
patch tokens, then runs an outer transformer over the patch tokens. Attention projects q
and k with one linear and v with another, without biases. Exact GELU; LayerNorm epsilon 1e-5.

PaddleClas refuses any input but 224x224; ours resizes the patch position table
bicubically for another grid, as our ViT does. ``forward_features`` returns the normalised
patch tokens ``(N, 1 + H*W, C)``, class token first; ``features_only`` gives the patch-token
maps after blocks 3, 6 and 9 and after the final norm, all at stride 16.

State-dict keys are PaddleClas's: ``pixel_embed.proj.*``, ``pixel_pos``, ``patch_pos``,
``cls_token``, ``{norm1_proj,proj,norm2_proj}.*``, ``blocks.<i>.{norm_in,attn_in,norm_mlp_in,
mlp_in,norm1_proj,proj,norm2_proj,norm_out,attn_out,norm_mlp,mlp}.*``, ``norm.*``, ``head.*``.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, check_rate
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import (
    Mlp,
    TokensToMap,
    create_token,
    make_linear_tn,
    resize_position_table,
)
from paddlehub_cls.models.layers import DropPath

_PATCH = 16
_PIXEL_STRIDE = 4
_NATIVE_GRID = 14
# name -> (patch token width, pixel token width, outer heads)
TNT_CONFIGS: Dict[str, Tuple[int, int, int]] = {"small": (384, 24, 6), "base": (640, 40, 10)}


class TNTAttention(nn.Layer):
    """Multi-head attention with a joint ``qk`` projection and a separate ``v`` one (no biases)."""

    def __init__(self, dim: int, heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qk = make_linear_tn(dim, 2 * dim, bias=False)
        self.v = make_linear_tn(dim, dim, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = make_linear_tn(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        n = x.shape[1]
        q, k = self.qk(x).reshape([0, n, 2, self.heads, self.head_dim]).transpose([2, 0, 3, 1, 4]).unbind(0)
        v = self.v(x).reshape([0, n, self.heads, self.head_dim]).transpose([0, 2, 1, 3])
        # k transposed explicitly, as PaddleClas (matmul's transpose_y kernel rounds differently).
        attn = nn.functional.softmax(paddle.matmul(q, k.transpose([0, 1, 3, 2])) * self.scale, axis=-1)
        out = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(out.reshape([0, n, out.shape[2] * out.shape[3]])))


class TNTBlock(nn.Layer):
    """Inner transformer on the pixel tokens, their projection added to the patch tokens,
    then the outer transformer on the patch tokens."""

    def __init__(
        self, dim: int, in_dim: int, num_pixel: int, heads: int, drop_path: float, drop: float
    ) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(in_dim)
        self.attn_in = TNTAttention(in_dim, 4, proj_drop=drop)
        self.norm_mlp_in = nn.LayerNorm(in_dim)
        self.mlp_in = Mlp(in_dim, 4 * in_dim, drop=drop)
        self.norm1_proj = nn.LayerNorm(in_dim * num_pixel)
        self.proj = make_linear_tn(in_dim * num_pixel, dim, bias=False)
        # PaddleClas sizes this norm in_dim * num_pixel; it equals dim in both models.
        self.norm2_proj = nn.LayerNorm(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.attn_out = TNTAttention(dim, heads, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, drop=drop)

    def forward(self, pixels: paddle.Tensor, patches: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        pixels = pixels + self.drop_path(self.attn_in(self.norm_in(pixels)))
        pixels = pixels + self.drop_path(self.mlp_in(self.norm_mlp_in(pixels)))
        n, length, dim = patches.shape
        flat = self.norm1_proj(pixels.reshape([n, length - 1, -1]))
        patches = paddle.concat([patches[:, :1], patches[:, 1:] + self.norm2_proj(self.proj(flat))], axis=1)
        patches = patches + self.drop_path(self.attn_out(self.norm_out(patches)))
        return pixels, patches + self.drop_path(self.mlp(self.norm_mlp(patches)))


class PixelEmbed(nn.Layer):
    """Each 16x16 patch (a remainder of the image is dropped) through a 7x7 stride-4 conv:
    ``(N * patches, 16, in_dim)`` pixel tokens and the patch grid."""

    def __init__(self, in_chans: int, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.proj = nn.Conv2D(in_chans, in_dim, 7, stride=_PIXEL_STRIDE, padding=3)

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, Tuple[int, int]]:
        c = x.shape[1]
        gh, gw = x.shape[2] // _PATCH, x.shape[3] // _PATCH
        # The same patch order and pixel layout as F.unfold(x, 16, 16), which PaddleClas uses.
        x = x[:, :, : gh * _PATCH, : gw * _PATCH].reshape([0, c, gh, _PATCH, gw, _PATCH])
        x = x.transpose([0, 2, 4, 1, 3, 5]).reshape([-1, c, _PATCH, _PATCH])
        x = self.proj(x)
        return x.reshape([-1, self.in_dim, x.shape[2] * x.shape[3]]).transpose([0, 2, 1]), (gh, gw)


class TNT(ClassifierNet):
    """Transformer in Transformer of given widths (depth 12, patch 16, pixel stride 4).

    Args:
        embed_dim: patch token width.
        in_dim: pixel token width.
        num_heads: heads of the outer (patch) attention; the inner one has 4.
        num_classes: classifier outputs; 0 returns the normalised class token.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 (training only).
        drop_rate: dropout after the position tables, in the MLPs and attention projections (training only).
    """

    classifier_attrs = ("head",)
    first_conv = "pixel_embed.proj"
    #: tokens before the patch tokens in ``forward_features``: the class token
    num_prefix_tokens = 1

    def __init__(
        self,
        embed_dim: int,
        in_dim: int,
        num_heads: int,
        depth: int = 12,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_in_chans(in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        check_num_classes(num_classes)
        num_pixel = (_PATCH // _PIXEL_STRIDE) ** 2
        self.pixel_embed = PixelEmbed(in_chans, in_dim)
        self.norm1_proj = nn.LayerNorm(num_pixel * in_dim)
        self.proj = make_linear_tn(num_pixel * in_dim, embed_dim)
        self.norm2_proj = nn.LayerNorm(embed_dim)
        self.cls_token = create_token(self, (1, 1, embed_dim))
        self.patch_pos = create_token(self, (1, _NATIVE_GRID**2 + 1, embed_dim))
        self.pixel_pos = create_token(self, (1, num_pixel, in_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.LayerList(
            [TNTBlock(embed_dim, in_dim, num_pixel, num_heads, rates[i], drop_rate) for i in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        # Token maps after every quarter of the blocks (the last after the final norm), as our ViT.
        self._tap_at = {depth * q // 4 - 1: q - 1 for q in (1, 2, 3)}
        self.feature_taps = nn.LayerList([TokensToMap(1) for _ in range(4)])
        self.feature_info = [
            {"module": f"feature_taps.{i}", "num_chs": embed_dim, "reduction": _PATCH} for i in range(4)
        ]
        self.num_features = embed_dim
        self.num_classes = num_classes
        self.head = make_linear_tn(embed_dim, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Normalised patch tokens ``(N, 1 + H*W, C)``; the class token is first."""
        n = x.shape[0]
        pixels, grid = self.pixel_embed(x)
        pixels = pixels + self.pixel_pos
        patches = self.norm2_proj(self.proj(self.norm1_proj(pixels.reshape([n, grid[0] * grid[1], -1]))))
        patches = paddle.concat([self.cls_token.expand([n, -1, -1]), patches], axis=1)
        patches = self.pos_drop(patches + resize_position_table(self.patch_pos, 1, _NATIVE_GRID, grid))
        for i, block in enumerate(self.blocks):
            pixels, patches = block(pixels, patches)
            if i in self._tap_at:
                self.feature_taps[self._tap_at[i]](patches, grid)
        patches = self.norm(patches)
        self.feature_taps[-1](patches, grid)
        return patches

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """The class token, then the classifier (unless ``pre_logits``)."""
        x = x[:, 0]
        return x if pre_logits else self.head(x)


def _tnt(size: str, num_classes: int, in_chans: int, kwargs: Any) -> TNT:
    embed_dim, in_dim, heads = TNT_CONFIGS[size]
    return TNT(embed_dim, in_dim, heads, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def tnt_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> TNT:
    """TNT-S: patch tokens 384 wide (6 heads), pixel tokens 24 wide, 12 blocks."""
    return _tnt("small", num_classes, in_chans, kwargs)


@register_model
def tnt_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> TNT:
    """TNT-B: patch tokens 640 wide (10 heads), pixel tokens 40 wide, 12 blocks."""
    return _tnt("base", num_classes, in_chans, kwargs)
