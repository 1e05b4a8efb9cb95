"""PP-HGNet tiny / small / base (PaddleClas, 2022).

The graph of PaddleClas 2.6.0 ``legendary_models/pp_hgnet.py``: a stem of three 3x3
conv-BN-ReLU (the first with stride 2), a 3x3/2 max-pool, four stages of HG blocks,
global average pooling, a 1x1 conv (no bias) to 2048 channels with ReLU, dropout and
the linear classifier.

An HG block runs ``layer_num`` 3x3 conv-BN-ReLU in a chain, concatenates the block's
input with every intermediate output, aggregates them with a 1x1 conv-BN-ReLU and
reweights the channels with ESE (effective squeeze-excitation: one 1x1 conv with bias
and a sigmoid, no reduction). Every block but a stage's first adds its input. Stages
2-4 start with a 3x3 stride-2 depthwise conv-BN without activation.

PPHGNet_base's dropout (p = 0.2) is ``downscale_in_infer``: at inference the features
before the classifier are multiplied by 0.8. Pooled features (``pre_logits``,
``num_classes=0``) are returned unscaled, as for the 2019 SE-ResNeXt graph.

The pooled-then-1x1-conv head is shared with PP-HGNetV2 (:class:`HGNetHead`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, make_dropout

#: width of the 1x1 conv between pooling and the classifier (PaddleClas ``class_expand``)
CLASS_EXPAND = 2048

# (stage in, mid, out, blocks, downsample) per stage
StageCfg = Tuple[int, int, int, int, bool]

#: name -> (stem channels, stage configs, layers per HG block, dropout)
PPHGNET_CONFIGS: Dict[str, Tuple[Tuple[int, ...], Tuple[StageCfg, ...], int, float]] = {
    "tiny": (
        (48, 48, 96),
        (
            (96, 96, 224, 1, False),
            (224, 128, 448, 1, True),
            (448, 160, 512, 2, True),
            (512, 192, 768, 1, True),
        ),
        5,
        0.0,
    ),
    "small": (
        (64, 64, 128),
        (
            (128, 128, 256, 1, False),
            (256, 160, 512, 1, True),
            (512, 192, 768, 2, True),
            (768, 224, 1024, 1, True),
        ),
        6,
        0.0,
    ),
    "base": (
        (96, 96, 160),
        (
            (160, 192, 320, 1, False),
            (320, 224, 640, 2, True),
            (640, 256, 960, 3, True),
            (960, 288, 1280, 2, True),
        ),
        7,
        0.2,
    ),
}


class HGNetHead(ClassifierNet):
    """Base of PP-HGNet and PP-HGNetV2: pooling, 1x1 conv + ReLU, dropout, classifier.

    Subclasses build their body, then call :meth:`_build_head`. Keys: ``last_conv.weight``,
    ``fc.{weight,bias}`` (and ``lab.{scale,bias}`` where an affine follows the ReLU).
    """

    classifier_attrs = ("fc",)

    def _build_head(
        self, in_channels: int, num_classes: int, dropout: float, lab: Optional[nn.Layer] = None
    ) -> None:
        self.last_conv = nn.Conv2D(
            in_channels, CLASS_EXPAND, 1, weight_attr=conv_weight_attr(CLASS_EXPAND, 1), bias_attr=False
        )
        self.act = nn.ReLU()
        if lab is not None:
            self.lab = lab
        self.drop = make_dropout(dropout, "downscale_in_infer")
        self.num_features = CLASS_EXPAND
        self.fc = make_linear(CLASS_EXPAND, num_classes)
        self.num_classes = num_classes

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = self.act(self.last_conv(nn.functional.adaptive_avg_pool2d(x, 1)))
        if hasattr(self, "lab"):
            x = self.lab(x)
        x = paddle.flatten(x, 1)
        # The inference-time dropout scale belongs to the classifier's input.
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(self.drop(x))


class ESE(nn.Layer):
    """Effective squeeze-excitation: ``x * sigmoid(conv1x1(avgpool(x)))``. Keys: ``conv.{weight,bias}``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(channels, channels, 1, weight_attr=conv_weight_attr(channels, 1))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(self.conv(nn.functional.adaptive_avg_pool2d(x, 1)))


