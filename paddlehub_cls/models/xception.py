"""Xception 41, 65 and 71, the graph of PaddleClas 2.6.0 ``model_zoo/xception.py``.

This port differs from Chollet's Xception (and from PaddleClas's separate
``xception_deeplab.py``, our ``xception_deeplab`` family) in ways that change the numbers:

* a separable conv is a **1x1 pointwise conv first**, then the 3x3 depthwise conv, each
  followed by batch norm (epsilon 1e-5) and no activation;
* a block applies ReLU before each separable conv (the first entry block skips the first
  one: its input has just been through the stem's ReLU), and the entry and exit blocks end
  in a 3x3 max pool (padding 1) with the block's stride, **even at stride 1** (Xception71's
  extra entry blocks), added to a 1x1 shortcut conv **without** batch norm;
* middle blocks add their input to three ReLU + separable conv steps;
* after the exit block come two separable convs (1024 -> 1536 -> 2048), each followed by
  ReLU, then the global average and the classifier (no dropout).

Entry flow: Xception41/65 have three blocks (64 -> 128, 256, 728, each stride 2);
Xception71 five (128 s2, 256 s1, 256 s2, 728 s1, 728 s2). Middle flow: 8 blocks (41) or 16.

State-dict keys: ``stem.{0,1}.{conv,bn}.*``, ``blocks.<i>.shortcut.weight`` (entry and exit
blocks), ``blocks.<i>.convs.<j>.{pw,dw}.{conv,bn}.*``, ``head_convs.{0,2}.{pw,dw}.{conv,bn}.*``,
``fc.*``. ``blocks`` holds the entry blocks, the middle blocks and the exit block in order.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, global_pool_flatten

# name -> ((out channels, stride) of each entry block, middle blocks)
XCEPTION_CONFIGS = {
    "xception41": (((128, 2), (256, 2), (728, 2)), 8),
    "xception65": (((128, 2), (256, 2), (728, 2)), 16),
    "xception71": (((128, 2), (256, 1), (256, 2), (728, 1), (728, 2)), 16),
}
MIDDLE_WIDTH = 728
EXIT_WIDTHS = (728, 1024)  # the exit block's two separable convs
HEAD_WIDTHS = (1536, 2048)
NUM_FEATURES = HEAD_WIDTHS[-1]


class SeparableConv(nn.Layer):
    """1x1 conv-BN, then 3x3 depthwise conv-BN (both without activation). Keys: ``pw.*``, ``dw.*``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.pw = ConvBNAct(c_in, c_out, 1, act=None)
        self.dw = ConvBNAct(c_out, c_out, 3, groups=c_out, act=None)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.dw(self.pw(x))


class XceptionBlock(nn.Layer):
    """ReLU + separable conv steps, then (with a shortcut conv) a 3x3 max pool at ``stride``.

    Args:
        c_in: input channels.
        widths: output channels of each separable conv.
        stride: stride of the max pool and the shortcut conv (entry and exit blocks).
        projection: a 1x1 shortcut conv (no BN) and the max pool; else an identity
            shortcut and no pool (middle blocks).
        relu_first: apply ReLU before the first separable conv.
    """

    def __init__(
        self, c_in: int, widths: Sequence[int], stride: int, projection: bool, relu_first: bool = True
    ) -> None:
        super().__init__()
        self.relu_first = relu_first
        self.convs = nn.LayerList()
        c = c_in
        for width in widths:
            self.convs.append(SeparableConv(c, width))
            c = width
        if projection:
            self.shortcut = nn.Conv2D(
                c_in, c, 1, stride=stride, weight_attr=conv_weight_attr(c, 1), bias_attr=False
            )
            self.pool = nn.MaxPool2D(3, stride=stride, padding=1)
        else:
            self.shortcut = None
            self.pool = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x
        for i, conv in enumerate(self.convs):
            if i > 0 or self.relu_first:
                y = nn.functional.relu(y)
            y = conv(y)
        if self.shortcut is None:
            return x + y
        return self.shortcut(x) + self.pool(y)


class Xception(ClassifierNet):
    """PaddleClas's Xception.

    Args:
        entry: ``(out channels, stride)`` of each entry-flow block.
        middle_depth: middle-flow blocks (728 channels each).
        num_classes: classifier outputs; 0 returns the pooled 2048 features.
        in_chans: input channels.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0.conv"

    def __init__(
        self,
        entry: Sequence[Tuple[int, int]],
        middle_depth: int,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.stem = nn.Sequential(ConvBNAct(in_chans, 32, 3, stride=2), ConvBNAct(32, 64, 3))
        self.entry_depth = len(entry)
        self.middle_depth = middle_depth
        blocks: List[nn.Layer] = []
        info = [{"module": "stem", "num_chs": 64, "reduction": 2}]
        c, reduction = 64, 2
        for i, (width, stride) in enumerate(entry):
            blocks.append(XceptionBlock(c, (width, width), stride, projection=True, relu_first=i > 0))
            c, reduction = width, reduction * stride
            # the last block of each reduction (before the middle flow, which stays at 1/16)
            if i + 1 < len(entry) and entry[i + 1][1] == 2:
                info.append({"module": f"blocks.{i}", "num_chs": c, "reduction": reduction})
        blocks += [XceptionBlock(c, (c,) * 3, 1, projection=False) for _ in range(middle_depth)]
        info.append({"module": f"blocks.{len(blocks) - 1}", "num_chs": c, "reduction": reduction})
        blocks.append(XceptionBlock(c, EXIT_WIDTHS, 2, projection=True))
        self.blocks = nn.Sequential(*blocks)
        self.head_convs = nn.Sequential(
            SeparableConv(EXIT_WIDTHS[-1], HEAD_WIDTHS[0]),
            nn.ReLU(),
            SeparableConv(HEAD_WIDTHS[0], HEAD_WIDTHS[1]),
            nn.ReLU(),
        )
        info.append({"module": "head_convs", "num_chs": NUM_FEATURES, "reduction": reduction * 2})
        self.feature_info = info
        self.num_features = NUM_FEATURES
        self.num_classes = num_classes
        self.fc = make_linear(NUM_FEATURES, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head_convs(self.blocks(self.stem(x)))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


def _xception(name: str, num_classes: int, in_chans: int, kwargs: Any) -> Xception:
    entry, middle = XCEPTION_CONFIGS[name]
    return Xception(entry, middle, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def xception41(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> Xception:
    """Xception41: 3 entry blocks, 8 middle blocks."""
    return _xception("xception41", num_classes, in_chans, kwargs)


@register_model
def xception65(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> Xception:
    """Xception65: 3 entry blocks, 16 middle blocks."""
    return _xception("xception65", num_classes, in_chans, kwargs)


@register_model
def xception71(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> Xception:
    """Xception71: 5 entry blocks (strides 2, 1, 2, 1, 2), 16 middle blocks."""
    return _xception("xception71", num_classes, in_chans, kwargs)
