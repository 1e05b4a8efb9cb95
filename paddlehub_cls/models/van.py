"""VAN (Visual Attention Network) B0-B3 (Guo et al., 2022).

The graph of PaddleClas 2.6.0 ``model_zoo/van.py``: four stages at reductions 4, 8, 16 and 32,
each an overlapping patch embedding (7x7/4, then 3x3/2 convs with bias, and a batch norm),
blocks, and a layer norm over the channels (epsilon 1e-6). A block: ``x + layer_scale_1 *
attn(norm1(x))`` and ``x + layer_scale_2 * mlp(norm2(x))`` with batch norms; ``attn`` is a 1x1
conv, GELU, large-kernel attention (depthwise 5x5, depthwise 7x7 with dilation 3, 1x1 conv;
its output multiplies its input), a 1x1 conv and a residual; ``mlp`` is a 1x1 conv, a depthwise
3x3 conv, GELU and a 1x1 conv. The head averages the normalised last map and applies the
classifier. Every conv has a bias.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import make_linear_tn
from paddlehub_cls.models.layers import DropPath, LayerNorm2d, drop_path_rates, make_act

# name -> (blocks per stage, widths, MLP ratios)
VAN_CONFIGS = {
    "b0": ((3, 3, 5, 2), (32, 64, 160, 256), (8, 8, 4, 4)),
    "b1": ((2, 2, 4, 2), (64, 128, 320, 512), (8, 8, 4, 4)),
    "b2": ((3, 3, 12, 3), (64, 128, 320, 512), (8, 8, 4, 4)),
    "b3": ((3, 5, 27, 3), (64, 128, 320, 512), (8, 8, 4, 4)),
}
_LAYER_SCALE = 1e-2


def _dw(dim: int, kernel: int, dilation: int = 1) -> nn.Conv2D:
    return nn.Conv2D(dim, dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=dim)


class LKA(nn.Layer):
    """Large-kernel attention: ``x * conv1(conv_spatial(conv0(x)))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = _dw(dim, 5)
        self.conv_spatial = _dw(dim, 7, dilation=3)
        self.conv1 = nn.Conv2D(dim, dim, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Layer):
    """``x + proj_2(lka(gelu(proj_1(x))))`` (keys ``proj_1``, ``spatial_gating_unit``, ``proj_2``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2D(dim, dim, 1)
        self.activation = make_act("gelu")
        self.spatial_gating_unit = LKA(dim)
        self.proj_2 = nn.Conv2D(dim, dim, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class ConvMlp(nn.Layer):
    """1x1 conv, depthwise 3x3 conv, GELU, 1x1 conv."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2D(dim, hidden, 1)
        self.dwconv = _dw(hidden, 3)
        self.act = make_act("gelu")
        self.fc2 = nn.Conv2D(hidden, dim, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class VANBlock(nn.Layer):
    def __init__(self, dim: int, mlp_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2D(dim)
        self.attn = SpatialAttention(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2D(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        init = nn.initializer.Constant(_LAYER_SCALE)
        self.layer_scale_1 = self.create_parameter([dim, 1, 1], default_initializer=init)
        self.layer_scale_2 = self.create_parameter([dim, 1, 1], default_initializer=init)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Overlapping ``kernel`` x ``kernel`` conv of ``stride`` (padding ``kernel // 2``), batch norm."""

    def __init__(self, in_chans: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_chans, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.BatchNorm2D(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.proj(x))


class VANStage(nn.Layer):
    def __init__(self, embed: PatchEmbed, blocks: Sequence[nn.Layer], dim: int) -> None:
        super().__init__()
        self.patch_embed = embed
        self.blocks = nn.Sequential(*blocks)
        self.norm = LayerNorm2d(dim, epsilon=1e-6)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.blocks(self.patch_embed(x)))


class VAN(ClassifierNet):
    """VAN of given depths, widths and MLP ratios.

    Args:
        depths: blocks per stage.
        dims: channels per stage.
        mlp_ratios: MLP expansion per stage.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 (training only).
    """

    classifier_attrs = ("fc",)
    first_conv = "stages.0.patch_embed.proj"

    def __init__(
        self,
        depths: Sequence[int],
        dims: Sequence[int],
        mlp_ratios: Sequence[float],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        rates = drop_path_rates(drop_path_rate, sum(depths))
        stages, c, start = [], in_chans, 0
        for s, (depth, dim, ratio) in enumerate(zip(depths, dims, mlp_ratios)):
            embed = PatchEmbed(c, dim, 7 if s == 0 else 3, 4 if s == 0 else 2)
            blocks = [VANBlock(dim, ratio, rates[start + b]) for b in range(depth)]
            stages.append(VANStage(embed, blocks, dim))
            self.feature_info.append({"module": f"stages.{s}", "num_chs": dim, "reduction": 4 * 2**s})
            c, start = dim, start + depth
        self.stages = nn.LayerList(stages)
        self.num_features = c
        self.num_classes = num_classes
        self.fc = make_linear_tn(c, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


def _van(size: str, num_classes: int, in_chans: int, kwargs: Any) -> VAN:
    depths, dims, ratios = VAN_CONFIGS[size]
    return VAN(depths, dims, ratios, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def van_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VAN:
    """VAN-B0: blocks 3-3-5-2, widths 32-64-160-256."""
    return _van("b0", num_classes, in_chans, kwargs)


@register_model
def van_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VAN:
    """VAN-B1: blocks 2-2-4-2, widths 64-128-320-512."""
    return _van("b1", num_classes, in_chans, kwargs)


@register_model
def van_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VAN:
    """VAN-B2: blocks 3-3-12-3, widths 64-128-320-512."""
    return _van("b2", num_classes, in_chans, kwargs)


@register_model
def van_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VAN:
    """VAN-B3: blocks 3-5-27-3, widths 64-128-320-512."""
    return _van("b3", num_classes, in_chans, kwargs)
