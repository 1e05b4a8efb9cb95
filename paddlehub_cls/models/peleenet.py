"""PeleeNet (Wang et al., 2018), a DenseNet variant for mobile devices.

The graph of PaddleClas 2.6.0 ``model_zoo/peleenet.py``. Every conv is conv-BN-ReLU without
bias. The stem block: a 3x3 stride-2 conv to 32 channels, then two branches (a 2x2 stride-2
max pool; a 1x1 conv to 16 and a 3x3 stride-2 conv back to 32) concatenated and fused by a 1x1
conv to 32. Four dense stages of 3, 4, 8 and 6 two-way dense layers (growth 32: each branch
adds 16 channels; branch 1 is a 1x1 bottleneck and a 3x3 conv, branch 2 a 1x1 bottleneck and
two 3x3 convs; the bottlenecks have 16, 32, 64 and 64 channels per stage), each stage
ending with a 1x1 transition conv that keeps the channel count, stages 1-3 starting with a
2x2 stride-2 average pool. A global average pool, dropout 0.05 (``F.dropout``'s upscale mode:
the identity at inference) and the classifier end it.

State-dict keys: ``stem.{stem1,stem2a,stem2b,stem3}.{conv,bn}.*``,
``stages.<s>.layers.<j>.{branch1a,branch1b,branch2a,branch2b,branch2c}.{conv,bn}.*``,
``stages.<s>.transition.{conv,bn}.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, StemStagesNet, make_dropout

PELEENET_BLOCKS = (3, 4, 8, 6)
PELEENET_BOTTLENECK_WIDTHS = (1, 2, 4, 4)
STEM_WIDTH = 32
GROWTH = 32


class StemBlock(nn.Layer):
    """3x3/2 conv; a 2x2/2 max pool and a 1x1 conv + 3x3/2 conv side by side; a 1x1 conv fusing both."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, width, 3, stride=2)
        self.stem2a = ConvBNAct(width, width // 2, 1)
        self.stem2b = ConvBNAct(width // 2, width, 3, stride=2)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2)
        self.stem3 = ConvBNAct(2 * width, width, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem1(x)
        return self.stem3(paddle.concat([self.pool(x), self.stem2b(self.stem2a(x))], axis=1))


def bottleneck_width(in_channels: int, branch_growth: int, width: int) -> int:
    """PaddleClas's inner width of a two-way dense layer: ``branch_growth * width / 4`` floored to a
    multiple of 4, or ``in_channels / 8`` floored to 4s where that would exceed half the input."""
    inner = int(branch_growth * width / 4) * 4
    if inner > in_channels / 2:
        inner = int(in_channels / 8) * 4
    return inner


class TwoWayDenseLayer(nn.Layer):
    """Two branches adding ``growth / 2`` channels each, concatenated after the input."""

    def __init__(self, in_channels: int, growth: int, width: int) -> None:
        super().__init__()
        half = growth // 2
        inner = bottleneck_width(in_channels, half, width)
        self.branch1a = ConvBNAct(in_channels, inner, 1)
        self.branch1b = ConvBNAct(inner, half, 3)
        self.branch2a = ConvBNAct(in_channels, inner, 1)
        self.branch2b = ConvBNAct(inner, half, 3)
        self.branch2c = ConvBNAct(half, half, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        one = self.branch1b(self.branch1a(x))
        two = self.branch2c(self.branch2b(self.branch2a(x)))
        return paddle.concat([x, one, two], axis=1)


class PeleeStage(nn.Layer):
    """An optional 2x2/2 average pool, two-way dense layers, a 1x1 transition keeping the width."""

    def __init__(self, in_channels: int, num_layers: int, growth: int, width: int, pool: bool) -> None:
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size=2, stride=2) if pool else None
        self.layers = nn.Sequential(
            *[TwoWayDenseLayer(in_channels + j * growth, growth, width) for j in range(num_layers)]
        )
        self.out_channels = in_channels + num_layers * growth
        self.transition = ConvBNAct(self.out_channels, self.out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        return self.transition(self.layers(x))


class PeleeNet(StemStagesNet):
    """PeleeNet.

    Args:
        blocks: two-way dense layers per stage.
        widths: bottleneck width factor per stage.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        dropout: drop probability before the classifier in training (identity at inference).
    """

    first_conv = "stem.stem1.conv"

    def __init__(
        self,
        blocks: Sequence[int] = PELEENET_BLOCKS,
        widths: Sequence[int] = PELEENET_BOTTLENECK_WIDTHS,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(
                f"blocks and widths need one entry per stage, got {list(blocks)} and {list(widths)}"
            )
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.stem = StemBlock(in_chans, STEM_WIDTH)
        self.feature_info.append({"module": "stem", "num_chs": STEM_WIDTH, "reduction": 4})
        stages, channels = [], STEM_WIDTH
        for s, (num_layers, width) in enumerate(zip(blocks, widths)):
            stages.append(PeleeStage(channels, num_layers, GROWTH, width, pool=s > 0))
            channels = stages[-1].out_channels
            self.feature_info.append({"module": f"stages.{s}", "num_chs": channels, "reduction": 4 * 2**s})
        self.stages = nn.LayerList(stages)
        self.drop = make_dropout(dropout, "upscale_in_train")
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = make_linear(channels, num_classes)


@register_model
def peleenet(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PeleeNet:
    """PeleeNet: two-way dense stages of 3-4-8-6 layers, growth 32, 704 output channels."""
    return PeleeNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
