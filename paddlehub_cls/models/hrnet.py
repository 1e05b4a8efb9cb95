"""HRNet-W18...W64 classification networks and SE-HRNet-W64 (Wang et al., 2019).

The graph of PaddleClas 2.6.0 ``legendary_models/hrnet.py`` (the "C" classification
variant of the HRNet paper, appendix): a stem of two 3x3 stride-2 conv-BN-ReLU (64
channels, 1/4 resolution), four ResNet bottlenecks (64 -> 256), then three stages of
parallel branches at 1/4, 1/8, 1/16, 1/32 with ``width * 2**i`` channels (1, 4 and 3
high-resolution modules with 2, 3 and 4 branches). A module runs four basic blocks per
branch, then fuses: output ``i`` is the ReLU of branch ``i`` plus every other branch
brought to its resolution, by a 1x1 conv-BN and nearest upsampling from a coarser
branch, or by a chain of 3x3 stride-2 conv-BNs from a finer one (ReLU between the
convs of a chain, not after the last). The head turns each of the four branches into
128/256/512/1024 channels with one bottleneck, sums them from fine to coarse through
3x3 stride-2 conv-BN-ReLUs, and ends in a 1x1 conv-BN-ReLU to 2048 channels, global
average pooling and the classifier.

SE-HRNet adds squeeze-excitation (ratio 16) to every basic block and bottleneck.
PaddleClas upsamples by a fixed factor, so it needs input sides that are multiples of 32; we
crop the upsampled map to the finer branch's size, which is the same there and works at any side
(:func:`upsample_nearest`).

State-dict keys: ``stem.<0|1>``, ``layer1.<b>.{conv1,conv2,conv3,shortcut}``,
``transition1.<0|1>``, ``transition2``, ``transition3``,
``stages.<s>.<m>.branches.<i>.<b>.{conv1,conv2}``, ``stages.<s>.<m>.fuse.<i>.paths.<j>[.<k>]``,
``incre.<i>``, ``downsamp.<i>``, ``final`` (conv-BN layers: ``.conv.weight``, ``.bn.*``;
SE: ``.se.{squeeze,excite}.*``), ``fc.{weight,bias}``.
"""

from __future__ import annotations

from typing import Any, List, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, global_pool_flatten
from paddlehub_cls.models.resnet import BasicBlock, Bottleneck

#: high-resolution modules per stage (stages 2, 3, 4 of the paper)
MODULES_PER_STAGE = (1, 4, 3)
#: basic blocks per branch in each module
BLOCKS_PER_BRANCH = 4
#: bottleneck widths of the head, one per branch (outputs are 4x these)
HEAD_WIDTHS = (32, 64, 128, 256)
HEAD_CHANNELS = 2048
_SE_REDUCTION = 16


def upsample_nearest(x: paddle.Tensor, factor: int, size: Sequence[int]) -> paddle.Tensor:
    """Each pixel repeated ``factor`` x ``factor`` times, cropped to ``size`` (H, W).

    Where ``size`` is ``factor`` times the input (sides divisible by 32), this is PaddleClas's
    ``upsample(scale_factor=factor, mode="nearest")`` pixel for pixel; at other sides, where
    PaddleClas's sum fails on mismatched shapes, the odd last row/column is dropped. Written
    with tile and reshape because Paddle Inference's oneDNN ``nearest_interp`` kernel rejects
    the op's float ``scale`` attribute, so an exported HRNet with ``interpolate`` does not run
    on CPU.
    """
    h, w = x.shape[2], x.shape[3]
    y = paddle.tile(x.unsqueeze([3, 5]), [1, 1, 1, factor, 1, factor])
    y = y.reshape([0, 0, h * factor, w * factor])
    return y[:, :, : size[0], : size[1]]


