"""ShuffleNetV2 x0.25 to x2.0 (Ma et al., 2018), with ReLU or swish activations.

Paddle released two x1.0 models with the same parameter names and shapes: the
swish one (``ShuffleNetV2_swish``, the first content of the 2019
``ShuffleNetV2_pretrained.tar``) and the ReLU one (``ShuffleNetV2_x1_0``, the tar's
content after its relabelling in Sept. 2019; WEIGHTS_FACTS 0). The activation is
the only difference, so one class serves both and each builder fixes it.

Graph (identical in the 2019 fluid code, PaddleClas ``model_zoo/shufflenet_v2.py``
and ``paddle.vision.models.shufflenet_v2``):

* stem: 3x3/2 conv-BN-act to 24 channels, 3x3/2 max pool with padding 1;
* three stages of 4, 8, 4 units with 116, 232, 464 channels. The first unit of a
  stage downsamples: branch 1 is a 3x3/2 depthwise conv-BN (no act) then a 1x1
  conv-BN-act; branch 2 is 1x1 conv-BN-act, 3x3/2 depthwise conv-BN, 1x1
  conv-BN-act; the outputs are concatenated (branch 1 first). Other units split
  the input's channels in halves, keep the first and pass the second through
  branch 2, concatenating (kept half first). Every unit ends with a channel
  shuffle of 2 groups: ``[N, 2, C/2, H, W] -> transpose(0, 2, 1, 3, 4) -> [N, C, H, W]``;
* 1x1 conv-BN-act to 1024 channels, global average pool, fc.

The other widths (PaddleClas ``ShuffleNet(scale=...)``, ReLU only) keep this graph with
the stage and head channels of PaddleClas's table (``WIDTHS``); the stem stays at 24.

The 2019 graph pooled the last 7x7 map with a 7x7 window (the global mean at
224x224, the only size it ran at); we pool globally at every size, like PaddleClas
and paddle.vision.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, global_pool_flatten

STEM_CHANNELS = 24
STAGE_REPEATS = (4, 8, 4)
#: width multiplier -> (stage channels, head channels), PaddleClas model_zoo/shufflenet_v2.py
WIDTHS: Dict[float, Tuple[Tuple[int, int, int], int]] = {
    0.25: ((24, 48, 96), 512),
    0.33: ((32, 64, 128), 512),
    0.5: ((48, 96, 192), 1024),
    1.0: ((116, 232, 464), 1024),
    1.5: ((176, 352, 704), 1024),
    2.0: ((244, 488, 976), 2048),
}
ACTIVATIONS = ("relu", "swish")


def channel_shuffle(x: paddle.Tensor, groups: int) -> paddle.Tensor:
    """Interleave ``groups`` equal channel groups.

    Channel ``g * (C / groups) + i`` goes to ``i * groups + g``.
    """
    _, channels, height, width = x.shape
    x = paddle.reshape(x, [-1, groups, channels // groups, height, width])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [-1, channels, height, width])


class ShuffleUnit(nn.Layer):
    """A ShuffleNetV2 unit; ``stride == 2`` gives the downsampling form with two branches.

    Keys: ``branch2_pw1``, ``branch2_dw``, ``branch2_pw2`` and, when downsampling,
    ``branch1_dw``, ``branch1_pw`` (each a ConvBNAct: ``conv.weight``, ``bn.*``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: str) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 ShuffleUnit keeps its width, got {in_channels} -> {out_channels}")
        self.stride = stride
        half = out_channels // 2
        branch2_in = in_channels if stride == 2 else in_channels // 2
        if stride == 2:
            self.branch1_dw = ConvBNAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act=None)
            self.branch1_pw = ConvBNAct(in_channels, half, 1, act=act)
        self.branch2_pw1 = ConvBNAct(branch2_in, half, 1, act=act)
        self.branch2_dw = ConvBNAct(half, half, 3, stride=stride, groups=half, act=None)
        self.branch2_pw2 = ConvBNAct(half, half, 1, act=act)

    def _branch2(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.branch2_pw2(self.branch2_dw(self.branch2_pw1(x)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.stride == 2:
            out = paddle.concat([self.branch1_pw(self.branch1_dw(x)), self._branch2(x)], axis=1)
        else:
            kept, passed = paddle.chunk(x, 2, axis=1)
            out = paddle.concat([kept, self._branch2(passed)], axis=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ClassifierNet):
    """ShuffleNetV2 (see the module docstring).

    Args:
        num_classes: classifier outputs; 0 returns the pooled features (``num_features`` wide).
        in_chans: input channels.
        act: ``"relu"`` or ``"swish"``.
        scale: width multiplier, a key of ``WIDTHS``.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, act: str = "relu", scale: float = 1.0
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if act not in ACTIVATIONS:
            raise ValueError(f"ShuffleNetV2 act must be one of {ACTIVATIONS}, got {act!r}")
        if scale not in WIDTHS:
            raise ValueError(f"ShuffleNetV2 scale must be one of {sorted(WIDTHS)}, got {scale!r}")
        stage_channels, num_features = WIDTHS[scale]
        self.act = act
        self.stem = ConvBNAct(in_chans, STEM_CHANNELS, 3, stride=2, act=act)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.feature_info = [{"module": "stem", "num_chs": STEM_CHANNELS, "reduction": 2}]
        stages: List[nn.Layer] = []
        in_c = STEM_CHANNELS
        for i, (repeats, out_c) in enumerate(zip(STAGE_REPEATS, stage_channels)):
            units = [ShuffleUnit(in_c, out_c, 2, act)]
            units += [ShuffleUnit(out_c, out_c, 1, act) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            self.feature_info.append({"module": f"stages.{i}", "num_chs": out_c, "reduction": 2 ** (i + 3)})
            in_c = out_c
        self.stages = nn.LayerList(stages)
        self.conv_last = ConvBNAct(in_c, num_features, 1, act=act)
        self.feature_info.append({"module": "conv_last", "num_chs": num_features, "reduction": 32})
        self.num_features = num_features
        self.fc = make_linear(num_features, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.conv_last(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


@register_model
def shufflenet_v2_x1_0(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 with ReLU.

    PaddleClas ``ShuffleNetV2_x1_0``, paddle.vision ``shufflenet_v2_x1_0``.
    """
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu")


@register_model
def shufflenet_v2_swish(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 with swish.

    PaddleClas ``ShuffleNetV2_swish``, paddle.vision ``shufflenet_v2_swish``.
    """
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="swish")


@register_model
def shufflenet_v2_x0_25(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x0.25 with ReLU (PaddleClas ``ShuffleNetV2_x0_25``)."""
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu", scale=0.25)

@register_model
def shufflenet_v2_x0_33(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x0.33 with ReLU (PaddleClas ``ShuffleNetV2_x0_33``)."""
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu", scale=0.33)

@register_model
def shufflenet_v2_x0_5(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x0.5 with ReLU (PaddleClas ``ShuffleNetV2_x0_5``)."""
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu", scale=0.5)

@register_model
def shufflenet_v2_x1_5(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x1.5 with ReLU (PaddleClas ``ShuffleNetV2_x1_5``)."""
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu", scale=1.5)

@register_model
def shufflenet_v2_x2_0(num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 x2.0 with ReLU (PaddleClas ``ShuffleNetV2_x2_0``)."""
    return ShuffleNetV2(num_classes=num_classes, in_chans=in_chans, act="relu", scale=2.0)