class HGBlock(nn.Layer):
    """Chained 3x3 convs, concatenation with the input, 1x1 aggregation, ESE, optional residual.

    Keys: ``layers.<i>.*``, ``aggregation_conv.*``, ``att.conv.*``.
    """

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, layer_num: int, identity: bool
    ):
        super().__init__()
        self.identity = identity
        self.layers = nn.LayerList(
            [ConvBNAct(in_channels if i == 0 else mid_channels, mid_channels, 3) for i in range(layer_num)]
        )
        self.aggregation_conv = ConvBNAct(in_channels + layer_num * mid_channels, out_channels, 1)
        self.att = ESE(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outputs.append(y)
        y = self.att(self.aggregation_conv(paddle.concat(outputs, axis=1)))
        return y + x if self.identity else y


class HGStage(nn.Layer):
    """Optional depthwise stride-2 conv-BN (no activation), then HG blocks. Keys: ``downsample.*``, ``blocks.<j>.*``."""

    def __init__(self, cfg: StageCfg, layer_num: int) -> None:
        super().__init__()
        in_c, mid_c, out_c, num_blocks, downsample = cfg
        self.downsample = ConvBNAct(in_c, in_c, 3, stride=2, groups=in_c, act=None) if downsample else None
        self.blocks = nn.Sequential(
            *[
                HGBlock(in_c if j == 0 else out_c, mid_c, out_c, layer_num, identity=j > 0)
                for j in range(num_blocks)
            ]
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNet(HGNetHead):
    """PP-HGNet.

    Args:
        stem_channels: output channels of the three stem convs.
        stages: ``(in, mid, out, blocks, downsample)`` of each stage.
        layer_num: 3x3 convs per HG block.
        num_classes: classifier outputs; 0 returns the 2048-d features after the head conv.
        in_chans: input channels.
        dropout: dropout before the classifier (``downscale_in_infer``: scales by ``1 - p`` at inference).
    """

    first_conv = "stem.0.conv"

    def __init__(
        self,
        stem_channels: Sequence[int],
        stages: Sequence[StageCfg],
        layer_num: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        chans = [in_chans, *stem_channels]
        self.stem = nn.Sequential(
            *[
                ConvBNAct(chans[i], chans[i + 1], 3, stride=2 if i == 0 else 1)
                for i in range(len(stem_channels))
            ]
        )
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = nn.LayerList([HGStage(cfg, layer_num) for cfg in stages])
        reduction = 4
        for i, cfg in enumerate(stages):
            reduction *= 2 if cfg[4] else 1
            self.feature_info.append({"module": f"stages.{i}", "num_chs": cfg[2], "reduction": reduction})
        self._build_head(stages[-1][2], num_classes, dropout)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x


def _pphgnet(size: str, num_classes: int, in_chans: int, **kwargs: Any) -> PPHGNet:
    stem, stages, layer_num, dropout = PPHGNET_CONFIGS[size]
    kwargs.setdefault("dropout", dropout)
    return PPHGNet(stem, stages, layer_num, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def pphgnet_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNet:
    """PP-HGNet tiny: stem 48-48-96, 5 layers per block, stage outputs 224/448/512/768."""
    return _pphgnet("tiny", num_classes, in_chans, **kwargs)


@register_model
def pphgnet_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNet:
    """PP-HGNet small: stem 64-64-128, 6 layers per block, stage outputs 256/512/768/1024."""
    return _pphgnet("small", num_classes, in_chans, **kwargs)


@register_model
def pphgnet_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PPHGNet:
    """PP-HGNet base: stem 96-96-160, 7 layers per block, stage outputs 320/640/960/1280, dropout 0.2."""
    return _pphgnet("base", num_classes, in_chans, **kwargs)
