"""EfficientNet B0-B7 and B0_small (Tan & Le, 2019), as PaddleClas 2.6.0 ``model_zoo/efficientnet.py``.

A 3x3/2 conv-BN-swish stem, seven groups of MBConv blocks (1x1 expand conv-BN-swish, kxk
depthwise conv-BN-swish, squeeze-excitation with swish / sigmoid 1x1 convs with bias,
1x1 project conv-BN, residual when the block keeps stride and width), a 1x1 conv-BN-swish
head to 1280 (x width) channels, global average pooling, dropout and the classifier. The
table below scales B0's widths by ``width`` (rounded to multiples of 8) and its repeats by
``depth`` (rounded up), as the TensorFlow reference does. Batch norm: momentum 0.99, eps 1e-3.

Padding, the one thing that is not TensorFlow's: PaddleClas precomputes TensorFlow "SAME"
padding for each layer from the model's *native* resolution (224, 240, ..., 600) and keeps it
fixed. Where SAME needs one more pixel after than before (a stride-2 conv on an even map), it
pads ``before + stride`` on both sides and drops the first output row and column, which gives
SAME's output at that size. On other sizes the network still uses the native-size padding,
and so do we (:func:`native_same_padding`), so any input size gives PaddleClas's numbers.
``EfficientNetB0_small`` instead pads ``(stride - 1 + kernel - 1) // 2`` symmetrically
("DYNAMIC") and has no squeeze-excitation.

TinyNet A-E (Han et al., 2020; PaddleClas ``model_zoo/tinynet.py``) are the same network
with the "DYNAMIC" padding, squeeze-excitation, a stem fixed at 32 channels and a 1280-wide
head whatever the width (:data:`TINYNET_CONFIGS`).

Drop-connect (stochastic depth on the residual branch, rate 0.2 x block index / blocks) acts
only in training; the classifier's dropout is ``upscale_in_train``: both are the identity
at inference.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import (
    ConvBNAct,
    DropPath,
    conv_weight_attr,
    global_pool_flatten,
    make_act,
    make_dropout,
)

# TensorFlow's batch norm defaults, kept by PaddleClas for these weights.
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
DROP_CONNECT = 0.2
SE_RATIO = 0.25


class GroupCfg(NamedTuple):
    """One group of MBConv blocks of B0 (before width / depth scaling)."""

    expand: int
    kernel: int
    stride: int
    in_c: int
    out_c: int
    repeats: int


B0_GROUPS: Tuple[GroupCfg, ...] = (
    GroupCfg(1, 3, 1, 32, 16, 1),
    GroupCfg(6, 3, 2, 16, 24, 2),
    GroupCfg(6, 5, 2, 24, 40, 2),
    GroupCfg(6, 3, 2, 40, 80, 3),
    GroupCfg(6, 5, 1, 80, 112, 3),
    GroupCfg(6, 5, 2, 112, 192, 4),
    GroupCfg(6, 3, 1, 192, 320, 1),
)

#: variant -> (width, depth, native resolution, classifier dropout)
EFFICIENTNET_CONFIGS: Dict[str, Tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

#: TinyNet variant -> (width, depth); every one has classifier dropout 0.2
TINYNET_CONFIGS: Dict[str, Tuple[float, float]] = {
    "a": (1.0, 1.2),
    "b": (0.75, 1.1),
    "c": (0.54, 0.85),
    "d": (0.54, 0.695),
    "e": (0.51, 0.6),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a width and round it to a multiple of ``divisor``, never more than 10% down."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def native_same_padding(size: int, stride: int, kernel: int) -> Tuple[int, bool]:
    """``(padding, crop)`` that reproduce TensorFlow SAME padding on a ``size`` map.

    SAME pads ``total = max(kernel - (stride or size % stride), 0)`` with the odd pixel after.
    When before and after differ, pad ``before + stride`` on both sides and drop the first
    output row and column (``crop``), PaddleClas's construction.
    """
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    before, after = total // 2, total - total // 2
    if before == after:
        return before, False
    return before + stride, True


class ConvBN(ConvBNAct):
    """:class:`ConvBNAct` with EfficientNet's batch norm and an optional first-row/column crop.

    Keys: ``conv.weight``, ``bn.*``.
    """

    def __init__(
        self,
        in_c: int,
        out_c: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: Any = "swish",
        padding: int = 0,
        crop: bool = False,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__(
            in_c,
            out_c,
            kernel,
            stride=stride,
            groups=groups,
            act=act,
            padding=padding,
            bn_momentum=bn_momentum,
            bn_epsilon=BN_EPSILON,
        )
        self.crop = crop

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        if self.crop:
            x = x[:, :, 1:, 1:]
        return self.act(self.bn(x))


class ConvSE(nn.Layer):
    """Squeeze-excitation with 1x1 convs: ``x * sigmoid(expand(act(reduce(avgpool(x)))))``.

    ``act`` is swish (EfficientNet) or silu (EfficientNetV2); ``mean_pool`` averages with
    ``mean`` instead of ``adaptive_avg_pool2d``, as EfficientNetV2 does: the same numbers but
    another kernel's rounding, which its deep random-weight oracles amplify.
    Keys: ``reduce.{weight,bias}``, ``expand.{weight,bias}``.
    """

    def __init__(self, channels: int, squeezed: int, act: str = "swish", mean_pool: bool = False) -> None:
        super().__init__()
        self.reduce = nn.Conv2D(channels, squeezed, 1, weight_attr=conv_weight_attr(squeezed, 1))
        self.act = make_act(act)
        self.expand = nn.Conv2D(squeezed, channels, 1, weight_attr=conv_weight_attr(channels, 1))
        self.mean_pool = mean_pool

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        pooled = x.mean([2, 3], keepdim=True) if self.mean_pool else nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.sigmoid(self.expand(self.act(self.reduce(pooled))))


class MBConv(nn.Layer):
    """Inverted residual with depthwise conv and squeeze-excitation.

    Keys: ``expand.*`` (absent for expansion 1), ``dw.*``, ``se.*`` (absent without SE), ``project.*``.
    """

    def __init__(
        self,
        in_c: int,
        out_c: int,
        expand: int,
        kernel: int,
        stride: int,
        use_se: bool,
        padding: Tuple[int, bool],
        drop_connect: float,
        bn_momentum: float = BN_MOMENTUM,
        act: str = "swish",
        se_mean_pool: bool = False,
    ) -> None:
        super().__init__()
        mid = in_c * expand
        self.expand = ConvBN(in_c, mid, 1, act=act, bn_momentum=bn_momentum) if expand != 1 else None
        self.dw = ConvBN(
            mid, mid, kernel, stride=stride, groups=mid, act=act, padding=padding[0], crop=padding[1],
            bn_momentum=bn_momentum,
        )
        self.se = ConvSE(mid, max(1, int(in_c * SE_RATIO)), act, se_mean_pool) if use_se else None
        self.project = ConvBN(mid, out_c, 1, act=None, bn_momentum=bn_momentum)
        self.residual = stride == 1 and in_c == out_c
        self.drop_path = DropPath(drop_connect) if self.residual else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + self.drop_path(y) if self.residual else y


class EfficientNet(ClassifierNet):
    """EfficientNet scaled from B0.

    Args:
        width: channel multiplier.
        depth: repeat multiplier.
        resolution: native input size, which fixes the SAME padding of every layer; 0 pads
            ``(stride - 1 + kernel - 1) // 2`` symmetrically (B0_small's "DYNAMIC").
        dropout: classifier dropout (``upscale_in_train``).
        use_se: squeeze-excitation in the blocks.
        num_classes: classifier outputs; 0 returns the pooled head features.
        in_chans: input channels.
        drop_connect: stochastic-depth rate of the last block (training only).
        fix_stem: keep the stem (and the first group's input) at 32 channels whatever
            ``width`` is (TinyNet).
        head_width: channels of the 1x1 head conv; default ``1280`` scaled by ``width``.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        width: float,
        depth: float,
        resolution: int,
        dropout: float,
        use_se: bool = True,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_connect: float = DROP_CONNECT,
        fix_stem: bool = False,
        head_width: Optional[int] = None,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)

        def pad(size: int, stride: int, kernel: int) -> Tuple[int, bool]:
            if resolution == 0:
                return (stride - 1 + kernel - 1) // 2, False
            return native_same_padding(size, stride, kernel)

        stem_c = 32 if fix_stem else round_filters(32, width)
        self.stem = ConvBN(
            in_chans, stem_c, 3, stride=2, padding=pad(resolution, 2, 3)[0], crop=pad(resolution, 2, 3)[1]
        )
        size, reduction = -(-resolution // 2), 2
        groups = [
            g._replace(
                in_c=round_filters(g.in_c, width),
                out_c=round_filters(g.out_c, width),
                repeats=round_repeats(g.repeats, depth),
            )
            for g in B0_GROUPS
        ]
        groups[0] = groups[0]._replace(in_c=stem_c)
        total = sum(g.repeats for g in groups)
        blocks: List[nn.Layer] = []
        for gi, g in enumerate(groups):
            for r in range(g.repeats):
                stride = g.stride if r == 0 else 1
                block = MBConv(
                    g.in_c if r == 0 else g.out_c,
                    g.out_c,
                    g.expand,
                    g.kernel,
                    stride,
                    use_se,
                    pad(size, stride, g.kernel),
                    drop_connect * len(blocks) / total,
                )
                # PaddleClas names a group's first block apart from its repeats (layouts/efficientnet.py).
                block.first_in_group = r == 0
                blocks.append(block)
            # Every block of a group gets the padding of the group's input size.
            size, reduction = -(-size // g.stride), reduction * g.stride
            if gi + 1 == len(groups) or groups[gi + 1].stride == 2:
                self.feature_info.append(
                    {"module": f"blocks.{len(blocks) - 1}", "num_chs": g.out_c, "reduction": reduction}
                )
        self.blocks = nn.Sequential(*blocks)
        self.num_features = head_width or round_filters(1280, width)
        self.head = ConvBN(groups[-1].out_c, self.num_features, 1)
        self.drop = make_dropout(dropout, "upscale_in_train")
        self.fc = make_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(self.drop(x))


def _efficientnet(variant: str, num_classes: int, in_chans: int, **kwargs: Any) -> EfficientNet:
    width, depth, resolution, dropout = EFFICIENTNET_CONFIGS[variant]
    return EfficientNet(
        width, depth, resolution, dropout, num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model
def efficientnet_b0_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B0 without squeeze-excitation and with symmetric ("DYNAMIC") padding."""
    return EfficientNet(1.0, 1.0, 0, 0.2, use_se=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B0 (native 224)."""
    return _efficientnet("b0", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B1 (native 240)."""
    return _efficientnet("b1", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B2 (native 260)."""
    return _efficientnet("b2", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B3 (native 300)."""
    return _efficientnet("b3", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b4(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B4 (native 380)."""
    return _efficientnet("b4", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b5(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B5 (native 456)."""
    return _efficientnet("b5", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b6(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B6 (native 528)."""
    return _efficientnet("b6", num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b7(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B7 (native 600)."""
    return _efficientnet("b7", num_classes, in_chans, **kwargs)


def _tinynet(variant: str, num_classes: int, in_chans: int, kwargs: Any) -> EfficientNet:
    width, depth = TINYNET_CONFIGS[variant]
    return EfficientNet(
        width, depth, 0, 0.2, fix_stem=True, head_width=1280, num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model
def tinynet_a(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """TinyNet-A: width 1.0, depth 1.2 (native input 192)."""
    return _tinynet("a", num_classes, in_chans, kwargs)


@register_model
def tinynet_b(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """TinyNet-B: width 0.75, depth 1.1 (native input 188)."""
    return _tinynet("b", num_classes, in_chans, kwargs)


@register_model
def tinynet_c(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """TinyNet-C: width 0.54, depth 0.85 (native input 184)."""
    return _tinynet("c", num_classes, in_chans, kwargs)


@register_model
def tinynet_d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """TinyNet-D: width 0.54, depth 0.695 (native input 152)."""
    return _tinynet("d", num_classes, in_chans, kwargs)


@register_model
def tinynet_e(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """TinyNet-E: width 0.51, depth 0.6 (native input 106)."""
    return _tinynet("e", num_classes, in_chans, kwargs)
