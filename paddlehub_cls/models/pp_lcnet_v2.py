"""PP-LCNetV2 small, base and large (PaddleClas, 2022).

The graph of PaddleClas 2.6.0 ``legendary_models/pp_lcnet_v2.py``: a 3x3 stride-2
conv-BN-ReLU stem and one depthwise-separable block, four stages of depthwise-separable
blocks, global average pooling, a 1x1 conv without bias to 1280 channels with ReLU,
dropout and the classifier. Widths are ``make_divisible(width * scale)``; small, base
and large are scale 0.75 / 1.0 / 1.25 with 4 / 6 / 8 blocks in the third stage.

The third and fourth stages are re-parameterisable (like RepVGG): at training time the
depthwise conv is a sum of depthwise conv-BN branches with kernels 5, 3 and 1 (1 only at
stride 1), followed by ReLU; :meth:`PPLCNetV2.fuse` folds them into the one biased 5x5
depthwise conv that PaddleClas's ``re_parameterize`` fills. The released ``.pdparams``
hold the branches and an unused copy of that conv (``dw_conv.weight``/``.bias``, whatever
the training run left there), so the loaded network starts unfused.

What the weights depend on, read from PaddleClas's forward:
- the third stage splits its pointwise conv in two (to half the output width, then to
  the output width) and has squeeze-excitation with a plain sigmoid gate (PaddleClas's
  attribute is called ``hardsigmoid`` but holds ``nn.Sigmoid``) and width ``C // 4``;
- the fourth stage adds a residual where the shape is kept;
- dropout p = 0.2 in ``downscale_in_infer`` mode: the classifier sees 0.8 x the
  pre-logits at inference.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, ConvHeadNet, ConvSqueezeExcite, make_act, make_divisible

# Per stage: (input width, kernel, split pointwise conv, re-parameterisable, SE, residual).
STAGES: Sequence[Tuple[int, int, bool, bool, bool, bool]] = (
    (64, 3, False, False, False, False),
    (128, 3, False, False, False, False),
    (256, 5, True, True, True, False),
    (512, 5, False, True, False, True),
)
# size -> (scale, blocks per stage)
SIZES: Dict[str, Tuple[float, Tuple[int, int, int, int]]] = {
    "small": (0.75, (2, 2, 4, 2)),
    "base": (1.0, (2, 2, 6, 2)),
    "large": (1.25, (2, 2, 8, 2)),
}
STEM_WIDTH = 32
HEAD_WIDTH = 1280
ACT = "relu"


class RepDepthwiseSeparable(nn.Layer):
    """Depthwise conv (plain, or a sum of re-parameterisable branches), SE, pointwise conv(s), residual.

    Keys: plain ``dw.*``; re-parameterisable ``dw_branches.<j>.{conv,bn}.*`` (kernel
    ``kernel - 2j``) and ``dw_fused.{weight,bias}``; ``se.*``; ``pw.*`` or ``pw1.*`` + ``pw2.*``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kernel: int = 3,
        split_pw: bool = False,
        rep: bool = False,
        se: bool = False,
        residual: bool = False,
        act: str = ACT,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.fused = False
        if rep:
            kernels = [k for k in range(kernel, 0, -2) if k > 1 or stride == 1]
            self.dw_branches = nn.LayerList(
                [
                    ConvBNAct(in_channels, in_channels, k, stride=stride, groups=in_channels, act=None)
                    for k in kernels
                ]
            )
            self.dw_fused = nn.Conv2D(
                in_channels, in_channels, kernel, stride=stride, padding=(kernel - 1) // 2, groups=in_channels
            )
            self.dw_act = make_act(act)
            self.dw = None
        else:
            self.dw_branches = None
            self.dw = ConvBNAct(in_channels, in_channels, kernel, stride=stride, groups=in_channels, act=act)
        self.se = ConvSqueezeExcite(in_channels, act=act, gate="sigmoid") if se else None
        if split_pw:
            mid = int(out_channels * 0.5)
            self.pw1 = ConvBNAct(in_channels, mid, 1, act=act)
            self.pw2 = ConvBNAct(mid, out_channels, 1, act=act)
            self.pw = None
        else:
            self.pw = ConvBNAct(in_channels, out_channels, 1, act=act)
        self.residual = residual and stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.dw_branches is None:
            y = self.dw(x)
        elif self.fused:
            y = self.dw_act(self.dw_fused(x))
        else:
            y = self.dw_branches[0](x)
            for branch in self.dw_branches[1:]:
                y = y + branch(x)
            y = self.dw_act(y)
        if self.se is not None:
            y = self.se(y)
        y = self.pw(y) if self.pw is not None else self.pw2(self.pw1(y))
        return x + y if self.residual else y

    @paddle.no_grad()
    def fuse(self) -> None:
        """Fold the depthwise branches (conv + eval-mode BN each) into ``dw_fused``; no-op when plain."""
        if self.dw_branches is None:
            return
        kernel_sum, bias_sum = 0, 0
        for branch in self.dw_branches:
            bn = branch.bn
            scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
            pad = (self.kernel - branch.conv.weight.shape[-1]) // 2
            weight = branch.conv.weight * scale.reshape([-1, 1, 1, 1])
            kernel_sum = kernel_sum + nn.functional.pad(weight, [pad, pad, pad, pad])
            bias_sum = bias_sum + bn.bias - bn._mean * scale
        self.dw_fused.weight.set_value(kernel_sum)
        self.dw_fused.bias.set_value(bias_sum)
        self.fused = True


