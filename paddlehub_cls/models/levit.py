"""LeViT 128S, 128, 192, 256 and 384 (Graham et al., 2021), as PaddleClas 2.6.0 ``model_zoo/levit.py``.

A stem of four 3x3 stride-2 conv-BN (hardswish between them) turns the image into a
grid of 1/16 tokens, then three stages of residual attention and MLP blocks; between
stages an attention block whose queries come from every second token of every second
row shrinks the grid (``(n - 1) // 2 + 1`` a side) and widens the tokens, followed by a
residual MLP. Every linear layer is a bias-free linear followed by BatchNorm over the
token width (``Linear_BN``); the activations are hardswish. The head averages the tokens,
applies BatchNorm1D and a linear classifier (PaddleClas's ``BN_Linear``; its distillation
head is off in every builder, so the weights have none).

Attention adds a learned bias per head and per relative offset ``(|dy|, |dx|)`` between a
query and a key, looked up through ``attention_bias_idxs``: a persistable buffer built for
the 224 input (grids 14, 7, 4) that PaddleClas's files hold, so we load it too. Queries
and keys, and values, are split per head from one projection (``q, k, v`` interleaved head
by head, as PaddleClas). An input whose grid is smaller than the native one (e.g.
160x192 -> 10x12) uses the same table, indexed for that grid; a larger one has offsets the
table does not hold and is refused.

What we do not copy: in training PaddleClas's ``Residual`` with a drop rate adds the
random keep mask to the input instead of the masked branch (``paddle.add(x, y)``); ours
is stochastic depth. Inference is unaffected.

``forward_features`` returns the last token grid as an NCHW map; ``features_only`` gives
the stem's map and the output of each stage (before its subsampling attention) at strides
16, 16, 32, 64 (a side of ``n`` tokens becomes ``(n - 1) // 2 + 1``: 14, 7, 4 at 224).
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, check_rate
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import TokensToMap, make_linear_tn
from paddlehub_cls.models.layers import ConvBNAct, DropPath

_NATIVE_SIDE = 224
_PATCH = 16
# name -> (widths per stage, key width, heads per stage, blocks per stage)
LEVIT_CONFIGS: Dict[str, Tuple[Tuple[int, ...], int, Tuple[int, ...], Tuple[int, ...]]] = {
    "128s": ((128, 256, 384), 16, (4, 6, 8), (2, 3, 4)),
    "128": ((128, 256, 384), 16, (4, 8, 12), (4, 4, 4)),
    "192": ((192, 288, 384), 32, (3, 5, 6), (4, 4, 4)),
    "256": ((256, 384, 512), 32, (4, 6, 8), (4, 4, 4)),
    "384": ((384, 512, 768), 32, (6, 9, 12), (4, 4, 4)),
}


def bias_index(table_side: int, grid: Tuple[int, int], stride: int) -> np.ndarray:
    """``(queries, keys)`` int64 index into a ``table_side**2`` bias table of offsets ``(|dy|, |dx|)``.

    Queries sit on every ``stride``-th row and column of the ``grid`` of keys. PaddleClas
    numbers the offsets in order of first appearance over the native grid, which puts
    ``(dy, dx)`` at ``dy * table_side + dx`` (the first query, at the origin, meets them all).
    """
    h, w = grid
    if h > table_side or w > table_side:
        raise ValueError(
            f"LeViT's attention biases cover grids up to {table_side}x{table_side} tokens, got {h}x{w}; "
            f"use an input of at most {_NATIVE_SIDE}x{_NATIVE_SIDE}"
        )
    queries = itertools.product(range(0, h, stride), range(0, w, stride))
    keys = list(itertools.product(range(h), range(w)))
    idx = [abs(qy - ky) * table_side + abs(qx - kx) for qy, qx in queries for ky, kx in keys]
    return np.asarray(idx, dtype="int64").reshape(-1, len(keys))


class LinearBN(nn.Layer):
    """Bias-free linear then BatchNorm1D over the token width of ``(N, L, C)`` tokens."""

    def __init__(self, c_in: int, c_out: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.c = make_linear_tn(c_in, c_out, bias=False)
        self.bn = nn.BatchNorm1D(
            c_out, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(bn_weight_init))
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.c(x)
        return self.bn(y.reshape([-1, y.shape[-1]])).reshape([-1, x.shape[1], y.shape[-1]])


class _BiasedAttention(nn.Layer):
    """The relative-position bias table and its native index (shared by both attention kinds)."""

    def _init_bias(self, heads: int, table_side: int, stride: int) -> None:
        self.table_side = table_side
        self.stride = stride
        self.attention_biases = self.create_parameter(
            [heads, table_side * table_side], default_initializer=nn.initializer.Constant(0.0)
        )
        native = bias_index(table_side, (table_side, table_side), stride)
        self.register_buffer("attention_bias_idxs", paddle.to_tensor(native))

    def biases(self, grid: Tuple[int, int]) -> paddle.Tensor:
        """``(heads, queries, keys)`` biases for a key ``grid``."""
        idx = (
            self.attention_bias_idxs
            if tuple(grid) == (self.table_side, self.table_side)
            else paddle.to_tensor(bias_index(self.table_side, grid, self.stride))
        )
        gathered = paddle.gather(self.attention_biases, idx.flatten(), axis=1)
        return gathered.reshape([-1, idx.shape[0], idx.shape[1]])

    def attend(
        self, q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor, grid: Tuple[int, int]
    ) -> paddle.Tensor:
        """Softmax of ``q k^T * scale + bias`` over the keys, times the values, heads merged,
        then the projection (hardswish, linear-BN)."""
        # k transposed explicitly, as PaddleClas: matmul's transpose_y kernel rounds differently,
        # and the random oracle networks' logits (~1e5) amplify that past the fidelity tolerance.
        attn = paddle.matmul(q, k.transpose([0, 1, 3, 2])) * self.scale + self.biases(grid)
        out = paddle.matmul(nn.functional.softmax(attn, axis=-1), v).transpose([0, 2, 1, 3])
        return self.proj(out.reshape([0, out.shape[1], out.shape[2] * out.shape[3]]))


class LeViTAttention(_BiasedAttention):
    """Self-attention with per-head key width ``key_dim`` and value width ``ratio * key_dim``."""

    def __init__(self, dim: int, key_dim: int, heads: int, ratio: int, table_side: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.d = heads, key_dim, ratio * key_dim
        self.scale = key_dim**-0.5
        self.qkv = LinearBN(dim, heads * (2 * key_dim + self.d))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(heads * self.d, dim, bn_weight_init=0.0))
        self._init_bias(heads, table_side, 1)

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        qkv = self.qkv(x).reshape([0, x.shape[1], self.heads, -1])
        q, k, v = paddle.split(qkv, [self.key_dim, self.key_dim, self.d], axis=3)
        return self.attend(*(t.transpose([0, 2, 1, 3]) for t in (q, k, v)), grid)


class Subsample(nn.Layer):
    """Every ``stride``-th token of every ``stride``-th row of the grid (no parameters)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        h, w = grid
        x = x.reshape([0, h, w, x.shape[-1]])[:, :: self.stride, :: self.stride]
        return x.reshape([0, -1, x.shape[-1]])


