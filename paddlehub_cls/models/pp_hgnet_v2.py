"""PP-HGNetV2 B0-B6 (PaddleClas, 2023).

The graph of PaddleClas 2.6.0 ``legendary_models/pp_hgnet_v2.py``, an evolution of
:mod:`paddlehub_cls.models.pp_hgnet`:

- Stem: 3x3/2 conv, then two branches joined by concatenation: a 2x2/1 max-pool and
  two 2x2/1 convs, both with Paddle's ``"SAME"`` padding (the extra pixel after, so
  the map keeps its size); then a 3x3/2 conv and a 1x1 conv.
- HGV2 blocks: ``layer_num`` chained convs (plain kxk conv-BN-ReLU, or "light": a 1x1
  conv-BN without activation followed by a kxk depthwise conv-BN-ReLU), concatenated
  with the block input and aggregated by two 1x1 conv-BN-ReLU (to ``out / 2``, then
  ``out``); no ESE. Residual in every block but a stage's first.
- B0-B3 put a learnable affine ``y = a * x + b`` (scalar ``a``, ``b``; PaddleClas's
  ``LearnableAffineBlock``, learning rate x0.01) after every ReLU, the head's included.
- The head is PP-HGNet's (:class:`~paddlehub_cls.models.pp_hgnet.HGNetHead`), dropout 0.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct
from paddlehub_cls.models.pp_hgnet import HGNetHead

# PaddleClas trains the affine's two scalars at 1/100 of the base learning rate.
LAB_LR_MULT = 0.01

# (stage in, mid, out, blocks, downsample, light blocks, kernel, layers per block) per stage
StageCfg = Tuple[int, int, int, int, bool, bool, int, int]

#: name -> (stem mid and out channels, stage configs, learnable affine)
PPHGNETV2_CONFIGS: Dict[str, Tuple[Tuple[int, int], Tuple[StageCfg, ...], bool]] = {
    "b0": (
        (16, 16),
        (
            (16, 16, 64, 1, False, False, 3, 3),
            (64, 32, 256, 1, True, False, 3, 3),
            (256, 64, 512, 2, True, True, 5, 3),
            (512, 128, 1024, 1, True, True, 5, 3),
        ),
        True,
    ),
    "b1": (
        (24, 32),
        (
            (32, 32, 64, 1, False, False, 3, 3),
            (64, 48, 256, 1, True, False, 3, 3),
            (256, 96, 512, 2, True, True, 5, 3),
            (512, 192, 1024, 1, True, True, 5, 3),
        ),
        True,
    ),
    "b2": (
        (24, 32),
        (
            (32, 32, 96, 1, False, False, 3, 4),
            (96, 64, 384, 1, True, False, 3, 4),
            (384, 128, 768, 3, True, True, 5, 4),
            (768, 256, 1536, 1, True, True, 5, 4),
        ),
        True,
    ),
    "b3": (
        (24, 32),
        (
            (32, 32, 128, 1, False, False, 3, 5),
            (128, 64, 512, 1, True, False, 3, 5),
            (512, 128, 1024, 3, True, True, 5, 5),
            (1024, 256, 2048, 1, True, True, 5, 5),
        ),
        True,
    ),
    "b4": (
        (32, 48),
        (
            (48, 48, 128, 1, False, False, 3, 6),
            (128, 96, 512, 1, True, False, 3, 6),
            (512, 192, 1024, 3, True, True, 5, 6),
            (1024, 384, 2048, 1, True, True, 5, 6),
        ),
        False,
    ),
    "b5": (
        (32, 64),
        (
            (64, 64, 128, 1, False, False, 3, 6),
            (128, 128, 512, 2, True, False, 3, 6),
            (512, 256, 1024, 5, True, True, 5, 6),
            (1024, 512, 2048, 2, True, True, 5, 6),
        ),
        False,
    ),
    "b6": (
        (48, 96),
        (
            (96, 96, 192, 2, False, False, 3, 6),
            (192, 192, 512, 3, True, False, 3, 6),
            (512, 384, 1024, 6, True, True, 5, 6),
            (1024, 768, 2048, 3, True, True, 5, 6),
        ),
        False,
    ),
}


class LearnableAffine(nn.Layer):
    """``scale * x + bias`` with two trainable scalars (start 1 and 0). Keys: ``scale``, ``bias``."""

    def __init__(self) -> None:
        super().__init__()
        attr = paddle.ParamAttr(learning_rate=LAB_LR_MULT)
        self.scale = self.create_parameter([1], attr=attr, default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([1], attr=attr, default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.scale * x + self.bias


class ConvBNActLab(ConvBNAct):
    """:class:`ConvBNAct` with a :class:`LearnableAffine` after the activation when ``use_lab``.

    As in PaddleClas, a layer without activation gets no affine. Keys: ``conv.*``, ``bn.*``, ``lab.*``.
    """

    def __init__(self, *args: Any, use_lab: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lab = LearnableAffine() if use_lab and kwargs.get("act", "relu") is not None else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = super().forward(x)
        return x if self.lab is None else self.lab(x)


class LightConv(nn.Layer):
    """1x1 conv-BN (no activation), then a kxk depthwise conv-BN-ReLU. Keys: ``conv1.*``, ``conv2.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, use_lab: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNActLab(in_channels, out_channels, 1, act=None, use_lab=use_lab)
        self.conv2 = ConvBNActLab(
            out_channels, out_channels, kernel_size, groups=out_channels, use_lab=use_lab
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv2(self.conv1(x))


class StemV2(nn.Layer):
    """The two-branch stem (stride 4). Keys: ``stem1``, ``stem2a``, ``stem2b``, ``stem3``, ``stem4``."""

    def __init__(self, in_chans: int, mid: int, out: int, use_lab: bool) -> None:
        super().__init__()
        self.stem1 = ConvBNActLab(in_chans, mid, 3, stride=2, use_lab=use_lab)
        self.stem2a = ConvBNActLab(mid, mid // 2, 2, padding="SAME", use_lab=use_lab)
        self.stem2b = ConvBNActLab(mid // 2, mid, 2, padding="SAME", use_lab=use_lab)
        self.stem3 = ConvBNActLab(mid * 2, mid, 3, stride=2, use_lab=use_lab)
        self.stem4 = ConvBNActLab(mid, out, 1, use_lab=use_lab)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem1(x)
        x = paddle.concat([self.pool(x), self.stem2b(self.stem2a(x))], axis=1)
        return self.stem4(self.stem3(x))


class HGV2Block(nn.Layer):
    """Chained (light) convs, concatenation, squeeze and excitation 1x1 convs, optional residual.

    Keys: ``layers.<i>.*``, ``aggregation_squeeze_conv.*``, ``aggregation_excitation_conv.*``.
    """

    def __init__(
        self,
        in_c: int,
        mid_c: int,
        out_c: int,
        kernel: int,
        layer_num: int,
        identity: bool,
        light: bool,
        use_lab: bool,
    ) -> None:
        super().__init__()
        self.identity = identity
        layers = []
        for i in range(layer_num):
            c = in_c if i == 0 else mid_c
            layers.append(
                LightConv(c, mid_c, kernel, use_lab)
                if light
                else ConvBNActLab(c, mid_c, kernel, use_lab=use_lab)
            )
        self.layers = nn.LayerList(layers)
        self.aggregation_squeeze_conv = ConvBNActLab(in_c + layer_num * mid_c, out_c // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = ConvBNActLab(out_c // 2, out_c, 1, use_lab=use_lab)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outputs.append(y)
        y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(paddle.concat(outputs, axis=1)))
        return y + x if self.identity else y


class HGV2Stage(nn.Layer):
    """Optional depthwise stride-2 conv-BN (no activation), then HGV2 blocks. Keys: ``downsample.*``, ``blocks.<j>.*``."""

    def __init__(self, cfg: StageCfg, use_lab: bool) -> None:
        super().__init__()
        in_c, mid_c, out_c, num_blocks, downsample, light, kernel, layer_num = cfg
        self.downsample = (
            ConvBNActLab(in_c, in_c, 3, stride=2, groups=in_c, act=None, use_lab=use_lab)
            if downsample
            else None
        )
        self.blocks = nn.Sequential(
            *[
                HGV2Block(in_c if j == 0 else out_c, mid_c, out_c, kernel, layer_num, j > 0, light, use_lab)
                for j in range(num_blocks)
            ]
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNetV2(HGNetHead):
    """PP-HGNetV2.

    Args:
        stem_channels: ``(mid, out)`` channels of the stem.
        stages: ``(in, mid, out, blocks, downsample, light, kernel, layers)`` of each stage.
        use_lab: learnable affine after every activation (B0-B3).
        num_classes: classifier outputs; 0 returns the 2048-d features after the head conv.
        in_chans: input channels.
        dropout: dropout before the classifier (``downscale_in_infer``); 0 in every release.
    """

    first_conv = "stem.stem1.conv"

    def __init__(
        self,
        stem_channels: Tuple[int, int],
        stages: Sequence[StageCfg],
        use_lab: bool,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.stem = StemV2(in_chans, *stem_channels, use_lab=use_lab)
        self.stages = nn.LayerList([HGV2Stage(cfg, use_lab) for cfg in stages])
        reduction = 4
        for i, cfg in enumerate(stages):
            reduction *= 2 if cfg[4] else 1
            self.feature_info.append({"module": f"stages.{i}", "num_chs": cfg[2], "reduction": reduction})
        lab: Optional[nn.Layer] = LearnableAffine() if use_lab else None
        self._build_head(stages[-1][2], num_classes, dropout, lab)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


def _pphgnetv2(size: str, num_classes: int, in_chans: int, **kwargs: Any) -> PPHGNetV2:
    stem, stages, use_lab = PPHGNETV2_CONFIGS[size]
    return PPHGNetV2(stem, stages, use_lab, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def pphgnetv2_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B0 (learnable affine; stage outputs 64/256/512/1024)."""
    return _pphgnetv2("b0", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B1 (learnable affine; stage outputs 64/256/512/1024)."""
    return _pphgnetv2("b1", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B2 (learnable affine; stage outputs 96/384/768/1536)."""
    return _pphgnetv2("b2", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B3 (learnable affine; stage outputs 128/512/1024/2048)."""
    return _pphgnetv2("b3", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b4(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B4 (stage outputs 128/512/1024/2048)."""
    return _pphgnetv2("b4", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b5(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B5 (stage outputs 128/512/1024/2048)."""
    return _pphgnetv2("b5", num_classes, in_chans, **kwargs)


@register_model
def pphgnetv2_b6(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNetV2:
    """PP-HGNetV2-B6 (stage outputs 192/512/1024/2048)."""
    return _pphgnetv2("b6", num_classes, in_chans, **kwargs)
