"""Blocks shared by several families: conv-BN-activation, squeeze-excitation, pooling head,
channels-first layer norm and stochastic depth."""

from __future__ import annotations

import math
from typing import Optional

import paddle
from paddle import nn

# The 2019 fluid batch_norm defaults; Paddle's nn.BatchNorm2D uses the same values.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.Swish,
    "sigmoid": nn.Sigmoid,
    # The exact (erf) form: PaddleClas's ConvNeXt and transformers use nn.GELU's default.
    "gelu": nn.GELU,
}


def make_act(name: Optional[str]) -> nn.Layer:
    """Activation layer by name; ``None`` gives the identity."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)} or None") from None


def conv_weight_attr(out_channels: int, kernel_size: int, groups: int = 1) -> paddle.ParamAttr:
    """Kaiming-normal fan-out initialiser of a conv weight, counting the fan-out of one group.

    ``N(0, sqrt(2 / fan_out))`` with ``fan_out = out_channels * k * k / groups``: timm's
    ``fix_group_fanout`` rule for its depthwise networks (from TensorFlow's MnasNet and
    EfficientNet code). Each output sums ``in_channels / groups * k * k`` inputs, so the
    variance is kept through a conv-BN-ReLU. Paddle's default, ``sqrt(2 / (in_channels * k * k))``,
    ignores ``groups``: a 3x3 depthwise conv of 512 channels starts about 23x (sqrt(512)) too
    small, and a fresh MobileNetV1 in eval mode returns pooled features of ~1e-17.

    As an initialiser object in the ``ParamAttr``, it is deferred under ``paddle.LazyGuard``
    like any default, so a network whose weights are about to be loaded never runs it (the
    ``ParamAttr``, which Paddle deep-copies, adds ~60 us per conv to building the layers).
    """
    fan_out = max(out_channels * kernel_size * kernel_size // groups, 1)
    return paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out)))


class ConvBNAct(nn.Layer):
    """Convolution without bias, batch norm, optional activation.

    The conv weight starts from :func:`conv_weight_attr`; the batch norm keeps Paddle's
    default weight 1 and bias 0 (stating them in ParamAttrs would cost another ~100 us per
    layer, even under ``paddle.LazyGuard``). State-dict keys: ``conv.weight``, ``bn.weight``,
    ``bn.bias``, ``bn._mean``, ``bn._variance``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: Optional[str] = "relu",
        padding: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2 if padding is None else padding,
            groups=groups,
            weight_attr=conv_weight_attr(out_channels, kernel_size, groups),
            bias_attr=False,
        )
        self.bn = nn.BatchNorm2D(out_channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        self.act = make_act(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Layer):
    """Squeeze-and-excitation with fully connected layers (the SE-ResNeXt form).

    Keys: ``squeeze.weight`` ``[C, C/r]``, ``squeeze.bias``, ``excite.weight`` ``[C/r, C]``, ``excite.bias``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s = paddle.flatten(self.pool(x), 1)
        s = nn.functional.sigmoid(self.excite(nn.functional.relu(self.squeeze(s))))
        return x * s.unsqueeze([2, 3])


def make_dropout(p: float, mode: str) -> nn.Layer:
    """Dropout in the mode the weights were evaluated with (WEIGHTS_FACTS section 8).

    ``downscale_in_infer`` multiplies by ``1 - p`` at inference, as the 2019 fluid
    graphs did; ``upscale_in_train`` is the identity at inference.
    """
    if mode not in ("downscale_in_infer", "upscale_in_train"):
        raise ValueError(f"dropout_mode must be 'downscale_in_infer' or 'upscale_in_train', got {mode!r}")
    if p == 0:
        return nn.Identity()
    return nn.Dropout(p, mode=mode)


def global_pool_flatten(x: paddle.Tensor) -> paddle.Tensor:
    """Global average pool to (N, C)."""
    return paddle.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class LayerNorm2d(nn.Layer):
    """Layer norm over the channels of an NCHW map (ConvNeXt's "channels_first" norm).

    Normalises each pixel's channel vector with its biased variance, then scales and
    shifts per channel. Computed as ``layer_norm`` on the NHWC view: PaddleClas writes the
    mean and variance out with ``mean(1)``, which Paddle Inference's oneDNN kernels get wrong
    in an exported program (logits off by ~100 % on CPU), while its ``layer_norm`` is right.
    Keys: ``weight`` (ones), ``bias`` (zeros).
    """

    def __init__(self, channels: int, epsilon: float = 1e-6) -> None:
        super().__init__()
        self.weight = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([channels], default_initializer=nn.initializer.Constant(0.0))
        self.epsilon = epsilon

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = nn.functional.layer_norm(x.transpose([0, 2, 3, 1]), x.shape[1:2], self.weight, self.bias, self.epsilon)
        return y.transpose([0, 3, 1, 2])


class DropPath(nn.Layer):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``; the identity at inference."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"drop path probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = paddle.floor(keep + paddle.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype))
        return x / keep * mask
