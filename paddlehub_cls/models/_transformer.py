"""Blocks shared by the transformer families (ViT, DeiT, Swin, and later CSWin/PVT/Twins).

The layers follow PaddleClas 2.6.0 ``model_zoo/vision_transformer.py`` (``Mlp``,
``Attention``, ``Block``, ``PatchEmbed``, ``DropPath``), which every PaddleClas
transformer imports, so the state_dict names below are those of PaddleClas's files:
``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``, ``norm1``, ``norm2``,
``patch_embed.proj``. Parameters start from PaddleClas's initialisers (truncated
normal, std 0.02, for linear weights and tokens; zero biases) through ``ParamAttr``
initialisers, so they stay deferred under ``paddle.LazyGuard``.

Token tensors are ``(N, L, C)``. :class:`TokensToMap` turns a token grid into an
NCHW map; the families call one per ``feature_info`` stage, which is what
``features_only`` captures.
"""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models.layers import DropPath, make_act

#: PaddleClas's ``trunc_normal_`` (``TruncatedNormal(std=.02)``), used for weights and tokens.
INIT_STD = 0.02


def trunc_normal_attr() -> paddle.ParamAttr:
    """Deferred truncated-normal (std 0.02) initialiser of a weight or token."""
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=INIT_STD))


def make_linear_tn(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with PaddleClas's transformer init: truncated-normal weight, zero bias."""
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False
    return nn.Linear(in_features, out_features, weight_attr=trunc_normal_attr(), bias_attr=bias_attr)


def create_token(layer: nn.Layer, shape: Tuple[int, ...]) -> paddle.Tensor:
    """A learnable token or position table of ``shape``, truncated-normal initialised."""
    return layer.create_parameter(
        shape=list(shape), default_initializer=nn.initializer.TruncatedNormal(std=INIT_STD)
    )


def resize_position_table(
    table: paddle.Tensor, prefix: int, side: int, grid: Tuple[int, int]
) -> paddle.Tensor:
    """A ``(1, prefix + side**2, C)`` position table for a ``grid`` of patches.

    The trained table as it is for a ``side`` x ``side`` grid; otherwise its patch part resized
    bicubically to ``grid`` (the ``prefix`` leading entries, e.g. the class token's, kept).
    """
    if tuple(grid) == (side, side):
        return table
    head, patches = table[:, :prefix], table[:, prefix:]
    dim = patches.shape[-1]
    patches = patches.reshape([1, side, side, dim]).transpose([0, 3, 1, 2])
    patches = nn.functional.interpolate(patches, size=list(grid), mode="bicubic", align_corners=False)
    patches = patches.transpose([0, 2, 3, 1]).reshape([1, grid[0] * grid[1], dim])
    return paddle.concat([head, patches], axis=1)


class Mlp(nn.Layer):
    """``fc1`` -> activation (exact GELU by default) -> ``fc2``, with dropout after each."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = make_linear_tn(dim, hidden)
        self.act = make_act(act)
        self.fc2 = make_linear_tn(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Layer):
    """Multi-head self-attention over ``(N, L, C)`` tokens with one ``qkv`` projection.

    Args:
        dim: token width.
        num_heads: heads; ``dim`` must divide by it.
        qkv_bias: whether ``qkv`` has a bias.
        qk_scale: logits scale; default ``head_dim ** -0.5`` (PaddleClas's ViT_small passes
            ``768 ** -0.5``, which our builder reproduces).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} does not divide into {num_heads} heads")
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = make_linear_tn(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = make_linear_tn(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def logits(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """Scaled attention logits ``(N, heads, L, L)`` and the values ``(N, heads, L, head_dim)``."""
        length, dim = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, length, 3, self.num_heads, dim // self.num_heads])
        q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)
        return paddle.matmul(q, k, transpose_y=True) * self.scale, v

    def attend(self, logits: paddle.Tensor, v: paddle.Tensor) -> paddle.Tensor:
        """Softmax over the logits, weighted values, heads merged, output projection."""
        attn = self.attn_drop(nn.functional.softmax(logits, axis=-1))
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(x.reshape([-1, x.shape[1], x.shape[2] * x.shape[3]])))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.attend(*self.logits(x))


class Block(nn.Layer):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        epsilon: float = 1e-5,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        attention: Optional[nn.Layer] = None,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.attn = attention or Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        # MobileViT's transformers use SiLU ("swish") in the MLP; the ViT family GELU.
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act, drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Non-overlapping ``patch_size`` patches projected by a strided conv, as ``(N, L, C)`` tokens.

    Args:
        patch_size: patch side (conv kernel and stride).
        in_chans: input channels.
        embed_dim: token width.
        norm: LayerNorm the tokens (Swin's ``patch_norm``).
        pad: zero-pad the bottom/right of an input not divisible by ``patch_size`` (Swin);
            otherwise the conv drops the remainder (ViT).
    """

    def __init__(
        self, patch_size: int, in_chans: int, embed_dim: int, norm: bool = False, pad: bool = False
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.pad = pad
        # Paddle's default conv init, as PaddleClas (its _init_weights leaves convs alone).
        self.proj = nn.Conv2D(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, Tuple[int, int]]:
        """Tokens and the ``(height, width)`` of their grid."""
        if self.pad:
            p = self.patch_size
            h, w = x.shape[2], x.shape[3]
            if h % p or w % p:
                x = nn.functional.pad(x, [0, (p - w % p) % p, 0, (p - h % p) % p])
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose([0, 2, 1])
        if self.norm is not None:
            x = self.norm(x)
        return x, grid


class TokensToMap(nn.Layer):
    """``(N, prefix + H*W, C)`` tokens -> ``(N, C, H, W)`` map, dropping ``prefix`` leading tokens.

    Has no parameters. Each ``feature_info`` stage of a transformer names one of these,
    so ``features_only`` (which hooks the named sublayers) receives NCHW maps.
    """

    def __init__(self, prefix: int = 0) -> None:
        super().__init__()
        self.prefix = prefix

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        if self.prefix:
            x = x[:, self.prefix :]
        return x.transpose([0, 2, 1]).reshape([-1, x.shape[2], grid[0], grid[1]])
