"""Inception v4 (Szegedy et al., 2016), the graph of PaddleClas 2.6.0 ``model_zoo/inception_v4.py``.

A stem (three 3x3 convs, then three two-branch concatenations: max pool | 3x3/2 conv,
1x1-3x3 | 1x1-7x1-1x7-3x3, 3x3/2 conv | max pool) gives 384 channels at 1/8; then four
A blocks, reduction A (to 1024 channels at 1/16), seven B blocks (factorised 7x7),
reduction B (to 1536 at 1/32) and three C blocks. Every conv has no bias and is followed
by batch norm (epsilon 1e-5) and ReLU; the A, B and C pool branches average 3x3 windows
**without** counting the zero padding (Paddle's default ``exclusive=True``, unlike
Inception v3). The head averages the last map and applies dropout 0.2 in
``downscale_in_infer`` mode (the classifier sees 0.8 times the pooled features at inference).

Unpadded convs and pools give an 8x8 map at 299x299; inputs below 75x75 would end in an
empty map and raise :class:`~paddlehub_cls.errors.InputSizeError`.

State-dict keys: ``stem.<conv>.{conv,bn}.*`` (PaddleClas's names without the leading
underscore: ``conv_1``, ``conv2``, ``conv1_1``, ``conv2_4``, ``conv3``, ...),
``blocks.<i>.<conv>.{conv,bn}.*`` (blocks 0-3 A, 4 reduction A, 5-11 B, 12 reduction B,
13-15 C), ``fc.*``.
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.inception_v3 import MIN_SIDE, conv_bn_relu
from paddlehub_cls.models.layers import PooledHeadNet, check_input_side

NUM_FEATURES = 1536


def _avg_pool_3x3() -> nn.AvgPool2D:
    # Paddle's default exclusive=True: a border mean divides by the in-image pixels only.
    return nn.AvgPool2D(3, stride=1, padding=1)


class InceptionStem(nn.Layer):
    """3 -> 384 channels at 1/8 (299 -> 35)."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.conv_1 = conv_bn_relu(in_chans, 32, 3, stride=2)
        self.conv_2 = conv_bn_relu(32, 32, 3)
        self.conv_3 = conv_bn_relu(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2D(3, stride=2)
        self.conv2 = conv_bn_relu(64, 96, 3, stride=2)
        self.conv1_1 = conv_bn_relu(160, 64, 1)
        self.conv1_2 = conv_bn_relu(64, 96, 3)
        self.conv2_1 = conv_bn_relu(160, 64, 1)
        self.conv2_2 = conv_bn_relu(64, 64, (7, 1), padding=(3, 0))
        self.conv2_3 = conv_bn_relu(64, 64, (1, 7), padding=(0, 3))
        self.conv2_4 = conv_bn_relu(64, 96, 3)
        self.conv3 = conv_bn_relu(192, 192, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv_3(self.conv_2(self.conv_1(x)))
        x = paddle.concat([self.pool(x), self.conv2(x)], axis=1)
        a = self.conv1_2(self.conv1_1(x))
        b = self.conv2_4(self.conv2_3(self.conv2_2(self.conv2_1(x))))
        x = paddle.concat([a, b], axis=1)
        return paddle.concat([self.conv3(x), self.pool(x)], axis=1)


class InceptionA(nn.Layer):
    """avg pool-1x1 | 1x1 | 1x1-3x3 | 1x1-3x3-3x3 on 384 channels: 384 out."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = _avg_pool_3x3()
        self.conv1 = conv_bn_relu(384, 96, 1)
        self.conv2 = conv_bn_relu(384, 96, 1)
        self.conv3_1 = conv_bn_relu(384, 64, 1)
        self.conv3_2 = conv_bn_relu(64, 96, 3, padding=1)
        self.conv4_1 = conv_bn_relu(384, 64, 1)
        self.conv4_2 = conv_bn_relu(64, 96, 3, padding=1)
        self.conv4_3 = conv_bn_relu(96, 96, 3, padding=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.conv3_2(self.conv3_1(x))
        b4 = self.conv4_3(self.conv4_2(self.conv4_1(x)))
        return paddle.concat([self.conv1(self.pool(x)), self.conv2(x), b3, b4], axis=1)


class ReductionA(nn.Layer):
    """max pool/2 | 3x3/2 | 1x1-3x3-3x3/2: 384 -> 1024 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2D(3, stride=2)
        self.conv2 = conv_bn_relu(384, 384, 3, stride=2)
        self.conv3_1 = conv_bn_relu(384, 192, 1)
        self.conv3_2 = conv_bn_relu(192, 224, 3, padding=1)
        self.conv3_3 = conv_bn_relu(224, 256, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.conv3_3(self.conv3_2(self.conv3_1(x)))
        return paddle.concat([self.pool(x), self.conv2(x), b3], axis=1)


class InceptionB(nn.Layer):
    """avg pool-1x1 | 1x1 | 1x1-1x7-7x1 | 1x1-1x7-7x1-1x7-7x1 on 1024 channels: 1024 out."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = _avg_pool_3x3()
        self.conv1 = conv_bn_relu(1024, 128, 1)
        self.conv2 = conv_bn_relu(1024, 384, 1)
        self.conv3_1 = conv_bn_relu(1024, 192, 1)
        self.conv3_2 = conv_bn_relu(192, 224, (1, 7), padding=(0, 3))
        self.conv3_3 = conv_bn_relu(224, 256, (7, 1), padding=(3, 0))
        self.conv4_1 = conv_bn_relu(1024, 192, 1)
        self.conv4_2 = conv_bn_relu(192, 192, (1, 7), padding=(0, 3))
        self.conv4_3 = conv_bn_relu(192, 224, (7, 1), padding=(3, 0))
        self.conv4_4 = conv_bn_relu(224, 224, (1, 7), padding=(0, 3))
        self.conv4_5 = conv_bn_relu(224, 256, (7, 1), padding=(3, 0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.conv3_3(self.conv3_2(self.conv3_1(x)))
        b4 = self.conv4_1(x)
        for conv in (self.conv4_2, self.conv4_3, self.conv4_4, self.conv4_5):
            b4 = conv(b4)
        return paddle.concat([self.conv1(self.pool(x)), self.conv2(x), b3, b4], axis=1)


class ReductionB(nn.Layer):
    """max pool/2 | 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2: 1024 -> 1536 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2D(3, stride=2)
        self.conv2_1 = conv_bn_relu(1024, 192, 1)
        self.conv2_2 = conv_bn_relu(192, 192, 3, stride=2)
        self.conv3_1 = conv_bn_relu(1024, 256, 1)
        self.conv3_2 = conv_bn_relu(256, 256, (1, 7), padding=(0, 3))
        self.conv3_3 = conv_bn_relu(256, 320, (7, 1), padding=(3, 0))
        self.conv3_4 = conv_bn_relu(320, 320, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b2 = self.conv2_2(self.conv2_1(x))
        b3 = self.conv3_4(self.conv3_3(self.conv3_2(self.conv3_1(x))))
        return paddle.concat([self.pool(x), b2, b3], axis=1)


class InceptionC(nn.Layer):
    """avg pool-1x1 | 1x1 | 1x1-(1x3, 3x1) | 1x1-1x3-3x1-(1x3, 3x1) on 1536 channels: 1536 out."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = _avg_pool_3x3()
        self.conv1 = conv_bn_relu(1536, 256, 1)
        self.conv2 = conv_bn_relu(1536, 256, 1)
        self.conv3_0 = conv_bn_relu(1536, 384, 1)
        self.conv3_1 = conv_bn_relu(384, 256, (1, 3), padding=(0, 1))
        self.conv3_2 = conv_bn_relu(384, 256, (3, 1), padding=(1, 0))
        self.conv4_0 = conv_bn_relu(1536, 384, 1)
        self.conv4_00 = conv_bn_relu(384, 448, (1, 3), padding=(0, 1))
        self.conv4_000 = conv_bn_relu(448, 512, (3, 1), padding=(1, 0))
        self.conv4_1 = conv_bn_relu(512, 256, (1, 3), padding=(0, 1))
        self.conv4_2 = conv_bn_relu(512, 256, (3, 1), padding=(1, 0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.conv3_0(x)
        b4 = self.conv4_000(self.conv4_00(self.conv4_0(x)))
        return paddle.concat(
            [
                self.conv1(self.pool(x)),
                self.conv2(x),
                self.conv3_1(b3),
                self.conv3_2(b3),
                self.conv4_1(b4),
                self.conv4_2(b4),
            ],
            axis=1,
        )


class InceptionV4(PooledHeadNet):
    """Inception v4.

    Args:
        num_classes: classifier outputs; 0 returns the pooled 1536 features.
        in_chans: input channels.
        dropout: dropout probability before the classifier (PaddleClas: 0.2).
        dropout_mode: ``"downscale_in_infer"`` (PaddleClas: the classifier sees
            ``1 - dropout`` times the pooled features at inference) or ``"upscale_in_train"``.
    """

    first_conv = "stem.conv_1.conv"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.stem = InceptionStem(in_chans)
        self.blocks = nn.Sequential(
            *[InceptionA() for _ in range(4)],
            ReductionA(),
            *[InceptionB() for _ in range(7)],
            ReductionB(),
            *[InceptionC() for _ in range(3)],
        )
        self.feature_info = [
            {"module": "stem.conv_3", "num_chs": 64, "reduction": 2},
            {"module": "blocks.3", "num_chs": 384, "reduction": 8},
            {"module": "blocks.11", "num_chs": 1024, "reduction": 16},
            {"module": "blocks.15", "num_chs": NUM_FEATURES, "reduction": 32},
        ]
        self._init_head(NUM_FEATURES, num_classes, dropout, dropout_mode)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input_side(x, MIN_SIDE, "InceptionV4")
        return self.blocks(self.stem(x))


@register_model
def inception_v4(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> InceptionV4:
    """Inception v4 (PaddleClas ``InceptionV4``)."""
    return InceptionV4(num_classes=num_classes, in_chans=in_chans, **kwargs)
