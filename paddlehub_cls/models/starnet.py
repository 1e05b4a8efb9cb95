"""StarNet S1-S4 (Ma et al., 2024, "Rewrite the Stars").

The graph of PaddleClas 2.6.0 ``model_zoo/starnet.py``: a 3x3 stride-2 conv-BN-ReLU6
stem of 32 channels, then four stages, each a 3x3 stride-2 conv-BN downsampling to
``base_dim * 2**s`` channels followed by star blocks. A star block is a 7x7 depthwise
conv-BN, two parallel 1x1 convs to ``mlp_ratio`` (4) times the channels whose
element-wise product ("star") gates ``relu6(f1(x)) * f2(x)``, a 1x1 conv-BN back, a 7x7
depthwise conv, and a residual sum (through stochastic depth in training). Every conv
has a bias, also those followed by batch norm. The head batch-normalises the last map,
averages it over space and applies the classifier.

State-dict keys follow PaddleClas's module tree (only the classifier is renamed,
``head`` -> ``fc``): ``stem.0.{conv,bn}.*``, ``stages.<s>.0.{conv,bn}.*`` (downsampling),
``stages.<s>.<b+1>.{dwconv.conv,dwconv.bn,f1.conv,f2.conv,g.conv,g.bn,dwconv2.conv}.*``,
``norm.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import DropPath, make_act

# name -> (base width, blocks per stage)
STARNET_CONFIGS = {
    "s1": (24, (2, 2, 8, 3)),
    "s2": (32, (1, 2, 6, 2)),
    "s3": (32, (2, 2, 8, 4)),
    "s4": (32, (3, 3, 12, 5)),
}
_STEM_WIDTH = 32
_MLP_RATIO = 4


def _trunc_normal_attr() -> paddle.ParamAttr:
    # The authors' initialisation (truncated N(0, 0.02) for convs and linears): each star
    # product squares its block's scale, and a fan-based init lets a fresh S1's logits reach ~1e15.
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=0.02))


class ConvBiasBN(nn.Sequential):
    """Conv with a bias, then (optionally) batch norm. Keys ``conv.*`` and ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bn: bool = True) -> None:
        super().__init__()
        self.add_sublayer(
            "conv",
            nn.Conv2D(
                c_in,
                c_out,
                kernel,
                stride=stride,
                padding=(kernel - 1) // 2,
                groups=groups,
                weight_attr=_trunc_normal_attr(),
                bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)),
            ),
        )
        if bn:
            self.add_sublayer("bn", nn.BatchNorm2D(c_out))


class StarBlock(nn.Layer):
    """Depthwise conv-BN, star product ``relu6(f1(x)) * f2(x)``, conv-BN back, depthwise conv, residual.

    Args:
        dim: channels.
        mlp_ratio: width of the star product relative to ``dim``.
        drop_path: stochastic depth probability of the residual branch (training only).
    """

    def __init__(self, dim: int, mlp_ratio: int = _MLP_RATIO, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = ConvBiasBN(dim, dim, 7, groups=dim)
        self.f1 = ConvBiasBN(dim, mlp_ratio * dim, 1, bn=False)
        self.f2 = ConvBiasBN(dim, mlp_ratio * dim, 1, bn=False)
        self.g = ConvBiasBN(mlp_ratio * dim, dim, 1)
        self.dwconv2 = ConvBiasBN(dim, dim, 7, groups=dim, bn=False)
        self.act = make_act("relu6")
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.dwconv(x)
        y = self.act(self.f1(y)) * self.f2(y)
        return x + self.drop_path(self.dwconv2(self.g(y)))


class StarNet(ClassifierNet):
    """StarNet of a base width and blocks per stage.

    Args:
        base_dim: channels of the first stage; stage ``s`` has ``base_dim * 2**s``.
        depths: star blocks per stage.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth probability of the last block, rising linearly
            from 0 at the first (training only).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0.conv"

    def __init__(
        self,
        base_dim: int,
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
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
        self.stem = nn.Sequential(ConvBiasBN(in_chans, _STEM_WIDTH, 3, stride=2), make_act("relu6"))
        stages, start, c_in = [], 0, _STEM_WIDTH
        for s, depth in enumerate(depths):
            dim = base_dim * 2**s
            blocks = [StarBlock(dim, drop_path=rates[start + b]) for b in range(depth)]
            stages.append(nn.Sequential(ConvBiasBN(c_in, dim, 3, stride=2), *blocks))
            self.feature_info.append({"module": f"stages.{s}", "num_chs": dim, "reduction": 2 ** (s + 2)})
            start, c_in = start + depth, dim
        self.stages = nn.LayerList(stages)
        self.norm = nn.BatchNorm2D(c_in)
        self.num_features = c_in
        self.num_classes = num_classes
        self.fc = make_linear(c_in, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


def _starnet(size: str, num_classes: int, in_chans: int, kwargs: Any) -> StarNet:
    base_dim, depths = STARNET_CONFIGS[size]
    return StarNet(base_dim, depths, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def starnet_s1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> StarNet:
    """StarNet-S1: base width 24, blocks 2-2-8-3."""
    return _starnet("s1", num_classes, in_chans, kwargs)


@register_model
def starnet_s2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> StarNet:
    """StarNet-S2: base width 32, blocks 1-2-6-2."""
    return _starnet("s2", num_classes, in_chans, kwargs)


@register_model
def starnet_s3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> StarNet:
    """StarNet-S3: base width 32, blocks 2-2-8-4."""
    return _starnet("s3", num_classes, in_chans, kwargs)


@register_model
def starnet_s4(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> StarNet:
    """StarNet-S4: base width 32, blocks 3-3-12-5."""
    return _starnet("s4", num_classes, in_chans, kwargs)
