"""PP-LCNet x0.25 to x2.5 (Cui et al., 2021, "PP-LCNet: A Lightweight CPU Convolutional Neural Network").

The graph of PaddleClas 2.6.0 ``legendary_models/pp_lcnet.py``: a 3x3 stride-2
conv-BN-hardswish stem of 16 channels, five stages of depthwise-separable blocks
(k x k depthwise conv-BN-hardswish, squeeze-excitation in the last stage only, 1x1
conv-BN-hardswish), global average pooling, a 1x1 conv without bias to 1280 channels
with hardswish, dropout and the classifier. Channel counts are scaled and rounded to a
multiple of 8 (:func:`~paddlehub_cls.models.layers.make_divisible`).

What the weights depend on, read from PaddleClas's forward:
- the SE width is ``channels // 4`` and its gate is Paddle's ``nn.Hardsigmoid``
  (slope 1/6), not MobileNetV3's slope 0.2;
- dropout p = 0.2 in ``downscale_in_infer`` mode: the classifier sees 0.8 x the
  pre-logits at inference.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, ConvHeadNet, DepthwiseSeparable, make_divisible

# Per stage, (kernel, output width, stride, SE) of each block; the input width is the previous output.
StageCfg = Sequence[Tuple[int, int, int, bool]]
STAGES: Sequence[StageCfg] = (
    ((3, 32, 1, False),),
    ((3, 64, 2, False), (3, 64, 1, False)),
    ((3, 128, 2, False), (3, 128, 1, False)),
    ((3, 256, 2, False),) + ((5, 256, 1, False),) * 5,
    ((5, 512, 2, True), (5, 512, 1, True)),
)
STEM_WIDTH = 16
HEAD_WIDTH = 1280
ACT = "hardswish"


class PPLCNet(ConvHeadNet):
    """PP-LCNet at a width multiplier.

    Args:
        scale: width multiplier (PaddleClas: 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5).
        num_classes: classifier outputs; 0 returns the 1280-d pre-logits.
        in_chans: input channels.
        dropout, dropout_mode: the dropout before the classifier (:class:`ConvHeadNet`).
    """

    first_conv = "stem.conv"

    def __init__(
        self,
        scale: float,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        in_c = make_divisible(STEM_WIDTH * scale)
        self.stem = ConvBNAct(in_chans, in_c, 3, stride=2, act=ACT)
        stages = []
        reduction = 2
        for s, config in enumerate(STAGES):
            blocks = []
            for k, c, stride, se in config:
                out_c = make_divisible(c * scale)
                blocks.append(
                    DepthwiseSeparable(in_c, out_c, stride, k, act=ACT, se="hardsigmoid" if se else None)
                )
                reduction *= stride
                in_c = out_c
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"module": f"stages.{s}", "num_chs": in_c, "reduction": reduction})
        self.stages = nn.Sequential(*stages)
        self._init_head(in_c, HEAD_WIDTH, ACT, num_classes, dropout, dropout_mode)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.stages(self.stem(x))


def _builder(scale: float) -> Any:
    suffix = str(scale).replace(".", "_")

    def build(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPLCNet:
        return PPLCNet(scale, num_classes=num_classes, in_chans=in_chans, **kwargs)

    build.__name__ = build.__qualname__ = f"pplcnet_x{suffix}"
    build.__doc__ = f"PP-LCNet x{scale}, PaddleClas ``PPLCNet_x{suffix}``; kwargs go to :class:`PPLCNet`."
    return register_model(build)


pplcnet_x0_25 = _builder(0.25)
pplcnet_x0_35 = _builder(0.35)
pplcnet_x0_5 = _builder(0.5)
pplcnet_x0_75 = _builder(0.75)
pplcnet_x1_0 = _builder(1.0)
pplcnet_x1_5 = _builder(1.5)
pplcnet_x2_0 = _builder(2.0)
pplcnet_x2_5 = _builder(2.5)
