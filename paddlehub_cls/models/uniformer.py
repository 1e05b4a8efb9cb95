"""UniFormer small, small_plus, small_plus_dim64, base and base_ls (Li et al., 2022).

The graph of PaddleClas 2.6.0 ``model_zoo/uniformer.py``: four stages at reductions 4, 8, 16
and 32 (widths 64-128-320-512), each an embedding then blocks. Stages 1-2 use convolutional
"local" blocks (:class:`CBlock`), stages 3-4 self-attention blocks (:class:`SABlock`, heads of
``head_dim`` channels); every block first adds a depthwise 3x3 conv of its input (the
"dynamic position embedding"). Embeddings: non-overlapping patch convs (4x4, then 2x2) with a
layer norm over the channels (small, base), or, with ``conv_stem`` (the small_plus models),
two 3x3 stride-2 conv-BN with GELU between them, then 3x3 stride-2 conv-BN. A batch norm on the
last map, global average pooling and the classifier. ``layer_scale`` (base_ls) multiplies both
branches of the attention blocks by learnt per-channel scales.

Unlike PaddleClas's patch embedding, ours takes any input size (PaddleClas asserts 224).
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import Block, make_linear_tn
from paddlehub_cls.models.layers import DropPath, LayerNorm2d, drop_path_rates, make_act

WIDTHS = (64, 128, 320, 512)
# name -> (blocks per stage, head_dim, conv_stem, layer_scale)
UNIFORMER_CONFIGS = {
    "small": ((3, 4, 8, 3), 64, False, False),
    "small_plus": ((3, 5, 9, 3), 32, True, False),
    "small_plus_dim64": ((3, 5, 9, 3), 64, True, False),
    "base": ((5, 8, 20, 7), 64, False, False),
    "base_ls": ((5, 8, 20, 7), 64, False, True),
}


def _dw(dim: int, kernel: int) -> nn.Conv2D:
    return nn.Conv2D(dim, dim, kernel, padding=kernel // 2, groups=dim)


class CMlp(nn.Layer):
    """1x1 conv, GELU, 1x1 conv (keys ``fc1_conv``, ``fc2_conv``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1_conv = nn.Conv2D(dim, hidden, 1)
        self.act = make_act("gelu")
        self.fc2_conv = nn.Conv2D(hidden, dim, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc2_conv(self.act(self.fc1_conv(x)))


class CBlock(nn.Layer):
    """``x + pos_embed(x)``; ``x + conv2(attn(conv1(norm1(x))))`` with a depthwise 5x5 ``attn``;
    ``x + mlp(norm2(x))``; batch norms."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.pos_embed = _dw(dim, 3)
        self.norm1 = nn.BatchNorm2D(dim)
        self.conv1 = nn.Conv2D(dim, dim, 1)
        self.conv2 = nn.Conv2D(dim, dim, 1)
        self.attn = _dw(dim, 5)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2D(dim)
        self.mlp = CMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SABlock(Block):
    """``x + pos_embed(x)``, then the pre-norm transformer block (layer norm epsilon 1e-6, qkv
    bias) on its tokens, with ``gamma_1``/``gamma_2`` layer scales where ``layer_scale`` > 0."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, layer_scale: float = 0.0
    ) -> None:
        super().__init__(dim, num_heads, mlp_ratio, qkv_bias=True, epsilon=1e-6, drop_path=drop_path)
        self.pos_embed = _dw(dim, 3)
        self.gamma_1 = self.gamma_2 = None
        if layer_scale:
            init = nn.initializer.Constant(layer_scale)
            self.gamma_1 = self.create_parameter([dim], default_initializer=init)
            self.gamma_2 = self.create_parameter([dim], default_initializer=init)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        t = x.flatten(2).transpose([0, 2, 1])
        y = self.attn(self.norm1(t))
        t = t + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        y = self.mlp(self.norm2(t))
        t = t + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)
        return t.transpose([0, 2, 1]).reshape([-1, c, h, w])


class PatchEmbed(nn.Layer):
    """Non-overlapping ``patch`` x ``patch`` conv (``proj_conv``), then a layer norm over the channels
    (``norm``, epsilon 1e-5 as PaddleClas's default ``nn.LayerNorm``)."""

    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj_conv = nn.Conv2D(in_chans, dim, patch, stride=patch)
        self.norm = LayerNorm2d(dim, epsilon=1e-5)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.proj_conv(x))


