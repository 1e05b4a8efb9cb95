"""ConvNeXt tiny, small, base and large (Liu et al., 2022).

The graph of PaddleClas 2.6.0 ``model_zoo/convnext.py`` (a port of
facebookresearch/ConvNeXt): a 4x4 stride-4 conv stem with a channels-first layer norm,
then four stages; stages 1-3 start with a channels-first layer norm and a 2x2 stride-2
conv. A block is a 7x7 depthwise conv, then, on the NHWC view, layer norm, a linear to
4x the channels, exact GELU, a linear back, and a per-channel layer scale ``gamma``;
its output is added to the block's input (through stochastic depth in training). The
head averages the last map over space, layer-normalises the vector and applies the
classifier. Every norm has epsilon 1e-6; every conv and linear has a bias.

``pre_logits`` (and ``num_classes=0``) return the layer-normalised pooled vector: the
features the classifier reads, which are not the plain spatial mean.

State-dict keys: ``stem.0.{weight,bias}`` (conv), ``stem.1.{weight,bias}`` (norm),
``stages.<s>.downsample.{0,1}.*`` (norm, conv; stages 1-3),
``stages.<s>.blocks.<b>.{gamma,dwconv.*,norm.*,pwconv1.*,pwconv2.*}``, ``norm.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import DropPath, LayerNorm2d, make_act

# name -> (blocks per stage, channels per stage)
CONVNEXT_CONFIGS = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}
_EPS = 1e-6
_MLP_RATIO = 4


def _trunc_normal_attr() -> paddle.ParamAttr:
    # The reference initialisation (timm / facebookresearch): truncated N(0, 0.02), deferred
    # under paddle.LazyGuard like any initialiser object.
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=0.02))


def _zeros_attr() -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


def _linear(fan_in: int, fan_out: int) -> nn.Linear:
    return nn.Linear(fan_in, fan_out, weight_attr=_trunc_normal_attr(), bias_attr=_zeros_attr())


def _conv(
    c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1
) -> nn.Conv2D:
    return nn.Conv2D(
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=padding,
        groups=groups,
        weight_attr=_trunc_normal_attr(),
        bias_attr=_zeros_attr(),
    )


class ConvNeXtBlock(nn.Layer):
    """7x7 depthwise conv, NHWC layer norm, MLP with GELU, layer scale, residual sum.

    Args:
        dim: channels.
        drop_path: stochastic depth probability of the residual branch (training only).
        layer_scale: initial value of ``gamma``; 0 removes the layer scale.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = _conv(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, epsilon=_EPS)
        self.pwconv1 = _linear(dim, _MLP_RATIO * dim)
        self.act = make_act("gelu")
        self.pwconv2 = _linear(_MLP_RATIO * dim, dim)
        self.gamma = (
            self.create_parameter([dim], default_initializer=nn.initializer.Constant(layer_scale))
            if layer_scale > 0
            else None
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.dwconv(x).transpose([0, 2, 3, 1])
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.transpose([0, 3, 1, 2]))


class ConvNeXtStage(nn.Layer):
    """Optional downsampling (channels-first norm, 2x2 stride-2 conv), then the blocks."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        depth: int,
        downsample: bool,
        drop_paths: Sequence[float],
        layer_scale: float,
    ) -> None:
        super().__init__()
        self.downsample = (
            nn.Sequential(LayerNorm2d(c_in, _EPS), _conv(c_in, c_out, 2, stride=2))
            if downsample
            else nn.Identity()
        )
        self.blocks = nn.Sequential(*[ConvNeXtBlock(c_out, drop_paths[b], layer_scale) for b in range(depth)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXt(ClassifierNet):
    """ConvNeXt of given depths and widths.

    Args:
        depths: blocks per stage.
        dims: channels per stage.
        num_classes: classifier outputs; 0 returns the normalised pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth probability of the last block, rising linearly
            from 0 at the first (training only; identity at inference).
        layer_scale: initial value of each block's layer scale (1e-6 in every
            PaddleClas model); 0 builds blocks without it.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0"

    def __init__(
        self,
        depths: Sequence[int],
        dims: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError(f"depths and dims need one entry per stage, got {list(depths)} and {list(dims)}")
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        if (
            isinstance(drop_path_rate, bool)
            or not isinstance(drop_path_rate, (int, float))
            or not 0 <= drop_path_rate < 1
        ):
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        check_num_classes(num_classes)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stem = nn.Sequential(_conv(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0], _EPS))
        stages = []
        start, c_in = 0, dims[0]
        for s, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(ConvNeXtStage(c_in, dim, depth, s > 0, rates[start : start + depth], layer_scale))
            self.feature_info.append({"module": f"stages.{s}", "num_chs": dim, "reduction": 4 * 2**s})
            start, c_in = start + depth, dim
        self.stages = nn.LayerList(stages)
        self.norm = nn.LayerNorm(c_in, epsilon=_EPS)
        self.num_features = c_in
        self.num_classes = num_classes
        self.fc = _linear(c_in, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.norm(x.mean([2, 3]))
        return x if pre_logits else self.fc(x)


def _convnext(size: str, num_classes: int, in_chans: int, kwargs: Any) -> ConvNeXt:
    depths, dims = CONVNEXT_CONFIGS[size]
    return ConvNeXt(depths, dims, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-T: blocks 3-3-9-3, channels 96-192-384-768."""
    return _convnext("tiny", num_classes, in_chans, kwargs)


@register_model
def convnext_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-S: blocks 3-3-27-3, channels 96-192-384-768."""
    return _convnext("small", num_classes, in_chans, kwargs)


@register_model
def convnext_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-B: blocks 3-3-27-3, channels 128-256-512-1024 (PaddleClas's base_224 and base_384)."""
    return _convnext("base", num_classes, in_chans, kwargs)


@register_model
def convnext_large(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-L: blocks 3-3-27-3, channels 192-384-768-1536 (PaddleClas's large_224 and large_384)."""
    return _convnext("large", num_classes, in_chans, kwargs)