class FuseOutput(nn.Layer):
    """Output ``i`` of a fuse: ReLU(branch i + every other branch resampled to branch i).

    ``paths.<j>``: 1x1 conv-BN for a coarser branch ``j > i`` (then nearest upsampling by
    ``2**(j-i)``), ``i - j`` 3x3 stride-2 conv-BNs for a finer branch ``j < i`` (the
    intermediate ones keep branch ``j``'s channels and have a ReLU), identity for ``j == i``.
    """

    def __init__(self, i: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.i = i
        paths: List[nn.Layer] = []
        for j, c_j in enumerate(channels):
            if j > i:
                paths.append(ConvBNAct(c_j, channels[i], 1, act=None))
            elif j < i:
                steps = [ConvBNAct(c_j, c_j, 3, stride=2) for _ in range(i - j - 1)]
                steps.append(ConvBNAct(c_j, channels[i], 3, stride=2, act=None))
                paths.append(nn.Sequential(*steps))
            else:
                paths.append(nn.Identity())
        self.paths = nn.LayerList(paths)

    def forward(self, xs: List[paddle.Tensor]) -> paddle.Tensor:
        out = xs[self.i]
        for j, (path, x) in enumerate(zip(self.paths, xs)):
            if j > self.i:
                out = out + upsample_nearest(path(x), 2 ** (j - self.i), out.shape[2:])
            elif j < self.i:
                out = out + path(x)
        return nn.functional.relu(out)


class HighResolutionModule(nn.Layer):
    """Four basic blocks per branch, then every branch's fused output."""

    def __init__(self, channels: Sequence[int], se_reduction: int) -> None:
        super().__init__()
        self.branches = nn.LayerList(
            [
                nn.Sequential(
                    *[
                        BasicBlock(c, c, c, 1, False, se_reduction=se_reduction)
                        for _ in range(BLOCKS_PER_BRANCH)
                    ]
                )
                for c in channels
            ]
        )
        self.fuse = nn.LayerList([FuseOutput(i, channels) for i in range(len(channels))])

    def forward(self, xs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        return [fuse(xs) for fuse in self.fuse]


class HRNet(ClassifierNet):
    """HRNet classification network of a given branch width.

    Args:
        width: channels of the highest-resolution branch (18, 30, 32, 40, 44, 48, 64).
        se: squeeze-excitation in every residual block (SE-HRNet).
        num_classes: classifier outputs; 0 returns the 2048-d pooled features.
        in_chans: input channels.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0.conv"

    def __init__(self, width: int, se: bool = False, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"HRNet width must be a positive int (e.g. 18 or 48), got {width!r}")
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        check_num_classes(num_classes)
        self.width = width
        se_reduction = _SE_REDUCTION if se else 0
        channels = [width * 2**i for i in range(4)]

        self.stem = nn.Sequential(ConvBNAct(in_chans, 64, 3, stride=2), ConvBNAct(64, 64, 3, stride=2))
        self.layer1 = nn.Sequential(
            *[
                Bottleneck(64 if b == 0 else 256, 64, 256, 1, b == 0, se_reduction=se_reduction)
                for b in range(4)
            ]
        )
        self.transition1 = nn.LayerList(
            [ConvBNAct(256, channels[0], 3), ConvBNAct(256, channels[1], 3, stride=2)]
        )
        self.transition2 = ConvBNAct(channels[1], channels[2], 3, stride=2)
        self.transition3 = ConvBNAct(channels[2], channels[3], 3, stride=2)
        self.stages = nn.LayerList(
            [
                nn.Sequential(*[HighResolutionModule(channels[: s + 2], se_reduction) for _ in range(n)])
                for s, n in enumerate(MODULES_PER_STAGE)
            ]
        )
        last = f"stages.{len(MODULES_PER_STAGE) - 1}.{MODULES_PER_STAGE[-1] - 1}"
        for i, c in enumerate(channels):
            self.feature_info.append({"module": f"{last}.fuse.{i}", "num_chs": c, "reduction": 4 * 2**i})

        outs = [4 * w for w in HEAD_WIDTHS]
        self.incre = nn.LayerList(
            [
                Bottleneck(c, w, 4 * w, 1, True, se_reduction=se_reduction)
                for c, w in zip(channels, HEAD_WIDTHS)
            ]
        )
        self.downsamp = nn.LayerList([ConvBNAct(outs[i], outs[i + 1], 3, stride=2) for i in range(3)])
        self.final = ConvBNAct(outs[-1], HEAD_CHANNELS, 1)

        self.num_features = HEAD_CHANNELS
        self.num_classes = num_classes
        self.fc = make_linear(HEAD_CHANNELS, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.layer1(self.stem(x))
        xs = [t(x) for t in self.transition1]
        xs = self.stages[0](xs)
        xs = self.stages[1](xs + [self.transition2(xs[-1])])
        xs = self.stages[2](xs + [self.transition3(xs[-1])])
        y = self.incre[0](xs[0])
        for incre, down, x in zip(self.incre[1:], self.downsamp, xs[1:]):
            y = incre(x) + down(y)
        return self.final(y)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


def _hrnet(width: int, num_classes: int, in_chans: int, kwargs: Any, se: bool = False) -> HRNet:
    return HRNet(width, se=se, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def hrnet_w18_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W18-C (branches of 18/36/72/144 channels)."""
    return _hrnet(18, num_classes, in_chans, kwargs)


@register_model
def hrnet_w30_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W30-C (branches of 30/60/120/240 channels)."""
    return _hrnet(30, num_classes, in_chans, kwargs)


@register_model
def hrnet_w32_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W32-C (branches of 32/64/128/256 channels)."""
    return _hrnet(32, num_classes, in_chans, kwargs)


@register_model
def hrnet_w40_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W40-C (branches of 40/80/160/320 channels)."""
    return _hrnet(40, num_classes, in_chans, kwargs)


@register_model
def hrnet_w44_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W44-C (branches of 44/88/176/352 channels)."""
    return _hrnet(44, num_classes, in_chans, kwargs)


@register_model
def hrnet_w48_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W48-C (branches of 48/96/192/384 channels)."""
    return _hrnet(48, num_classes, in_chans, kwargs)


@register_model
def hrnet_w64_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """HRNet-W64-C (branches of 64/128/256/512 channels)."""
    return _hrnet(64, num_classes, in_chans, kwargs)


@register_model
def se_hrnet_w64_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HRNet:
    """SE-HRNet-W64-C: HRNet-W64-C with squeeze-excitation in every residual block."""
    return _hrnet(64, num_classes, in_chans, kwargs, se=True)
