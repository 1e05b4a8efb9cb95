"""MobileNetV1 x0.25, x0.5, x0.75 and x1.0 (Howard et al., 2017).

The 2019 fluid graph, PaddleClas's legendary ``MobileNet`` and paddle.vision's
``MobileNetV1`` are the same network: a 3x3 stride-2 conv-BN-ReLU stem, thirteen
depthwise-separable blocks (3x3 depthwise conv-BN-ReLU, then 1x1 conv-BN-ReLU),
global average pooling and one fully connected layer. Only the names differ
(layouts/mobilenet_v1.py); no arch kwargs vary between the sources.

The width multiplier ``scale`` (PaddleClas ``MobileNet(scale=...)``) scales every
channel count, rounded down (``int(c * scale)``), the classifier input included.
"""

from __future__ import annotations

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, DepthwiseSeparable, global_pool_flatten

STEM_CHANNELS = 32
# (output channels, stride) of the thirteen depthwise-separable blocks.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class MobileNetV1(ClassifierNet):
    """MobileNetV1 with a width multiplier.

    Args:
        num_classes: classifier outputs; 0 returns the ``int(1024 * scale)``-d pooled features.
        in_chans: input channels.
        scale: width multiplier of every layer.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, scale: float = 1.0) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 4:
            raise ValueError(f"scale must be a width multiplier in (0, 4], got {scale!r}")
        stem_c = int(STEM_CHANNELS * scale)
        self.stem = ConvBNAct(in_chans, stem_c, 3, stride=2)
        blocks = []
        in_c, reduction = stem_c, 2
        for i, (out_c, stride) in enumerate(BLOCKS):
            out_c = int(out_c * scale)
            blocks.append(DepthwiseSeparable(in_c, out_c, stride))
            reduction *= stride
            last_at_this_stride = i + 1 == len(BLOCKS) or BLOCKS[i + 1][1] == 2
            if last_at_this_stride:
                self.feature_info.append({"module": f"blocks.{i}", "num_chs": out_c, "reduction": reduction})
            in_c = out_c
        self.blocks = nn.Sequential(*blocks)
        self.num_features = in_c
        self.fc = make_linear(in_c, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


@register_model
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV1:
    """MobileNetV1 x1.0; the same graph for the 2019, PaddleClas and paddle.vision weights."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans)


@register_model
def mobilenet_v1_x0_25(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV1:
    """MobileNetV1 x0.25 (PaddleClas ``MobileNetV1_x0_25``)."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, scale=0.25)


@register_model
def mobilenet_v1_x0_5(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV1:
    """MobileNetV1 x0.5 (PaddleClas ``MobileNetV1_x0_5``)."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, scale=0.5)


@register_model
def mobilenet_v1_x0_75(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV1:
    """MobileNetV1 x0.75 (PaddleClas ``MobileNetV1_x0_75``)."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, scale=0.75)
