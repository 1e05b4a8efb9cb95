"""MobileNetV3 small and large, width multipliers 0.35 to 1.25 (Howard et al., 2019).

The graph of PaddleClas 2.6.0 ``legendary_models/mobilenet_v3.py``: a 3x3 stride-2
conv-BN-hardswish stem of 16 channels, inverted residual blocks (1x1 expand, k x k
depthwise, optional squeeze-excitation, linear 1x1 projection; a residual add when
the shape is kept) from the paper's tables, a 1x1 conv-BN-hardswish to 576 (small)
or 960 (large) channels, global average pooling, a 1x1 conv without bias to 1280
channels with hardswish, dropout and the classifier. Every channel count is scaled
and rounded to a multiple of 8 (:func:`~paddlehub_cls.models.layers.make_divisible`).

What the weights depend on, read from PaddleClas's forward:
- every block has its expand conv, even where it keeps the width (large block 0);
- the SE width is ``expanded // 4`` (no rounding) and its gate is
  ``hardsigmoid(x, slope=0.2, offset=0.5)``, not Paddle's default slope 1/6;
- dropout p = 0.2 in ``downscale_in_infer`` mode: the classifier sees 0.8 x the
  pre-logits at inference.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, ConvHeadNet, ConvSqueezeExcite, make_divisible

# (kernel, expanded width, output width, SE, activation, stride) of each block.
BlockCfg = Tuple[int, int, int, bool, str, int]
CONFIGS: Dict[str, Sequence[BlockCfg]] = {
    "large": (
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hardswish", 2),
        (3, 200, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 480, 112, True, "hardswish", 1),
        (3, 672, 112, True, "hardswish", 1),
        (5, 672, 160, True, "hardswish", 2),
        (5, 960, 160, True, "hardswish", 1),
        (5, 960, 160, True, "hardswish", 1),
    ),
    "small": (
        (3, 16, 16, True, "relu", 2),
        (3, 72, 24, False, "relu", 2),
        (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hardswish", 2),
        (5, 240, 40, True, "hardswish", 1),
        (5, 240, 40, True, "hardswish", 1),
        (5, 120, 48, True, "hardswish", 1),
        (5, 144, 48, True, "hardswish", 1),
        (5, 288, 96, True, "hardswish", 2),
        (5, 576, 96, True, "hardswish", 1),
        (5, 576, 96, True, "hardswish", 1),
    ),
}
# Width of the last conv-BN before pooling (scaled), and of the conv after pooling (not scaled).
FEATURE_WIDTHS = {"large": 960, "small": 576}
STEM_WIDTH = 16
HEAD_WIDTH = 1280
SE_REDUCTION = 4
SE_GATE_SLOPE = 0.2


class InvertedResidual(nn.Layer):
    """1x1 expand, k x k depthwise, SE (optional), linear 1x1 projection, residual add when the shape is kept.

    Keys: ``expand.*``, ``dw.*``, ``se.{reduce,expand}.*`` (with SE), ``project.*``.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        se: bool,
        act: str,
    ) -> None:
        super().__init__()
        self.expand = ConvBNAct(in_channels, mid_channels, 1, act=act)
        self.dw = ConvBNAct(mid_channels, mid_channels, kernel, stride=stride, groups=mid_channels, act=act)
        self.se = (
            ConvSqueezeExcite(mid_channels, SE_REDUCTION, gate="hardsigmoid", gate_slope=SE_GATE_SLOPE)
            if se
            else None
        )
        self.project = ConvBNAct(mid_channels, out_channels, 1, act=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.dw(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.use_residual else y


class MobileNetV3(ConvHeadNet):
    """MobileNetV3 small or large at a width multiplier.

    Args:
        size: ``"small"`` or ``"large"``.
        scale: width multiplier (PaddleClas: 0.35, 0.5, 0.75, 1.0, 1.25).
        num_classes: classifier outputs; 0 returns the 1280-d pre-logits.
        in_chans: input channels.
        dropout, dropout_mode: the dropout before the classifier (:class:`ConvHeadNet`).
    """

    first_conv = "stem.conv"

    def __init__(
        self,
        size: str,
        scale: float,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        if size not in CONFIGS:
            raise ValueError(f"MobileNetV3 size must be one of {sorted(CONFIGS)}, got {size!r}")
        check_num_classes(num_classes)
        in_c = make_divisible(STEM_WIDTH * scale)
        self.stem = ConvBNAct(in_chans, in_c, 3, stride=2, act="hardswish")
        config = CONFIGS[size]
        blocks = []
        reduction = 2
        if config[0][5] == 2:
            self.feature_info.append({"module": "stem", "num_chs": in_c, "reduction": reduction})
        for i, (k, exp, c, se, act, s) in enumerate(config):
            out_c = make_divisible(c * scale)
            blocks.append(InvertedResidual(in_c, make_divisible(exp * scale), out_c, k, s, se, act))
            reduction *= s
            if i + 1 == len(config) or config[i + 1][5] == 2:
                self.feature_info.append({"module": f"blocks.{i}", "num_chs": out_c, "reduction": reduction})
            in_c = out_c
        self.blocks = nn.Sequential(*blocks)
        feature_width = make_divisible(FEATURE_WIDTHS[size] * scale)
        self.conv_feature = ConvBNAct(in_c, feature_width, 1, act="hardswish")
        # The deepest stage is what forward_features returns (the contract of features_only).
        self.feature_info[-1] = {"module": "conv_feature", "num_chs": feature_width, "reduction": reduction}
        self._init_head(feature_width, HEAD_WIDTH, "hardswish", num_classes, dropout, dropout_mode)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv_feature(self.blocks(self.stem(x)))


def _builder(size: str, scale: float) -> Any:
    suffix = str(scale).replace(".", "_")

    def build(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV3:
        return MobileNetV3(size, scale, num_classes=num_classes, in_chans=in_chans, **kwargs)

    build.__name__ = build.__qualname__ = f"mobilenet_v3_{size}_x{suffix}"
    build.__doc__ = (
        f"MobileNetV3-{size} x{scale} (PaddleClas ``MobileNetV3_{size}_x{suffix}``). "
        "Keyword arguments: ``dropout``, ``dropout_mode``."
    )
    return register_model(build)


mobilenet_v3_small_x0_35 = _builder("small", 0.35)
mobilenet_v3_small_x0_5 = _builder("small", 0.5)
mobilenet_v3_small_x0_75 = _builder("small", 0.75)
mobilenet_v3_small_x1_0 = _builder("small", 1.0)
mobilenet_v3_small_x1_25 = _builder("small", 1.25)
mobilenet_v3_large_x0_35 = _builder("large", 0.35)
mobilenet_v3_large_x0_5 = _builder("large", 0.5)
mobilenet_v3_large_x0_75 = _builder("large", 0.75)
mobilenet_v3_large_x1_0 = _builder("large", 1.0)
mobilenet_v3_large_x1_25 = _builder("large", 1.25)