class PPLCNetV2(ConvHeadNet):
    """PP-LCNetV2 of a given size.

    Args:
        size: ``"small"``, ``"base"`` or ``"large"``.
        num_classes: classifier outputs; 0 returns the 1280-d pre-logits.
        in_chans: input channels.
        dropout, dropout_mode: the dropout before the classifier (:class:`ConvHeadNet`).
    """

    first_conv = "stem.0.conv"

    def __init__(
        self,
        size: str,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"PP-LCNetV2 size must be one of {sorted(SIZES)}, got {size!r}")
        check_num_classes(num_classes)
        scale, depths = SIZES[size]
        stem_c, in_c = make_divisible(STEM_WIDTH * scale), make_divisible(STAGES[0][0] * scale)
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, stem_c, 3, stride=2, act=ACT), RepDepthwiseSeparable(stem_c, in_c, 1, 3)
        )
        self.feature_info.append({"module": "stem", "num_chs": in_c, "reduction": 2})
        stages = []
        reduction = 2
        for s, ((width, kernel, split_pw, rep, se, residual), depth) in enumerate(zip(STAGES, depths)):
            out_c = make_divisible(width * 2 * scale)
            blocks = []
            for b in range(depth):
                stride = 2 if b == 0 else 1
                blocks.append(RepDepthwiseSeparable(in_c, out_c, stride, kernel, split_pw, rep, se, residual))
                in_c = out_c
            reduction *= 2
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"module": f"stages.{s}", "num_chs": out_c, "reduction": reduction})
        self.stages = nn.Sequential(*stages)
        self._init_head(in_c, HEAD_WIDTH, ACT, num_classes, dropout, dropout_mode)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.stages(self.stem(x))

    def fuse(self) -> "PPLCNetV2":
        """Fold every re-parameterisable depthwise conv into one biased conv (deploy form); returns self.

        Uses the BN running statistics, so the fused network equals the unfused one in eval
        mode. Training after fusing trains ``dw_fused`` only.
        """
        for layer in self.sublayers():
            if isinstance(layer, RepDepthwiseSeparable):
                layer.fuse()
        return self


def _builder(size: str) -> Any:
    def build(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPLCNetV2:
        return PPLCNetV2(size, num_classes=num_classes, in_chans=in_chans, **kwargs)

    build.__name__ = build.__qualname__ = f"pplcnet_v2_{size}"
    build.__doc__ = f"PP-LCNetV2 {size}, PaddleClas ``PPLCNetV2_{size}``; kwargs go to :class:`PPLCNetV2`."
    return register_model(build)


pplcnet_v2_small = _builder("small")
pplcnet_v2_base = _builder("base")
pplcnet_v2_large = _builder("large")
