"""Blocks shared by several families: conv-BN-activation, squeeze-excitation, pooling head,
channels-first layer norm and stochastic depth (drop path)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import paddle
from paddle import nn

from paddlehub_cls.errors import InputSizeError
from paddlehub_cls.models._base import ClassifierNet, make_linear

# The 2019 fluid batch_norm defaults; Paddle's nn.BatchNorm2D uses the same values.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# Paddle's F.hardsigmoid default slope: nn.Hardsigmoid (PP-LCNet's SE gate) computes with this literal.
PADDLE_HARDSIGMOID_SLOPE = 0.1666667


class HardSigmoid(nn.Layer):
    """``clip(slope * x + offset, 0, 1)``.

    Paddle's ``nn.Hardsigmoid`` fixes the slope at 1/6; PaddleClas's MobileNetV3 SE gate
    uses 0.2 (its ``Hardsigmoid(slope=0.2, offset=0.5)``), so the slope is an argument.
    """

    def __init__(self, slope: float = PADDLE_HARDSIGMOID_SLOPE, offset: float = 0.5) -> None:
        super().__init__()
        self.slope = slope
        self.offset = offset

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.hardsigmoid(x, slope=self.slope, offset=self.offset)

    def extra_repr(self) -> str:
        return f"slope={self.slope}, offset={self.offset}"


class LeakyReLU(nn.Layer):
    """``max(x, slope * x)``, which is Paddle's leaky ReLU for ``0 <= slope <= 1`` (default 0.01).

    Written out so that Paddle Inference's oneDNN passes do not fuse it into the preceding
    conv: with ``nn.LeakyReLU`` an exported CSPDarkNet53 crashed the CPU ``Predictor`` with a
    segmentation fault while building the fused conv (``FusedConv2dOp``, paddlepaddle 3.3.1).
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not 0 <= negative_slope <= 1:
            raise ValueError(f"negative_slope must be in [0, 1], got {negative_slope!r}")
        self.negative_slope = negative_slope

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.maximum(x, x * self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class QuickGELU(nn.Layer):
    """``x * sigmoid(1.702 * x)``: the sigmoid approximation of GELU that CLIP and CvT use."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(1.702 * x)


_ACTIVATIONS = {
    # The exact (erf) form: PaddleClas's ConvNeXt and transformers use nn.GELU's default.
    "gelu": nn.GELU,
    "hardsigmoid": HardSigmoid,
    "hardswish": nn.Hardswish,
    # Slope 0.01 by default, as PaddleClas's CSPDarkNet53 (nn.LeakyReLU()).
    "leaky_relu": LeakyReLU,
    "quick_gelu": QuickGELU,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    # The same function as swish through Paddle's silu kernel, whose float rounding differs:
    # PaddleClas's EfficientNetV2 blocks use it, and its deep random-weight oracles amplify the difference.
    "silu": nn.Silu,
    "swish": nn.Swish,
}


def make_act(name: Optional[str], **kwargs: Any) -> nn.Layer:
    """Activation layer by name; ``None`` gives the identity.

    ``kwargs`` go to the layer's constructor (e.g. ``make_act("hardsigmoid", slope=0.2)``).
    """
    if name is None:
        return nn.Identity()
    try:
        cls = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)} or None"
        ) from None
    return cls(**kwargs)


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never more than 10% below ``value``.

    The rule of TensorFlow's MobileNet code, which PaddleClas's MobileNetV3, PP-LCNet and
    PP-LCNetV2 repeat (``int(v + divisor / 2) // divisor * divisor``, at least ``min_value``,
    default ``divisor``). Width multipliers give their channel counts through it.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


Kernel = Union[int, Sequence[int]]


def _kernel_hw(kernel_size: Kernel) -> Tuple[int, int]:
    if isinstance(kernel_size, int):
        return kernel_size, kernel_size
    return int(kernel_size[0]), int(kernel_size[1])


def _same_padding(kernel_size: Kernel, dilation: int) -> Tuple[int, int]:
    # keeps the size at stride 1 (odd kernels)
    return tuple(dilation * (k - 1) // 2 for k in _kernel_hw(kernel_size))


def conv_weight_attr(out_channels: int, kernel_size: Kernel, groups: int = 1) -> paddle.ParamAttr:
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
    ``kernel_size`` is a side or ``(height, width)`` (Inception's 1x7 and 7x1).
    """
    kh, kw = _kernel_hw(kernel_size)
    fan_out = max(out_channels * kh * kw // groups, 1)
    return paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out)))


