"""FasterNet T0, T1, T2, S, M and L (Chen et al., 2023, "Run, Don't Walk").

The graph of PaddleClas 2.6.0 ``model_zoo/fasternet.py`` (a port of the authors' code):
a 4x4 stride-4 conv-BN patch embedding, then four stages of FasterNet blocks with a 2x2
stride-2 conv-BN merging between stages (channels double). A block applies a partial
conv (a 3x3 conv on the first quarter of the channels, the rest passed through), then a
1x1 conv to twice the channels, BN, the activation (exact GELU for T0/T1, ReLU for the
others), a 1x1 conv back, and adds the block's input. No conv has a bias. The head
averages the last map over space, maps it with a 1x1 conv to 1280 channels and the
activation (the pre-logits), then applies the classifier.

PaddleClas gives the patch embedding's batch norm ``momentum=0.1`` (PyTorch's meaning
carried into Paddle, where it weights the old statistic); only training differs, and
ours keeps Paddle's default 0.9 like every other batch norm.

State-dict keys follow PaddleClas's tree (the classifier is ``fc``, PaddleClas ``head``):
``patch_embed.{proj,norm}.*``, ``stages.<2s>.blocks.<b>.spatial_mixing.partial_conv3.weight``,
``stages.<2s>.blocks.<b>.mlp.{0,1,3}.*`` (conv, BN, conv), ``stages.<2s+1>.{reduction,norm}.*``
(merging), ``pre_head.weight`` (the 1x1 head conv), ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import DropPath, make_act

# name -> (first stage width, blocks per stage, activation)
FASTERNET_CONFIGS = {
    "t0": (40, (1, 2, 8, 2), "gelu"),
    "t1": (64, (1, 2, 8, 2), "gelu"),
    "t2": (96, (1, 2, 8, 2), "relu"),
    "s": (128, (1, 2, 13, 2), "relu"),
    "m": (144, (3, 4, 18, 3), "relu"),
    "l": (192, (3, 4, 18, 3), "relu"),
}
_HEAD_WIDTH = 1280
_MLP_RATIO = 2
_PARTIAL = 4  # the partial conv sees 1/_PARTIAL of the channels


def _trunc_normal_attr() -> paddle.ParamAttr:
    # The authors' (and PaddleClas's) initialisation of every conv and linear weight.
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=0.02))


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(
        c_in, c_out, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0,
        weight_attr=_trunc_normal_attr(), bias_attr=False,
    )


class PartialConv(nn.Layer):
    """3x3 conv over the first ``dim // 4`` channels; the other channels pass through unchanged."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim_conv = dim // _PARTIAL
        self.partial_conv3 = _conv(self.dim_conv, self.dim_conv, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        head, rest = paddle.split(x, [self.dim_conv, x.shape[1] - self.dim_conv], axis=1)
        return paddle.concat([self.partial_conv3(head), rest], axis=1)


class FasterNetBlock(nn.Layer):
    """Partial conv, then 1x1 conv - BN - activation - 1x1 conv, added to the input."""

    def __init__(self, dim: int, act: str, drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = dim * _MLP_RATIO
        self.spatial_mixing = PartialConv(dim)
        self.mlp = nn.Sequential(_conv(dim, hidden, 1), nn.BatchNorm2D(hidden), make_act(act), _conv(hidden, dim, 1))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.drop_path(self.mlp(self.spatial_mixing(x)))


class FasterNetStage(nn.Layer):
    """The blocks of one stage (keys ``blocks.<b>.*``)."""

    def __init__(self, dim: int, depth: int, act: str, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[FasterNetBlock(dim, act, drop_paths[b]) for b in range(depth)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(x)


class ConvNorm(nn.Layer):
    """A strided conv (no bias) and batch norm: the patch embedding (``proj``) or a merging (``reduction``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, conv_name: str) -> None:
        super().__init__()
        self.conv_name = conv_name
        self.add_sublayer(conv_name, _conv(c_in, c_out, kernel, stride=kernel))
        self.norm = nn.BatchNorm2D(c_out)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(getattr(self, self.conv_name)(x))


class FasterNet(ClassifierNet):
    """FasterNet of a first-stage width, blocks per stage and activation.

    Args:
        embed_dim: channels of the first stage; each merging doubles them.
        depths: blocks per stage.
        act: ``"gelu"`` or ``"relu"`` (blocks and head).
        num_classes: classifier outputs; 0 returns the 1280-wide pre-logits.
        in_chans: input channels.
        drop_path_rate: stochastic depth probability of the last block, rising linearly
            from 0 at the first (training only; PaddleClas's training configs use 0-0.3).
    """

    classifier_attrs = ("fc",)
    first_conv = "patch_embed.proj"

    def __init__(
        self,
        embed_dim: int,
        depths: Sequence[int],
        act: str,
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
        self.patch_embed = ConvNorm(in_chans, embed_dim, 4, "proj")
        layers, start, dim = [], 0, embed_dim
        for s, depth in enumerate(depths):
            if s > 0:
                layers.append(ConvNorm(dim, 2 * dim, 2, "reduction"))
                dim *= 2
            layers.append(FasterNetStage(dim, depth, act, rates[start : start + depth]))
            self.feature_info.append({"module": f"stages.{len(layers) - 1}", "num_chs": dim, "reduction": 4 * 2**s})
            start += depth
        self.stages = nn.Sequential(*layers)
        self.pre_head = nn.Conv2D(dim, _HEAD_WIDTH, 1, weight_attr=_trunc_normal_attr(), bias_attr=False)
        self.head_act = make_act(act)
        self.num_features = _HEAD_WIDTH
        self.num_classes = num_classes
        self.fc = make_linear(_HEAD_WIDTH, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.stages(self.patch_embed(x))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.head_act(self.pre_head(x.mean([2, 3], keepdim=True))).flatten(1)
        return x if pre_logits else self.fc(x)


def _fasternet(size: str, num_classes: int, in_chans: int, kwargs: Any) -> FasterNet:
    dim, depths, act = FASTERNET_CONFIGS[size]
    return FasterNet(dim, depths, act, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def fasternet_t0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-T0: width 40, blocks 1-2-8-2, GELU."""
    return _fasternet("t0", num_classes, in_chans, kwargs)


@register_model
def fasternet_t1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-T1: width 64, blocks 1-2-8-2, GELU."""
    return _fasternet("t1", num_classes, in_chans, kwargs)


@register_model
def fasternet_t2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-T2: width 96, blocks 1-2-8-2, ReLU."""
    return _fasternet("t2", num_classes, in_chans, kwargs)


@register_model
def fasternet_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-S: width 128, blocks 1-2-13-2, ReLU."""
    return _fasternet("s", num_classes, in_chans, kwargs)


@register_model
def fasternet_m(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-M: width 144, blocks 3-4-18-3, ReLU."""
    return _fasternet("m", num_classes, in_chans, kwargs)


@register_model
def fasternet_l(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> FasterNet:
    """FasterNet-L: width 192, blocks 3-4-18-3, ReLU."""
    return _fasternet("l", num_classes, in_chans, kwargs)
