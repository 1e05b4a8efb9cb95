"""DenseNet 121, 161, 169, 201 and 264 (Huang et al., 2017).

The graph of PaddleClas 2.6.0 ``model_zoo/densenet.py`` (which paddle.vision's
``densenet`` repeats layer for layer and loads the same files from): a 7x7 stride-2
conv-BN-ReLU stem and a 3x3 stride-2 max pool (padding 1), then four dense blocks.
Each dense layer is pre-activated: BN-ReLU-1x1 conv to ``bn_size * growth`` channels,
BN-ReLU-3x3 conv to ``growth`` channels, concatenated after its input. Between blocks
a transition (BN-ReLU-1x1 conv halving the channels, 2x2 stride-2 average pool); after
the last block a BN-ReLU, a global average pool and the classifier. PaddleClas builds
every model with ``dropout=0``; a positive ``dropout`` drops each layer's new channels in
its ``downscale_in_infer`` mode (scaled by ``1 - p`` at inference).

State-dict keys: ``stem.{conv,bn}.*``, ``stages.<s>.transition.{norm,conv}.*`` (stages
1-3), ``stages.<s>.layers.<j>.{bottleneck,conv}.{norm,conv}.*``, ``norm.bn.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, global_pool_flatten, make_dropout

# depth -> (stem channels, growth rate, layers per block)
DENSENET_CONFIGS: Dict[int, tuple] = {
    121: (64, 32, (6, 12, 24, 16)),
    161: (96, 48, (6, 12, 36, 24)),
    169: (64, 32, (6, 12, 32, 32)),
    201: (64, 32, (6, 12, 48, 32)),
    264: (64, 32, (6, 12, 64, 48)),
}


class BNReLUConv(nn.Layer):
    """Batch norm, ReLU, convolution without bias (the pre-activation order).

    Keys: ``norm.{weight,bias,_mean,_variance}``, ``conv.weight``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2D(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            padding=(kernel_size - 1) // 2,
            weight_attr=conv_weight_attr(out_channels, kernel_size),
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(self.relu(self.norm(x)))


class DenseLayer(nn.Layer):
    """BN-ReLU-1x1 conv bottleneck, BN-ReLU-3x3 conv to ``growth`` channels, appended to the input."""

    def __init__(self, in_channels: int, growth: int, bn_size: int, dropout: float) -> None:
        super().__init__()
        self.bottleneck = BNReLUConv(in_channels, bn_size * growth, 1)
        self.conv = BNReLUConv(bn_size * growth, growth, 3)
        self.drop = make_dropout(dropout, "downscale_in_infer")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.concat([x, self.drop(self.conv(self.bottleneck(x)))], axis=1)


class DenseStage(nn.Layer):
    """An optional transition (BN-ReLU-1x1 conv to ``in_channels``, 2x2 average pool), then a dense block.

    Args:
        in_channels: channels entering the stage; the transition keeps half of them.
        num_layers: dense layers in the block.
        growth: channels each layer adds.
        bn_size: bottleneck width in multiples of ``growth``.
        dropout: drop probability of each layer's new channels.
        transition: halve the channels and the resolution first (every stage but the first).
    """

    def __init__(
        self, in_channels: int, num_layers: int, growth: int, bn_size: int, dropout: float, transition: bool
    ) -> None:
        super().__init__()
        if transition:
            self.transition = BNReLUConv(in_channels, in_channels // 2, 1)
            self.pool = nn.AvgPool2D(kernel_size=2, stride=2)
            in_channels //= 2
        else:
            self.transition = None
        self.layers = nn.Sequential(
            *[DenseLayer(in_channels + j * growth, growth, bn_size, dropout) for j in range(num_layers)]
        )
        self.out_channels = in_channels + num_layers * growth

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.transition is not None:
            x = self.pool(self.transition(x))
        return self.layers(x)


class BNReLU(nn.Layer):
    """The batch norm and ReLU after the last dense block, one layer so that ``features_only`` can
    return its output (what the pool reads). Keys: ``bn.*``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2D(channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.relu(self.bn(x))


class DenseNet(ClassifierNet):
    """DenseNet-BC with a 7x7 stem.

    Args:
        stem_channels: channels of the stem conv.
        growth: channels each dense layer adds.
        block_layers: dense layers per block (four blocks).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        bn_size: bottleneck width in multiples of ``growth`` (4 in every PaddleClas model).
        dropout: drop probability of each dense layer's new channels (0 in every PaddleClas model).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        stem_channels: int,
        growth: int,
        block_layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        bn_size: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.stem = ConvBNAct(in_chans, stem_channels, 7, stride=2)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.feature_info.append({"module": "stem", "num_chs": stem_channels, "reduction": 2})
        stages = []
        channels = stem_channels
        for s, num_layers in enumerate(block_layers):
            stage = DenseStage(channels, num_layers, growth, bn_size, dropout, transition=s > 0)
            stages.append(stage)
            channels = stage.out_channels
            if s < len(block_layers) - 1:
                self.feature_info.append(
                    {"module": f"stages.{s}", "num_chs": channels, "reduction": 4 * 2**s}
                )
        self.stages = nn.LayerList(stages)
        self.norm = BNReLU(channels)
        # The last block's map is only read after its norm and ReLU.
        last = {"module": "norm", "num_chs": channels, "reduction": 4 * 2 ** (len(block_layers) - 1)}
        self.feature_info.append(last)
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = make_linear(channels, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


def _densenet(depth: int, num_classes: int, in_chans: int, kwargs: Dict[str, Any]) -> DenseNet:
    stem, growth, blocks = DENSENET_CONFIGS[depth]
    return DenseNet(stem, growth, blocks, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-121: growth 32, blocks 6-12-24-16."""
    return _densenet(121, num_classes, in_chans, kwargs)


@register_model
def densenet161(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-161: 96-channel stem, growth 48, blocks 6-12-36-24."""
    return _densenet(161, num_classes, in_chans, kwargs)


@register_model
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-169: growth 32, blocks 6-12-32-32."""
    return _densenet(169, num_classes, in_chans, kwargs)


@register_model
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-201: growth 32, blocks 6-12-48-32."""
    return _densenet(201, num_classes, in_chans, kwargs)


@register_model
def densenet264(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-264: growth 32, blocks 6-12-64-48."""
    return _densenet(264, num_classes, in_chans, kwargs)