def _conv_bn(in_chans: int, dim: int) -> list:
    return [nn.Conv2D(in_chans, dim, 3, stride=2, padding=1), nn.BatchNorm2D(dim)]


class ConvEmbed(nn.Layer):
    """The ``conv_stem`` embeddings: ``proj`` = 3x3/2 conv-BN (``head``: two, GELU between,
    the first to half the width)."""

    def __init__(self, in_chans: int, dim: int, head: bool) -> None:
        super().__init__()
        if head:
            layers = _conv_bn(in_chans, dim // 2) + [make_act("gelu")] + _conv_bn(dim // 2, dim)
        else:
            layers = _conv_bn(in_chans, dim)
        self.proj = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x)


class UniFormerStage(nn.Layer):
    def __init__(self, embed: nn.Layer, blocks: Sequence[nn.Layer]) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(self.embed(x))


class UniFormer(ClassifierNet):
    """UniFormer of given depths.

    Args:
        depths: blocks per stage.
        head_dim: channels per attention head (stages 3-4).
        conv_stem: overlapping conv embeddings instead of patch embeddings.
        layer_scale: initial value of the attention blocks' layer scales; 0 for none.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 (training only).
    """

    classifier_attrs = ("fc",)

    def __init__(
        self,
        depths: Sequence[int],
        head_dim: int = 64,
        conv_stem: bool = False,
        layer_scale: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.first_conv = "stages.0.embed.proj.0" if conv_stem else "stages.0.embed.proj_conv"
        rates = drop_path_rates(drop_path_rate, sum(depths))
        stages, c, start = [], in_chans, 0
        for s, (depth, dim) in enumerate(zip(depths, WIDTHS)):
            if conv_stem:
                embed = ConvEmbed(c, dim, head=s == 0)
            else:
                embed = PatchEmbed(c, dim, 4 if s == 0 else 2)
            r = rates[start : start + depth]
            if s < 2:
                blocks = [CBlock(dim, drop_path=r[b]) for b in range(depth)]
            else:
                blocks = [SABlock(dim, dim // head_dim, drop_path=r[b], layer_scale=layer_scale) for b in range(depth)]
            stages.append(UniFormerStage(embed, blocks))
            # The last stage is read after the final batch norm: what forward_features returns.
            module = "norm" if s == len(depths) - 1 else f"stages.{s}"
            self.feature_info.append({"module": module, "num_chs": dim, "reduction": 4 * 2**s})
            c, start = dim, start + depth
        self.stages = nn.LayerList(stages)
        self.norm = nn.BatchNorm2D(c)
        self.num_features = c
        self.num_classes = num_classes
        self.fc = make_linear_tn(c, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


def _uniformer(size: str, num_classes: int, in_chans: int, kwargs: Any) -> UniFormer:
    depths, head_dim, conv_stem, ls = UNIFORMER_CONFIGS[size]
    return UniFormer(depths, head_dim, conv_stem, 1e-6 if ls else 0.0, num_classes, in_chans, **kwargs)


@register_model
def uniformer_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> UniFormer:
    """UniFormer-S: blocks 3-4-8-3, patch embeddings, heads of 64."""
    return _uniformer("small", num_classes, in_chans, kwargs)


@register_model
def uniformer_small_plus(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> UniFormer:
    """UniFormer-S+: blocks 3-5-9-3, conv embeddings, heads of 32."""
    return _uniformer("small_plus", num_classes, in_chans, kwargs)


@register_model
def uniformer_small_plus_dim64(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> UniFormer:
    """UniFormer-S+ with heads of 64."""
    return _uniformer("small_plus_dim64", num_classes, in_chans, kwargs)


@register_model
def uniformer_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> UniFormer:
    """UniFormer-B: blocks 5-8-20-7, patch embeddings, heads of 64."""
    return _uniformer("base", num_classes, in_chans, kwargs)


@register_model
def uniformer_base_ls(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> UniFormer:
    """UniFormer-B with layer scales (initial 1e-6) in the attention blocks."""
    return _uniformer("base_ls", num_classes, in_chans, kwargs)
