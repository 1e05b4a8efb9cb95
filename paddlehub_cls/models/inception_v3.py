"""Inception v3 (Szegedy et al., 2015), the graph of PaddleClas and paddle.vision.

PaddleClas 2.6.0 ``legendary_models/inception_v3.py`` and paddle.vision's
``inceptionv3.py`` build the same network (torchvision's topology without the
auxiliary head): a stem of five conv-BN-ReLU layers and two unpadded 3x3/2 max pools,
then three A blocks, a B (grid reduction), four C blocks (factorised 7x7), a D (grid
reduction) and two E blocks (expanded 3x3 pairs). Every convolution has no bias and is
followed by batch norm (epsilon 1e-5) and ReLU; the A, C and E pool branches average
3x3 windows counting the zero padding (``exclusive=False``). The head averages the last
2048-channel map and applies dropout 0.2 in ``downscale_in_infer`` mode, so at inference
the classifier sees 0.8 times the pooled features (``dropout_mode`` selects the mode).

The unpadded stem and reductions give a 8x8 map at 299x299 (1/37 of the input side,
not 1/32); ``feature_info`` records the nominal strides 2, 4, 8, 16, 32. Inputs below
75x75 would end in an empty map and raise :class:`~paddlehub_cls.errors.InputSizeError`.

State-dict keys: ``stem.<conv>.{conv,bn}.*`` (``conv_1a_3x3`` ... ``conv_4a_3x3``),
``blocks.<i>.<branch>.{conv,bn}.*`` with PaddleClas's branch names (``branch1x1``,
``branch5x5_1``, ``branch3x3dbl_2``, ``branch_pool_conv``, ...), ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Tuple, Union

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, PooledHeadNet, check_input_side

NUM_FEATURES = 2048
# The smallest side whose last map is not empty (75 -> 37, 35, 17, 15, 7, 3, 1).
MIN_SIDE = 75
Pair = Union[int, Tuple[int, int]]


def conv_bn_relu(c_in: int, c_out: int, kernel: Pair, stride: int = 1, padding: Pair = 0) -> ConvBNAct:
    """Conv (no bias), BN, ReLU; padding 0 unless given (Inception v3 and v4 pad explicitly,
    unlike ConvBNAct's "same" default)."""
    return ConvBNAct(c_in, c_out, kernel, stride=stride, padding=padding)


def _avg_pool_3x3() -> nn.AvgPool2D:
    # exclusive=False: the zero padding counts, so a border mean is divided by 9.
    return nn.AvgPool2D(3, stride=1, padding=1, exclusive=False)


class InceptionStem(nn.Layer):
    """3x3/2, 3x3, 3x3 (padded), max pool, 1x1, 3x3, max pool: 3 -> 192 channels at 1/8."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.conv_1a_3x3 = conv_bn_relu(in_chans, 32, 3, stride=2)
        self.conv_2a_3x3 = conv_bn_relu(32, 32, 3)
        self.conv_2b_3x3 = conv_bn_relu(32, 64, 3, padding=1)
        self.max_pool = nn.MaxPool2D(3, stride=2)
        self.conv_3b_1x1 = conv_bn_relu(64, 80, 1)
        self.conv_4a_3x3 = conv_bn_relu(80, 192, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv_2b_3x3(self.conv_2a_3x3(self.conv_1a_3x3(x)))
        x = self.conv_3b_1x1(self.max_pool(x))
        return self.max_pool(self.conv_4a_3x3(x))


class InceptionA(nn.Layer):
    """1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg pool-1x1: ``224 + pool_features`` channels."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = conv_bn_relu(c_in, 64, 1)
        self.branch5x5_1 = conv_bn_relu(c_in, 48, 1)
        self.branch5x5_2 = conv_bn_relu(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = conv_bn_relu(c_in, 64, 1)
        self.branch3x3dbl_2 = conv_bn_relu(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv_bn_relu(96, 96, 3, padding=1)
        self.branch_pool = _avg_pool_3x3()
        self.branch_pool_conv = conv_bn_relu(c_in, pool_features, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool_conv(self.branch_pool(x))
        return paddle.concat([self.branch1x1(x), b5, b3, bp], axis=1)


class InceptionB(nn.Layer):
    """Grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | max pool/2 (unpadded): ``c_in + 480`` channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = conv_bn_relu(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = conv_bn_relu(c_in, 64, 1)
        self.branch3x3dbl_2 = conv_bn_relu(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv_bn_relu(96, 96, 3, stride=2)
        self.branch_pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return paddle.concat([self.branch3x3(x), b3, self.branch_pool(x)], axis=1)


class InceptionC(nn.Layer):
    """Factorised 7x7: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg pool-1x1: 768 channels."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = conv_bn_relu(c_in, 192, 1)
        self.branch7x7_1 = conv_bn_relu(c_in, c7, 1)
        self.branch7x7_2 = conv_bn_relu(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = conv_bn_relu(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv_bn_relu(c_in, c7, 1)
        self.branch7x7dbl_2 = conv_bn_relu(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv_bn_relu(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv_bn_relu(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv_bn_relu(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _avg_pool_3x3()
        self.branch_pool_conv = conv_bn_relu(c_in, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = conv(d)
        bp = self.branch_pool_conv(self.branch_pool(x))
        return paddle.concat([self.branch1x1(x), b7, d, bp], axis=1)


class InceptionD(nn.Layer):
    """Grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2: ``c_in + 512`` channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = conv_bn_relu(c_in, 192, 1)
        self.branch3x3_2 = conv_bn_relu(192, 320, 3, stride=2)
        self.branch7x7x3_1 = conv_bn_relu(c_in, 192, 1)
        self.branch7x7x3_2 = conv_bn_relu(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv_bn_relu(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv_bn_relu(192, 192, 3, stride=2)
        self.branch_pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return paddle.concat([b3, b7, self.branch_pool(x)], axis=1)


class InceptionE(nn.Layer):
    """Expanded: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avg pool-1x1: 2048 channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch1x1 = conv_bn_relu(c_in, 320, 1)
        self.branch3x3_1 = conv_bn_relu(c_in, 384, 1)
        self.branch3x3_2a = conv_bn_relu(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = conv_bn_relu(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv_bn_relu(c_in, 448, 1)
        self.branch3x3dbl_2 = conv_bn_relu(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv_bn_relu(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv_bn_relu(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _avg_pool_3x3()
        self.branch_pool_conv = conv_bn_relu(c_in, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return paddle.concat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool_conv(self.branch_pool(x)),
            ],
            axis=1,
        )


class InceptionV3(PooledHeadNet):
    """Inception v3 without the auxiliary head.

    Args:
        num_classes: classifier outputs; 0 returns the pooled 2048 features.
        in_chans: input channels.
        dropout: dropout probability before the classifier (both sources: 0.2).
        dropout_mode: ``"downscale_in_infer"`` (both sources: the classifier sees
            ``1 - dropout`` times the pooled features at inference) or ``"upscale_in_train"``.
    """

    first_conv = "stem.conv_1a_3x3.conv"

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
            InceptionA(192, 32),
            InceptionA(256, 64),
            InceptionA(288, 64),
            InceptionB(288),
            InceptionC(768, 128),
            InceptionC(768, 160),
            InceptionC(768, 160),
            InceptionC(768, 192),
            InceptionD(768),
            InceptionE(1280),
            InceptionE(NUM_FEATURES),
        )
        self.feature_info = [
            {"module": "stem.conv_2b_3x3", "num_chs": 64, "reduction": 2},
            {"module": "stem.conv_4a_3x3", "num_chs": 192, "reduction": 4},
            {"module": "blocks.2", "num_chs": 288, "reduction": 8},
            {"module": "blocks.7", "num_chs": 768, "reduction": 16},
            {"module": "blocks.10", "num_chs": NUM_FEATURES, "reduction": 32},
        ]
        self._init_head(NUM_FEATURES, num_classes, dropout, dropout_mode)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input_side(x, MIN_SIDE, "InceptionV3")
        return self.blocks(self.stem(x))


@register_model
def inception_v3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> InceptionV3:
    """Inception v3 (PaddleClas ``InceptionV3``, paddle.vision ``inception_v3``)."""
    return InceptionV3(num_classes=num_classes, in_chans=in_chans, **kwargs)