class AttentionSubsample(_BiasedAttention):
    """Attention from a subsampled grid of queries to every token; widens to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int, key_dim: int, heads: int, ratio: int, table_side: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.d = heads, key_dim, ratio * key_dim
        self.scale = key_dim**-0.5
        self.kv = LinearBN(dim, heads * (key_dim + self.d))
        self.q = nn.Sequential(Subsample(2), LinearBN(dim, heads * key_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(heads * self.d, out_dim))
        self._init_bias(heads, table_side, 2)

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        kv = self.kv(x).reshape([0, x.shape[1], self.heads, -1])
        k, v = paddle.split(kv, [self.key_dim, self.d], axis=3)
        q = self.q[1](self.q[0](x, grid))
        q = q.reshape([0, q.shape[1], self.heads, self.key_dim])
        return self.attend(*(t.transpose([0, 2, 1, 3]) for t in (q, k, v)), grid)


class Residual(nn.Layer):
    """``x + m(x)`` (``m`` an attention, given the grid, or an MLP), with stochastic depth in training."""

    def __init__(self, m: nn.Layer, drop_path: float) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        y = self.m(x, grid) if isinstance(self.m, LeViTAttention) else self.m(x)
        return x + self.drop_path(y)


def _mlp(dim: int, ratio: int) -> nn.Sequential:
    return nn.Sequential(
        LinearBN(dim, dim * ratio), nn.Hardswish(), LinearBN(dim * ratio, dim, bn_weight_init=0.0)
    )


class LeViT(ClassifierNet):
    """LeViT of given widths, key width, heads and blocks per stage.

    Args:
        widths: token width per stage.
        key_dim: per-head key width of every attention.
        heads: heads per stage (the subsampling attention after stage ``i`` has ``widths[i] // key_dim``).
        depths: attention + MLP block pairs per stage.
        num_classes: classifier outputs; 0 returns the normalised pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth of every residual block (training only; PaddleClas
            sets 0.1 for LeViT_384, 0 otherwise).
    """

    classifier_attrs = ("fc",)
    first_conv = "patch_embed.0.conv"

    def __init__(
        self,
        widths: Sequence[int],
        key_dim: int,
        heads: Sequence[int],
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not len(widths) == len(heads) == len(depths):
            raise ValueError(
                f"widths, heads and depths need one entry per stage, got {widths}, {heads}, {depths}"
            )
        check_in_chans(in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        check_num_classes(num_classes)
        w0 = widths[0]
        self.patch_embed = nn.Sequential(
            ConvBNAct(in_chans, w0 // 8, 3, stride=2, act="hardswish"),
            ConvBNAct(w0 // 8, w0 // 4, 3, stride=2, act="hardswish"),
            ConvBNAct(w0 // 4, w0 // 2, 3, stride=2, act="hardswish"),
            ConvBNAct(w0 // 2, w0, 3, stride=2, act=None),
        )
        side = _NATIVE_SIDE // _PATCH
        # The stem's map leads the stage features (timm-style backbones take four levels).
        self.feature_info.append({"module": "patch_embed", "num_chs": w0, "reduction": _PATCH})
        blocks: List[nn.Layer] = []
        self.stage_ends: List[int] = []
        for s, (width, nh, depth) in enumerate(zip(widths, heads, depths)):
            for _ in range(depth):
                blocks.append(Residual(LeViTAttention(width, key_dim, nh, 2, side), drop_path_rate))
                blocks.append(Residual(_mlp(width, 2), drop_path_rate))
            self.stage_ends.append(len(blocks) - 1)
            self.feature_info.append(
                {"module": f"feature_taps.{s}", "num_chs": width, "reduction": _PATCH * 2**s}
            )
            if s + 1 < len(widths):
                blocks.append(AttentionSubsample(width, widths[s + 1], key_dim, width // key_dim, 4, side))
                blocks.append(Residual(_mlp(widths[s + 1], 2), drop_path_rate))
                side = (side - 1) // 2 + 1
        self.blocks = nn.Sequential(*blocks)
        self.feature_taps = nn.LayerList([TokensToMap() for _ in widths])
        self.num_features = widths[-1]
        self.num_classes = num_classes
        self.head_norm = nn.BatchNorm1D(widths[-1])
        self.fc = make_linear_tn(widths[-1], num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.patch_embed(x)
        grid: Tuple[int, int] = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose([0, 2, 1])
        stage = 0
        fmap: Optional[paddle.Tensor] = None
        for i, block in enumerate(self.blocks):
            x = block(x, grid)
            if isinstance(block, AttentionSubsample):
                grid = ((grid[0] - 1) // 2 + 1, (grid[1] - 1) // 2 + 1)
            if i in self.stage_ends:
                fmap = self.feature_taps[stage](x, grid)
                stage += 1
        return fmap

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.head_norm(x.mean([2, 3]))
        return x if pre_logits else self.fc(x)


def _levit(size: str, num_classes: int, in_chans: int, kwargs: Any) -> LeViT:
    widths, key_dim, heads, depths = LEVIT_CONFIGS[size]
    return LeViT(widths, key_dim, heads, depths, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def levit_128s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> LeViT:
    """LeViT-128S: widths 128-256-384, key width 16, heads 4-6-8, blocks 2-3-4."""
    return _levit("128s", num_classes, in_chans, kwargs)


@register_model
def levit_128(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> LeViT:
    """LeViT-128: widths 128-256-384, key width 16, heads 4-8-12, blocks 4-4-4."""
    return _levit("128", num_classes, in_chans, kwargs)


@register_model
def levit_192(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> LeViT:
    """LeViT-192: widths 192-288-384, key width 32, heads 3-5-6, blocks 4-4-4."""
    return _levit("192", num_classes, in_chans, kwargs)


@register_model
def levit_256(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> LeViT:
    """LeViT-256: widths 256-384-512, key width 32, heads 4-6-8, blocks 4-4-4."""
    return _levit("256", num_classes, in_chans, kwargs)


@register_model
def levit_384(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> LeViT:
    """LeViT-384: widths 384-512-768, key width 32, heads 6-9-12, blocks 4-4-4."""
    return _levit("384", num_classes, in_chans, kwargs)
