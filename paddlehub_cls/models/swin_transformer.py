"""Swin Transformer (Liu et al., 2021), as PaddleClas 2.6.0 ``legendary_models/swin_transformer.py``.

A 4x4 patch embedding with LayerNorm, four stages of window-attention blocks (every
second block shifts its windows by half a window), patch merging (2x2 neighbours
concatenated, LayerNorm, linear 4C -> 2C) at the end of stages 1-3, a final LayerNorm,
global average pooling and a linear head. Window attention adds a learned relative
position bias, indexed by ``relative_position_index``: a persistable buffer in
PaddleClas's state_dict (so in its files), which we compute the same way and also
load and report, so the key counts match.

What we keep from PaddleClas's code, where the original Swin differs:

- A stage whose grid is not larger than the window (stage 4 at 224 with window 7, at
  384 with window 12) still shifts every second block and masks it; the original
  code turns the shift off there. The weights were evaluated by PaddleClas's code.
- A grid not divisible by the window is zero-padded at the bottom/right after
  ``norm1`` and the mask is built on the padded grid; an odd grid is zero-padded
  before patch merging; an input not divisible by 4 is zero-padded before the
  patch embedding. So any input size works (the shifted-window mask uses -100, not
  -inf, as PaddleClas).

``forward_features`` returns the normalised last stage as an NCHW map;
``features_only`` gives the four stage outputs (before patch merging; the last one
after the final norm) at strides 4, 8, 16, 32.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import Attention, Block, PatchEmbed, TokensToMap, create_token

#: logit added between tokens of different regions of a shifted window (PaddleClas's value)
MASK_VALUE = -100.0


def relative_position_index(window: int) -> np.ndarray:
    """``(window**2, window**2)`` int64 index into the ``(2*window - 1)**2`` bias table."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).astype("int64")


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """``(num_windows, window**2, window**2)`` additive mask of a ``height`` x ``width`` grid.

    The grid is split into 3 x 3 regions by ``-window`` and ``-shift`` on each axis; tokens
    of a window that come from different regions (after the cyclic shift) do not attend
    to each other.
    """
    regions = np.zeros((height, width), dtype="float32")
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, ws in enumerate(cuts):
            regions[hs, ws] = 3 * i + j
    ids = window_partition(regions[None, :, :, None], window).reshape(-1, window * window)
    return np.where(ids[:, None, :] != ids[:, :, None], MASK_VALUE, 0.0).astype("float32")


