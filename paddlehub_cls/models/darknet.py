"""DarkNet-53 (Redmon & Farhadi, 2018), the YOLOv3 backbone as an ImageNet classifier.

The graph of PaddleClas 2.6.0 ``model_zoo/darknet.py``: a 3x3 conv-BN-ReLU stem of 32
channels and a 3x3 stride-2 conv to 64, then five stages of 1, 2, 8, 8 and 4 residual blocks
(1x1 conv-BN-ReLU to half the channels, 3x3 conv-BN-ReLU back, added to the input), stages
1-4 starting with a 3x3 stride-2 conv-BN-ReLU that doubles the channels; a global average
pool and the classifier. Every activation is ReLU (the Darknet original uses leaky ReLU;
PaddleClas's file does not) and no conv has a bias.

State-dict keys: ``stem.{0,1}.{conv,bn}.*``, ``stages.<s>.downsample.{conv,bn}.*`` (stages 1-4),
``stages.<s>.blocks.<b>.{conv1,conv2}.{conv,bn}.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, StemStagesNet

DARKNET53_DEPTHS = (1, 2, 8, 8, 4)
STEM_WIDTHS = (32, 64)


class DarkResidual(nn.Layer):
    """1x1 conv-BN-ReLU to ``channels / 2``, 3x3 conv-BN-ReLU back to ``channels``, plus the input."""

    def __init__(self, channels: int, act: str = "relu") -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels // 2, 1, act=act)
        self.conv2 = ConvBNAct(channels // 2, channels, 3, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv2(self.conv1(x))


class DarkStage(nn.Layer):
    """An optional 3x3 stride-2 conv-BN-ReLU doubling the channels, then residual blocks."""

    def __init__(self, in_channels: int, depth: int, downsample: bool) -> None:
        super().__init__()
        self.out_channels = 2 * in_channels if downsample else in_channels
        self.downsample = ConvBNAct(in_channels, self.out_channels, 3, stride=2) if downsample else None
        self.blocks = nn.Sequential(*[DarkResidual(self.out_channels) for _ in range(depth)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class DarkNet(StemStagesNet):
    """DarkNet with residual stages.

    Args:
        depths: residual blocks per stage (DarkNet-53: 1, 2, 8, 8, 4).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
    """

    first_conv = "stem.0.conv"

    def __init__(
        self, depths: Sequence[int] = DARKNET53_DEPTHS, num_classes: int = 1000, in_chans: int = 3
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, STEM_WIDTHS[0], 3), ConvBNAct(STEM_WIDTHS[0], STEM_WIDTHS[1], 3, stride=2)
        )
        stages, channels = [], STEM_WIDTHS[1]
        for s, depth in enumerate(depths):
            stages.append(DarkStage(channels, depth, downsample=s > 0))
            channels = stages[-1].out_channels
            self.feature_info.append(
                {"module": f"stages.{s}", "num_chs": channels, "reduction": 2 ** (s + 1)}
            )
        self.stages = nn.LayerList(stages)
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = make_linear(channels, num_classes)


@register_model
def darknet53(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DarkNet:
    """DarkNet-53: residual blocks 1-2-8-8-4, channels 64 to 1024."""
    return DarkNet(DARKNET53_DEPTHS, num_classes=num_classes, in_chans=in_chans, **kwargs)
