"""EfficientNetV2 S, M, L and XL (Tan & Le, 2021), as PaddleClas 2.6.0 ``model_zoo/efficientnet_v2.py``.

A 3x3/2 conv-BN-swish stem, then groups of blocks: the first groups use fused MBConv (one
kxk conv-BN-swish expanding the channels, then a 1x1 project conv-BN; with expansion 1,
a single kxk conv-BN-swish), the later ones the MBConv of EfficientNet (1x1 expand,
depthwise kxk, squeeze-excitation to a quarter of the block's *input* width, 1x1 project).
A block adds its input when it keeps stride and width. The blocks' swish is Paddle's
``silu`` and their squeeze pools with ``mean``, the kernels PaddleClas uses. The head is a 1x1 conv-BN-swish
to 1280 channels, global average pooling, dropout and the classifier. Batch norm:
momentum 0.9, eps 1e-3. No width or depth scaling: each size has its own table.

Padding is TensorFlow's "SAME" computed for a fixed 384x384 input, as in EfficientNet
(:func:`paddlehub_cls.models.efficientnet.native_same_padding`): PaddleClas fixes it from
its table of stage input sizes for 384 for every size, so ours does too. Stochastic depth
(drop rate 0.2 x block index / blocks) and the dropout act only in training.

State-dict keys: ``stem.{conv,bn}``, ``blocks.<i>.{expand,dw,project}.{conv,bn}`` and
``blocks.<i>.se.{reduce,expand}`` (MBConv), ``blocks.<i>.{expand,project}.{conv,bn}``
(fused; no ``expand`` at expansion 1), ``head.{conv,bn}``, ``fc``.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.efficientnet import ConvBN, MBConv, native_same_padding
from paddlehub_cls.models.layers import DropPath, global_pool_flatten, make_dropout

BN_MOMENTUM = 0.9
NATIVE_SIZE = 384
HEAD_WIDTH = 1280
DROP_PATH = 0.2
# PaddleClas's blocks use nn.Silu, its stem and head nn.Swish: the same function, computed by
# two kernels whose rounding differs (see layers._ACTIVATIONS).
BLOCK_ACT = "silu"


class StageCfg(NamedTuple):
    """One group of blocks: fused or not, repeats, kernel, stride, expansion, widths, SE."""

    fused: bool
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_c: int
    out_c: int
    se: bool


def _stages(rows: Sequence[Tuple[int, ...]]) -> Tuple[StageCfg, ...]:
    # Each row: fused (1/0), repeats, stride, expansion, in, out (kernel 3 and SE on MBConv everywhere).
    return tuple(StageCfg(bool(f), r, 3, s, e, i, o, not f) for f, r, s, e, i, o in rows)


#: size -> (stages, classifier dropout), from PaddleClas's block strings
EFFICIENTNETV2_CONFIGS = {
    "s": (
        _stages([(1, 2, 1, 1, 24, 24), (1, 4, 2, 4, 24, 48), (1, 4, 2, 4, 48, 64),
                 (0, 6, 2, 4, 64, 128), (0, 9, 1, 6, 128, 160), (0, 15, 2, 6, 160, 256)]),
        0.1,
    ),
    "m": (
        _stages([(1, 3, 1, 1, 24, 24), (1, 5, 2, 4, 24, 48), (1, 5, 2, 4, 48, 80), (0, 7, 2, 4, 80, 160),
                 (0, 14, 1, 6, 160, 176), (0, 18, 2, 6, 176, 304), (0, 5, 1, 6, 304, 512)]),
        0.3,
    ),
    "l": (
        _stages([(1, 4, 1, 1, 32, 32), (1, 7, 2, 4, 32, 64), (1, 7, 2, 4, 64, 96), (0, 10, 2, 4, 96, 192),
                 (0, 19, 1, 6, 192, 224), (0, 25, 2, 6, 224, 384), (0, 7, 1, 6, 384, 640)]),
        0.4,
    ),
    "xl": (
        _stages([(1, 4, 1, 1, 32, 32), (1, 8, 2, 4, 32, 64), (1, 8, 2, 4, 64, 96), (0, 16, 2, 4, 96, 192),
                 (0, 24, 1, 6, 192, 256), (0, 32, 2, 6, 256, 512), (0, 8, 1, 6, 512, 640)]),
        0.4,
    ),
}


class FusedMBConv(nn.Layer):
    """Fused inverted residual: kxk conv-BN-swish expansion, 1x1 conv-BN projection.

    At expansion 1 it is one kxk conv-BN-swish (``project``). Keys: ``expand.*`` (absent at
    expansion 1), ``project.*``.
    """

    def __init__(
        self, in_c: int, out_c: int, expand: int, kernel: int, stride: int, padding: Tuple[int, bool], drop: float
    ) -> None:
        super().__init__()
        pad, crop = padding
        if expand != 1:
            mid = in_c * expand
            self.expand: Optional[nn.Layer] = ConvBN(
                in_c, mid, kernel, stride=stride, act=BLOCK_ACT, padding=pad, crop=crop, bn_momentum=BN_MOMENTUM
            )
            self.project = ConvBN(mid, out_c, 1, act=None, bn_momentum=BN_MOMENTUM)
        else:
            self.expand = None
            self.project = ConvBN(
                in_c, out_c, kernel, stride=stride, act=BLOCK_ACT, padding=pad, crop=crop, bn_momentum=BN_MOMENTUM
            )
        self.residual = stride == 1 and in_c == out_c
        self.drop_path = DropPath(drop) if self.residual else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.project(x if self.expand is None else self.expand(x))
        return x + self.drop_path(y) if self.residual else y


class EfficientNetV2(ClassifierNet):
    """EfficientNetV2 from a stage table.

    Args:
        stages: the block groups (:data:`EFFICIENTNETV2_CONFIGS`).
        dropout: classifier dropout (``upscale_in_train``: the identity at inference).
        num_classes: classifier outputs; 0 returns the pooled head features.
        in_chans: input channels.
        drop_path_rate: stochastic-depth rate of the last block (training only).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        stages: Sequence[StageCfg],
        dropout: float,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = DROP_PATH,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) or not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        pad, crop = native_same_padding(NATIVE_SIZE, 2, 3)
        self.stem = ConvBN(in_chans, stages[0].in_c, 3, stride=2, padding=pad, crop=crop, bn_momentum=BN_MOMENTUM)
        size, reduction = NATIVE_SIZE // 2, 2
        total = sum(g.repeats for g in stages)
        blocks: List[nn.Layer] = []
        for gi, g in enumerate(stages):
            for r in range(g.repeats):
                stride = g.stride if r == 0 else 1
                c_in = g.in_c if r == 0 else g.out_c
                padding = native_same_padding(size, stride, g.kernel)
                drop = drop_path_rate * len(blocks) / total
                if g.fused:
                    blocks.append(FusedMBConv(c_in, g.out_c, g.expand, g.kernel, stride, padding, drop))
                else:
                    blocks.append(
                        MBConv(
                            c_in, g.out_c, g.expand, g.kernel, stride, g.se, padding, drop,
                            bn_momentum=BN_MOMENTUM, act=BLOCK_ACT, se_mean_pool=True,
                        )
                    )
            # Every block of a group gets the padding of the group's input size.
            size, reduction = size // g.stride, reduction * g.stride
            if gi + 1 == len(stages) or stages[gi + 1].stride == 2:
                self.feature_info.append({"module": f"blocks.{len(blocks) - 1}", "num_chs": g.out_c, "reduction": reduction})
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(stages[-1].out_c, HEAD_WIDTH, 1, bn_momentum=BN_MOMENTUM)
        self.num_features = HEAD_WIDTH
        self.drop = make_dropout(dropout, "upscale_in_train")
        self.fc = make_linear(HEAD_WIDTH, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(self.drop(x))


def _efficientnet_v2(size: str, num_classes: int, in_chans: int, kwargs: Any) -> EfficientNetV2:
    stages, dropout = EFFICIENTNETV2_CONFIGS[size]
    return EfficientNetV2(stages, dropout, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def efficientnet_v2_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNetV2:
    """EfficientNetV2-S: 6 groups, 40 blocks."""
    return _efficientnet_v2("s", num_classes, in_chans, kwargs)


@register_model
def efficientnet_v2_m(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNetV2:
    """EfficientNetV2-M: 7 groups, 57 blocks."""
    return _efficientnet_v2("m", num_classes, in_chans, kwargs)


@register_model
def efficientnet_v2_l(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNetV2:
    """EfficientNetV2-L: 7 groups, 79 blocks."""
    return _efficientnet_v2("l", num_classes, in_chans, kwargs)


@register_model
def efficientnet_v2_xl(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNetV2:
    """EfficientNetV2-XL: 7 groups, 100 blocks."""
    return _efficientnet_v2("xl", num_classes, in_chans, kwargs)
