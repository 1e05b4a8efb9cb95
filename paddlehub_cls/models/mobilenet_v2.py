"""MobileNetV2 x0.25 to x2.0 (Sandler et al., 2018), in both published graphs.

``expand_first_block`` selects the graph:

* ``True``: the 2019 fluid graph (models@c1c5ed6 ``models_name/mobilenet_v2.py``) and
  PaddleClas ``model_zoo/mobilenet_v2.py`` give every inverted residual unit a 1x1
  expand conv, even the first one whose expansion factor is 1 (a 32 -> 32 conv-BN-ReLU6).
* ``False``: paddle.vision (like torchvision) omits the expand conv when the factor is 1.

The two graphs have different parameter sets (1,152 more in the first), so weights of
one cannot be loaded into the other. Everything else is shared: ReLU6 after the stem,
expand and depthwise convs, a linear 1x1 projection, a residual add where stride is 1
and the width does not change (in the 2019 graph: every unit but the first of each
group, which is the same set), a 1x1 conv to 1280 channels, global average pooling and
one fully connected layer. paddle.vision puts ``Dropout(0.2)`` before the classifier;
it is the identity at inference (``dropout`` / ``dropout_mode`` reproduce it for training).

The width multiplier ``scale`` follows PaddleClas ``MobileNet(scale=...)``: the stem and
every group's output have ``int(c * scale)`` channels, the expand width is
``round(input * t)``, and the 1x1 head keeps 1280 channels unless ``scale > 1``
(then ``int(1280 * scale)``), as in the paper.
"""

from __future__ import annotations

from typing import Optional

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, global_pool_flatten, make_dropout

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (expansion factor t, output channels c, repeats n, first stride s) per group.
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Layer):
    """Expand (1x1, optional), depthwise 3x3, linear 1x1 projection, residual add.

    Keys: ``expand.*`` (absent when skipped), ``dw.*``, ``project.*``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expansion: float,
        with_expand: bool,
        act: str = "relu6",
        hidden: Optional[int] = None,
    ) -> None:
        super().__init__()
        # MobileViT passes SiLU ("swish") and, in v2/v3, a width rounded to a multiple of 8.
        hidden = int(round(in_channels * expansion)) if hidden is None else hidden
        self.expand = ConvBNAct(in_channels, hidden, 1, act=act) if with_expand else None
        self.dw = ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, act=act)
        self.project = ConvBNAct(hidden, out_channels, 1, act=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.dw(y))
        return x + y if self.use_residual else y


class MobileNetV2(ClassifierNet):
    """MobileNetV2 with a width multiplier.

    Args:
        num_classes: classifier outputs; 0 returns the pooled features (``num_features`` wide).
        in_chans: input channels.
        expand_first_block: keep the 1x1 expand conv in units with expansion 1
            (2019 fluid and PaddleClas graphs) or drop it (paddle.vision).
        dropout: drop probability before the classifier (paddle.vision: 0.2).
        dropout_mode: mode of that dropout; ``upscale_in_train`` is the identity at inference.
        scale: width multiplier.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        expand_first_block: bool = True,
        dropout: float = 0.0,
        dropout_mode: str = "upscale_in_train",
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 4:
            raise ValueError(f"scale must be a width multiplier in (0, 4], got {scale!r}")
        self.expand_first_block = expand_first_block
        stem_c = int(STEM_CHANNELS * scale)
        self.stem = ConvBNAct(in_chans, stem_c, 3, stride=2, act="relu6")
        blocks = []
        in_c, reduction = stem_c, 2
        for g, (t, c, n, s) in enumerate(SETTINGS):
            c = int(c * scale)
            for k in range(n):
                stride = s if k == 0 else 1
                blocks.append(InvertedResidual(in_c, c, stride, t, with_expand=t != 1 or expand_first_block))
                reduction *= stride
                in_c = c
            next_stride = SETTINGS[g + 1][3] if g + 1 < len(SETTINGS) else 2
            if next_stride == 2:
                self.feature_info.append(
                    {"module": f"blocks.{len(blocks) - 1}", "num_chs": c, "reduction": reduction}
                )
        self.blocks = nn.Sequential(*blocks)
        head_c = int(HEAD_CHANNELS * scale) if scale > 1 else HEAD_CHANNELS
        self.conv_head = ConvBNAct(in_c, head_c, 1, act="relu6")
        self.feature_info[-1] = {"module": "conv_head", "num_chs": head_c, "reduction": reduction}
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = head_c
        self.fc = make_linear(head_c, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv_head(self.blocks(self.stem(x)))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.drop(global_pool_flatten(x))
        return x if pre_logits else self.fc(x)


@register_model
def mobilenet_v2(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    expand_first_block: bool = True,
    dropout: float = 0.0,
    dropout_mode: str = "upscale_in_train",
) -> MobileNetV2:
    """MobileNetV2 x1.0. Defaults give the 2019 fluid / PaddleClas graph; see the module docstring."""
    return MobileNetV2(
        num_classes=num_classes,
        in_chans=in_chans,
        expand_first_block=expand_first_block,
        dropout=dropout,
        dropout_mode=dropout_mode,
    )


@register_model
def mobilenet_v2_x0_25(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV2:
    """MobileNetV2 x0.25, the PaddleClas graph (``MobileNetV2_x0_25``)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, scale=0.25)


@register_model
def mobilenet_v2_x0_5(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV2:
    """MobileNetV2 x0.5, the PaddleClas graph (``MobileNetV2_x0_5``)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, scale=0.5)


@register_model
def mobilenet_v2_x0_75(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV2:
    """MobileNetV2 x0.75, the PaddleClas graph (``MobileNetV2_x0_75``)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, scale=0.75)


@register_model
def mobilenet_v2_x1_5(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV2:
    """MobileNetV2 x1.5, the PaddleClas graph (``MobileNetV2_x1_5``; 1920-channel head)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, scale=1.5)


@register_model
def mobilenet_v2_x2_0(num_classes: int = 1000, in_chans: int = 3) -> MobileNetV2:
    """MobileNetV2 x2.0, the PaddleClas graph (``MobileNetV2_x2_0``; 2560-channel head)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, scale=2.0)