class ConvBNAct(nn.Layer):
    """Convolution without bias, batch norm, optional activation.

    The conv weight starts from :func:`conv_weight_attr`; the batch norm keeps Paddle's
    default weight 1 and bias 0 (stating them in ParamAttrs would cost another ~100 us per
    layer, even under ``paddle.LazyGuard``). ``kernel_size`` may be ``(height, width)``;
    ``padding`` None keeps the size at stride 1 (``dilation * (k - 1) // 2`` per side).
    State-dict keys: ``conv.weight``, ``bn.weight``, ``bn.bias``, ``bn._mean``, ``bn._variance``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Kernel,
        stride: int = 1,
        groups: int = 1,
        act: Optional[str] = "relu",
        padding: Optional[Union[int, str, Sequence[int]]] = None,
        bn_momentum: float = BN_MOMENTUM,
        bn_epsilon: float = BN_EPSILON,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=_same_padding(kernel_size, dilation) if padding is None else padding,
            dilation=dilation,
            groups=groups,
            weight_attr=conv_weight_attr(out_channels, kernel_size, groups),
            bias_attr=False,
        )
        self.bn = nn.BatchNorm2D(out_channels, momentum=bn_momentum, epsilon=bn_epsilon)
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


class ConvSqueezeExcite(nn.Layer):
    """Squeeze-and-excitation with 1x1 convolutions (the MobileNetV3 / PP-LCNet / EfficientNet form).

    ``x * gate(expand(act(reduce(mean(x)))))``. Keys: ``reduce.weight`` ``[hidden, C, 1, 1]``,
    ``reduce.bias``, ``expand.weight`` ``[C, hidden, 1, 1]``, ``expand.bias``.

    Args:
        channels: input and output channels.
        reduction: ``hidden = channels // reduction`` (PaddleClas's plain floor), unless
            ``divisor`` or ``hidden_channels`` is given.
        act: activation between the two convs.
        gate: activation that makes the per-channel scale.
        gate_slope: slope of a ``"hardsigmoid"`` gate (Paddle's 1/6 when None).
        divisor: round ``channels / reduction`` with :func:`make_divisible` to this multiple.
        hidden_channels: the squeeze width itself (EfficientNet derives it from the block's
            input channels, not from ``channels``).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        act: str = "relu",
        gate: str = "sigmoid",
        gate_slope: Optional[float] = None,
        divisor: Optional[int] = None,
        hidden_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        if hidden_channels is None and divisor is not None:
            hidden_channels = make_divisible(channels / reduction, divisor)
        elif hidden_channels is None:
            hidden_channels = channels // reduction
        self.reduce = nn.Conv2D(channels, hidden_channels, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2D(hidden_channels, channels, 1)
        self.gate = make_act(gate) if gate_slope is None else make_act(gate, slope=gate_slope)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class DepthwiseSeparable(nn.Layer):
    """k x k depthwise conv-BN-act, optional squeeze-excitation, 1x1 conv-BN-act.

    MobileNetV1 (3x3, ReLU, no SE), PP-LCNet (3x3 or 5x5, hardswish, SE in the last
    stage) and DeepLab's Xception (no activation or ReLU, BN epsilon 1e-3, dilated in the
    exit flow). Keys: ``dw.*``, ``se.{reduce,expand}.*`` (with ``se``), ``pw.*``.

    Args:
        in_channels: input channels (also the depthwise width).
        out_channels: output channels of the pointwise conv.
        stride: stride of the depthwise conv.
        kernel: depthwise kernel size.
        act: activation after both convs.
        se: insert a :class:`ConvSqueezeExcite` (reduction 4, ReLU) with this gate
            (``"hardsigmoid"`` in PP-LCNet) after the depthwise conv; None for none.
        dilation: dilation of the depthwise conv (padded to keep the size).
        bn_epsilon, bn_momentum: of both batch norms.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kernel: int = 3,
        act: Optional[str] = "relu",
        se: Optional[str] = None,
        dilation: int = 1,
        bn_epsilon: float = BN_EPSILON,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        bn = {"bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}
        self.dw = ConvBNAct(
            in_channels, in_channels, kernel, stride=stride, groups=in_channels, act=act, dilation=dilation,
            **bn,
        )
        self.se = ConvSqueezeExcite(in_channels, gate=se) if se is not None else None
        self.pw = ConvBNAct(in_channels, out_channels, 1, act=act, **bn)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw(x)


class PooledConvHead(nn.Layer):
    """Global average pool, 1x1 conv without bias, activation, flatten: ``(N, C, H, W) -> (N, width)``.

    The pre-logits of MobileNetV3 and PP-LCNet(V2): the widening conv runs on the pooled
    vector, after the pool. Key: ``conv.weight`` ``[width, C, 1, 1]``.
    """

    def __init__(self, in_channels: int, width: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, width, 1, weight_attr=conv_weight_attr(width, 1), bias_attr=False)
        self.act = make_act(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(self.act(self.conv(nn.functional.adaptive_avg_pool2d(x, 1))), 1)


class ConvHeadNet(ClassifierNet):
    """Base of the networks whose head is :class:`PooledConvHead`, dropout and ``fc``.

    MobileNetV3, PP-LCNet and PP-LCNetV2. A subclass builds its trunk, calls
    :meth:`_init_head` and implements ``forward_features``. Their ``dropout`` argument is the
    probability before the classifier (PaddleClas: 0.2), ``dropout_mode`` either
    ``"downscale_in_infer"`` (PaddleClas: the classifier sees ``1 - dropout`` times the
    pre-logits at inference) or ``"upscale_in_train"`` (the identity at inference).
    """

    classifier_attrs = ("fc",)

    def _init_head(
        self, in_channels: int, width: int, act: str, num_classes: int, dropout: float, dropout_mode: str
    ) -> None:
        self.head = PooledConvHead(in_channels, width, act)
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = width
        self.fc = make_linear(width, num_classes)
        self.num_classes = num_classes

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.head(x)
        # The inference-time dropout scale belongs to the classifier's input, so pre-logits
        # (pre_logits, or no classifier) are returned unscaled.
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(self.drop(x))


class PooledHeadNet(ClassifierNet):
    """Base of the networks whose head is the global average, dropout and ``fc``.

    Inception v3 and v4 (and, through :class:`StemStagesNet`, DarkNet53, CSPDarkNet53 and PeleeNet). A
    subclass builds its trunk, calls :meth:`_init_head` (or sets ``drop``, ``fc``) and
    implements ``forward_features``. ``dropout_mode`` as in :class:`ConvHeadNet`: in
    ``"downscale_in_infer"`` mode the classifier sees ``1 - dropout`` times the pooled
    features at inference.
    """

    classifier_attrs = ("fc",)

    def __init__(self) -> None:
        super().__init__()
        # An identity until a subclass (or _init_head) sets its dropout. Not a class attribute:
        # paddle.nn.Layer keeps sublayers in _sub_layers, which a class-level ``drop = None`` would shadow.
        self.drop: nn.Layer = nn.Identity()

    def _init_head(self, width: int, num_classes: int, dropout: float, dropout_mode: str) -> None:
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = width
        self.fc = make_linear(width, num_classes)
        self.num_classes = num_classes

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        # The inference-time dropout scale belongs to the classifier's input.
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(self.drop(x))


class StemStagesNet(PooledHeadNet):
    """Base of the networks whose trunk is ``stem`` followed by the ``stages`` in order, with the
    :class:`PooledHeadNet` head (global average pool, ``drop`` when the subclass sets one, ``fc``).

    DarkNet53, CSPDarkNet53 and PeleeNet. ``pre_logits`` (and ``num_classes=0``) return the pooled
    features, before the dropout.
    """

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


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


def check_input_side(x: paddle.Tensor, min_side: int, network: str) -> None:
    """Refuse an NCHW input smaller than ``min_side`` in height or width.

    Networks with unpadded stems and grid reductions (Inception) shrink a small input to an
    empty map, on which Paddle's convolutions and pools return numbers instead of failing.
    A dimension unknown while tracing (-1) passes.

    Raises:
        InputSizeError: naming the network, the input shape and the smallest side.
    """
    h, w = x.shape[-2], x.shape[-1]
    if 0 < h < min_side or 0 < w < min_side:
        raise InputSizeError(
            f"{network} needs inputs of at least {min_side}x{min_side} pixels, got shape {list(x.shape)}; "
            "resize the images to the model's input_size"
        )


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
        y = nn.functional.layer_norm(
            x.transpose([0, 2, 3, 1]), x.shape[1:2], self.weight, self.bias, self.epsilon
        )
        return y.transpose([0, 3, 1, 2])


def drop_path_rates(rate: float, total: int) -> list:
    """Stochastic depth per block: linear from 0 at the first of ``total`` blocks to ``rate`` at the last
    (PaddleClas's ``paddle.linspace(0, rate, total)``)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {rate!r}")
    return [rate * i / max(total - 1, 1) for i in range(total)]


class DropPath(nn.Layer):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``; the identity at inference.

    EfficientNet's "drop connect" (PaddleClas ``_drop_connect``) is the same rule. No parameters.
    """

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