def window_partition(x: Any, window: int) -> Any:
    """``(N, H, W, C)`` -> ``(N * H/window * W/window, window, window, C)`` (numpy or paddle)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape([-1, h // window, window, w // window, window, c])
    x = x.transpose([0, 1, 3, 2, 4, 5])
    return x.reshape([-1, window, window, c])


def window_reverse(windows: paddle.Tensor, window: int, h: int, w: int) -> paddle.Tensor:
    """Inverse of :func:`window_partition`: windows back to ``(N, h, w, C)``."""
    c = windows.shape[-1]
    x = windows.reshape([-1, h // window, w // window, window, window, c])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, h, w, c])


class WindowAttention(Attention):
    """Attention inside a window with a learned relative position bias.

    Keys: ``relative_position_bias_table`` ``[(2w-1)**2, heads]``, ``relative_position_index``
    (buffer), ``qkv.*``, ``proj.*``.
    """

    def __init__(self, dim: int, num_heads: int, window: int, **kwargs: Any) -> None:
        super().__init__(dim, num_heads, **kwargs)
        self.window = window
        self.relative_position_bias_table = create_token(self, ((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", paddle.to_tensor(relative_position_index(window)))

    def position_bias(self) -> paddle.Tensor:
        """``(1, heads, window**2, window**2)`` bias gathered from the table."""
        n = self.window * self.window
        bias = paddle.index_select(
            self.relative_position_bias_table, self.relative_position_index.reshape([-1])
        )
        return bias.reshape([n, n, -1]).transpose([2, 0, 1]).unsqueeze(0)

    def forward(self, x: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        """Attention in each window.

        Args:
            x: ``(N * num_windows, window**2, C)``, the windows of a sample consecutive.
            mask: ``(num_windows, window**2, window**2)`` additive mask of shifted windows, or None.
        """
        logits, v = self.logits(x)
        logits = logits + self.position_bias()
        if mask is not None:
            windows, length = mask.shape[0], mask.shape[1]
            logits = logits.reshape([-1, windows, self.num_heads, length, length]) + mask.unsqueeze(1)
            logits = logits.reshape([-1, self.num_heads, length, length])
        return self.attend(logits, v)


class SwinBlock(Block):
    """Pre-norm block whose attention runs in (shifted) windows of a ``(H, W)`` token grid."""

    def __init__(
        self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float
    ) -> None:
        attention = WindowAttention(dim, num_heads, window, qkv_bias=True)
        super().__init__(dim, num_heads, mlp_ratio, drop_path=drop_path, attention=attention)
        self.window = window
        self.shift = shift

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        h, w = grid
        c = x.shape[2]
        win = self.window
        y = self.norm1(x).reshape([-1, h, w, c])
        pad_h, pad_w = (win - h % win) % win, (win - w % win) % win
        if pad_h or pad_w:
            # 4-element pads are (left, right, top, bottom) whatever the data format
            y = nn.functional.pad(y, [0, pad_w, 0, pad_h], data_format="NHWC")
        hp, wp = h + pad_h, w + pad_w
        if self.shift:
            y = paddle.roll(y, shifts=(-self.shift, -self.shift), axis=(1, 2))
        windows = window_partition(y, win).reshape([-1, win * win, c])
        mask = paddle.to_tensor(shifted_window_mask(hp, wp, win, self.shift)) if self.shift else None
        y = window_reverse(self.attn(windows, mask).reshape([-1, win, win, c]), win, hp, wp)
        if self.shift:
            y = paddle.roll(y, shifts=(self.shift, self.shift), axis=(1, 2))
        if pad_h or pad_w:
            y = y[:, :h, :w, :]
        x = x + self.drop_path(y.reshape([-1, h * w, c]))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Layer):
    """2x2 neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), LayerNorm, linear 4C -> 2C.

    Keys: ``norm.*`` ``[4C]``, ``reduction.weight`` ``[4C, 2C]`` (no bias).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias_attr=False)

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> Tuple[paddle.Tensor, Tuple[int, int]]:
        h, w = grid
        c = x.shape[2]
        x = x.reshape([-1, h, w, c])
        if h % 2 or w % 2:
            x = nn.functional.pad(x, [0, w % 2, 0, h % 2], data_format="NHWC")
        x = paddle.concat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        grid = ((h + 1) // 2, (w + 1) // 2)
        x = x.reshape([-1, grid[0] * grid[1], 4 * c])
        return self.reduction(self.norm(x)), grid


class SwinStage(nn.Layer):
    """``blocks`` (alternately unshifted and shifted) and an optional ``downsample`` at the end."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        drop_path: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.LayerList(
            [
                SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, drop_path[i])
                for i in range(depth)
            ]
        )
        self.downsample = PatchMerging(dim) if downsample else None


class SwinTransformer(ClassifierNet):
    """Swin Transformer with patch size 4.

    Args:
        embed_dim: width of stage 1 (doubling at every stage).
        depths: blocks per stage.
        num_heads: heads per stage.
        window: window side.
        mlp_ratio: MLP hidden width / stage width.
        drop_path_rate: stochastic depth, rising linearly over all blocks (training only).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
    """

    classifier_attrs = ("head",)
    first_conv = "patch_embed.proj"

    def __init__(
        self,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if len(depths) != len(num_heads):
            raise ValueError(
                f"depths {list(depths)} and num_heads {list(num_heads)} must have one entry per stage"
            )
        self.patch_embed = PatchEmbed(4, in_chans, embed_dim, norm=True, pad=True)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages = []
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            stages.append(
                SwinStage(
                    embed_dim * 2**i,
                    depth,
                    heads,
                    window,
                    mlp_ratio,
                    rates[start : start + depth],
                    downsample=i < len(depths) - 1,
                )
            )
        self.layers = nn.LayerList(stages)
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.feature_taps = nn.LayerList([TokensToMap() for _ in depths])
        self.feature_info = [
            {"module": f"feature_taps.{i}", "num_chs": embed_dim * 2**i, "reduction": 4 * 2**i}
            for i in range(len(depths))
        ]
        self.head = make_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """The normalised last stage as an NCHW map."""
        x, grid = self.patch_embed(x)
        last = len(self.layers) - 1
        for i, stage in enumerate(self.layers):
            for block in stage.blocks:
                x = block(x, grid)
            if i < last:
                self.feature_taps[i](x, grid)
                x, grid = stage.downsample(x, grid)
        return self.feature_taps[last](self.norm(x), grid)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean(axis=[2, 3])
        return x if pre_logits else self.head(x)


def _swin(num_classes: int, in_chans: int, kwargs: Any, **arch: Any) -> SwinTransformer:
    return SwinTransformer(num_classes=num_classes, in_chans=in_chans, **arch, **kwargs)


_TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
_SMALL = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
_BASE = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
_LARGE = dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))


@register_model
def swin_tiny_patch4_window7_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-T, window 7."""
    return _swin(num_classes, in_chans, kwargs, window=7, **_TINY)


@register_model
def swin_small_patch4_window7_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-S, window 7."""
    return _swin(num_classes, in_chans, kwargs, window=7, **_SMALL)


@register_model
def swin_base_patch4_window7_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-B, window 7."""
    return _swin(num_classes, in_chans, kwargs, window=7, **_BASE)


@register_model
def swin_base_patch4_window12_384(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-B, window 12 (trained at 384)."""
    return _swin(num_classes, in_chans, kwargs, window=12, **_BASE)


@register_model
def swin_large_patch4_window7_224(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-L, window 7."""
    return _swin(num_classes, in_chans, kwargs, window=7, **_LARGE)


@register_model
def swin_large_patch4_window12_384(
    num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> SwinTransformer:
    """Swin-L, window 12 (trained at 384)."""
    return _swin(num_classes, in_chans, kwargs, window=12, **_LARGE)
