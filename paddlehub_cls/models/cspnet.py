"""CSPDarkNet-53 (Wang et al., 2019), the cross-stage-partial DarkNet.

The graph of PaddleClas 2.6.0 ``model_zoo/cspnet.py`` (a port of timm's ``cspnet.py``): a
3x3 stride-1 conv-BN stem of 32 channels, then five cross stages of 1, 2, 8, 8 and 4 dark
blocks. A cross stage downsamples with a 3x3 stride-2 conv-BN to its output width, expands
with a 1x1 conv-BN (stage 0: to twice its width), splits the channels in two halves, runs
the dark blocks (1x1 conv-BN, 3x3 conv-BN, plus the input) on the second half, maps it with a
1x1 conv-BN (``conv_transition_b``), concatenates the untouched first half before it and
fuses both with a 1x1 conv-BN (``conv_transition``). Every activation is leaky ReLU with
Paddle's default slope 0.01; no conv has a bias. A global average pool and the classifier end it.

State-dict keys mirror PaddleClas's: ``stem.conv1.{conv,bn}.*``,
``stages.<s>.{conv_down,conv_exp,conv_transition_b,conv_transition}.{conv,bn}.*``,
``stages.<s>.blocks.<b>.{conv1,conv2}.{conv,bn}.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, StemStagesNet

_ACT = "leaky_relu"
# (output channels, dark blocks, expansion, bottleneck ratio, block ratio) per stage
CSPDARKNET53_STAGES: Tuple[Tuple[int, int, float, float, float], ...] = (
    (64, 1, 2.0, 0.5, 1.0),
    (128, 2, 1.0, 1.0, 0.5),
    (256, 8, 1.0, 1.0, 0.5),
    (512, 8, 1.0, 1.0, 0.5),
    (1024, 4, 1.0, 1.0, 0.5),
)
STEM_WIDTH = 32


class DarkBlock(nn.Layer):
    """1x1 conv-BN-act to ``mid`` channels, 3x3 conv-BN-act back to ``channels``, plus the input."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, mid, 1, act=_ACT)
        self.conv2 = ConvBNAct(mid, channels, 3, act=_ACT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv2(self.conv1(x))


class CrossStage(nn.Layer):
    """Stride-2 conv, 1x1 expansion, dark blocks on half the channels, two 1x1 transitions.

    Args:
        in_channels: channels entering the stage.
        out_channels: channels of the downsampling conv and of the stage's output.
        depth: dark blocks.
        expansion: width of the expansion conv in multiples of ``out_channels``.
        bottle_ratio: a dark block's inner width in multiples of its width.
        block_ratio: the dark blocks' width in multiples of ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        expansion: float,
        bottle_ratio: float,
        block_ratio: float,
    ) -> None:
        super().__init__()
        expanded = int(round(out_channels * expansion))
        width = int(round(out_channels * block_ratio))
        if width != expanded // 2:
            raise ValueError(
                f"the dark blocks ({width} channels) must be as wide as half the expansion "
                f"({expanded} channels); change block_ratio or expansion"
            )
        self.conv_down = ConvBNAct(in_channels, out_channels, 3, stride=2, act=_ACT)
        self.conv_exp = ConvBNAct(out_channels, expanded, 1, act=_ACT)
        mid = int(round(width * bottle_ratio))
        self.blocks = nn.Sequential(*[DarkBlock(width, mid) for _ in range(depth)])
        self.conv_transition_b = ConvBNAct(width, expanded // 2, 1, act=_ACT)
        self.conv_transition = ConvBNAct(expanded, out_channels, 1, act=_ACT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv_exp(self.conv_down(x))
        kept, worked = paddle.split(x, 2, axis=1)
        worked = self.conv_transition_b(self.blocks(worked))
        return self.conv_transition(paddle.concat([kept, worked], axis=1))


class CSPDarkNet(StemStagesNet):
    """CSPDarkNet.

    Args:
        stages: per stage (output channels, dark blocks, expansion, bottleneck ratio, block ratio).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
    """

    first_conv = "stem.conv1.conv"

    def __init__(
        self,
        stages: Sequence[Tuple[int, int, float, float, float]] = CSPDARKNET53_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.stem = nn.Sequential(("conv1", ConvBNAct(in_chans, STEM_WIDTH, 3, act=_ACT)))
        layers, channels = [], STEM_WIDTH
        for s, (out_channels, depth, expansion, bottle_ratio, block_ratio) in enumerate(stages):
            layers.append(CrossStage(channels, out_channels, depth, expansion, bottle_ratio, block_ratio))
            channels = out_channels
            self.feature_info.append(
                {"module": f"stages.{s}", "num_chs": channels, "reduction": 2 ** (s + 1)}
            )
        self.stages = nn.LayerList(layers)
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = make_linear(channels, num_classes)


@register_model
def cspdarknet53(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CSPDarkNet:
    """CSPDarkNet-53: cross stages of 1-2-8-8-4 dark blocks, channels 64 to 1024."""
    return CSPDarkNet(CSPDARKNET53_STAGES, num_classes=num_classes, in_chans=in_chans, **kwargs)
