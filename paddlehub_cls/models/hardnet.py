"""HarDNet 39-DS, 68-DS, 68 and 85 (Chao et al., 2019), harmonic densely connected networks.

The graph of PaddleClas 2.6.0 ``model_zoo/hardnet.py`` (a port of PingoLH/Pytorch-HarDNet).
A conv layer is conv (no bias, padding ``k // 2``), BN, ReLU6; a depthwise layer is a 3x3
depthwise conv and BN without activation. The stem: a 3x3 stride-2 conv layer, a second conv
layer (3x3; 1x1 in the ``_ds`` models), and a 3x3 stride-2 max pool with padding 1 (``_ds``:
a stride-2 depthwise layer). Then harmonic dense blocks, each followed by a 1x1 conv layer
to the stage width and, where the stage downsamples, a 2x2 stride-2 max pool (``_ds``: a
stride-2 depthwise layer). In a block, layer ``k`` (from 1) reads the concatenation of the
outputs of layers ``k - 2^i`` for every ``2^i`` dividing ``k`` (layer 0 is the block's input)
and has ``growth * mul^(links - 1)`` channels rounded to an even number; the block returns
the outputs of its odd-numbered layers and its last. In ``_ds`` models a layer is a 1x1 conv
layer and a 3x3 depthwise layer. Dropout (HarDNet85's 0.1 before its last 1x1 conv, and the
head's) is ``nn.Dropout``'s upscale mode: the identity at inference.

The trunk is one list, ``base``, in PaddleClas's order and with its names, so that a
feature map is the output of a ``base.<i>`` layer. State-dict keys: ``base.<i>.{conv,norm}.*``
(conv layers), ``base.<i>.{dwconv,norm}.*`` (depthwise layers), ``base.<i>.layers.<k>.*``
(blocks; ``layer1``/``layer2`` inside the ``_ds`` layers), ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import conv_weight_attr, global_pool_flatten, make_dropout

# arch -> stem widths, stage widths, growth per block, layers per block, downsample after block,
# channel multiplier, head dropout (not _ds; the _ds models use 0.05)
HARDNET_CONFIGS: Dict[int, Dict[str, Any]] = {
    39: dict(
        stem=(24, 48),
        widths=(96, 320, 640, 1024),
        growth=(16, 20, 64, 160),
        layers=(4, 16, 8, 4),
        down=(1, 1, 1, 0),
        mul=1.6,
        dropout=0.1,
    ),
    68: dict(
        stem=(32, 64),
        widths=(128, 256, 320, 640, 1024),
        growth=(14, 16, 20, 40, 160),
        layers=(8, 16, 16, 16, 4),
        down=(1, 0, 1, 1, 0),
        mul=1.7,
        dropout=0.1,
    ),
    85: dict(
        stem=(48, 96),
        widths=(192, 256, 320, 480, 720, 1280),
        growth=(24, 24, 28, 36, 48, 256),
        layers=(8, 16, 16, 16, 16, 4),
        down=(1, 0, 1, 0, 1, 0),
        mul=1.7,
        dropout=0.2,
    ),
}
DS_DROPOUT = 0.05


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2D:
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=kernel // 2,
        groups=groups,
        weight_attr=conv_weight_attr(out_channels, kernel, groups),
        bias_attr=False,
    )


class ConvLayer(nn.Sequential):
    """Conv (padding ``k // 2``), BN, ReLU6. Keys: ``conv.weight``, ``norm.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            ("conv", _conv(in_channels, out_channels, kernel, stride)),
            ("norm", nn.BatchNorm2D(out_channels)),
            ("relu", nn.ReLU6()),
        )


class DWConvLayer(nn.Sequential):
    """3x3 depthwise conv and BN, no activation. Keys: ``dwconv.weight``, ``norm.*``."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__(
            ("dwconv", _conv(channels, channels, 3, stride, groups=channels)),
            ("norm", nn.BatchNorm2D(channels)),
        )


class CombConvLayer(nn.Sequential):
    """A 1x1 conv layer and a 3x3 depthwise layer (the ``_ds`` models' layer)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ("layer1", ConvLayer(in_channels, out_channels, 1)), ("layer2", DWConvLayer(out_channels))
        )


def harmonic_link(layer: int, base: int, growth: int, mul: float) -> Tuple[int, int, List[int]]:
    """(output channels, input channels, layers read) of layer ``layer`` of a harmonic dense block.

    Layer 0 is the block's input (``base`` channels). Layer ``k`` reads ``k - 2^i`` for every
    ``2^i`` dividing ``k``; each link beyond the first multiplies its width by ``mul``.
    """
    if layer == 0:
        return base, 0, []
    width, links = float(growth), []
    for i in range(10):
        step = 2**i
        if layer % step == 0:
            links.append(layer - step)
            if i > 0:
                width *= mul
    out_channels = int(int(width + 1) / 2) * 2
    in_channels = sum(harmonic_link(k, base, growth, mul)[0] for k in links)
    return out_channels, in_channels, links


class HarDBlock(nn.Layer):
    """A harmonic dense block; returns the odd-numbered layers' outputs and the last, concatenated."""

    def __init__(self, in_channels: int, growth: int, mul: float, num_layers: int, depthwise: bool) -> None:
        super().__init__()
        self.links: List[List[int]] = []
        layers = []
        self.out_channels = 0
        for k in range(1, num_layers + 1):
            out_c, in_c, links = harmonic_link(k, in_channels, growth, mul)
            self.links.append(links)
            layers.append(CombConvLayer(in_c, out_c) if depthwise else ConvLayer(in_c, out_c))
            if k % 2 == 1 or k == num_layers:
                self.out_channels += out_c
        self.layers = nn.LayerList(layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        for layer, links in zip(self.layers, self.links):
            inputs = [outputs[k] for k in links]
            outputs.append(layer(paddle.concat(inputs, axis=1) if len(inputs) > 1 else inputs[0]))
        last = len(outputs) - 1
        return paddle.concat([o for k, o in enumerate(outputs) if k % 2 == 1 or k == last], axis=1)


class HarDNet(ClassifierNet):
    """HarDNet.

    Args:
        arch: 39, 68 or 85.
        depthwise: the ``_ds`` form (1x1 second stem conv, depthwise downsampling and layers).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
    """

    classifier_attrs = ("fc",)
    first_conv = "base.0.conv"

    def __init__(self, arch: int, depthwise: bool, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if arch not in HARDNET_CONFIGS:
            raise ValueError(f"arch must be one of {sorted(HARDNET_CONFIGS)}, got {arch!r}")
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        cfg = HARDNET_CONFIGS[arch]
        first, second = cfg["stem"]
        base: List[nn.Layer] = [
            ConvLayer(in_chans, first, 3, stride=2),
            ConvLayer(first, second, 1 if depthwise else 3),
            DWConvLayer(second, stride=2) if depthwise else nn.MaxPool2D(kernel_size=3, stride=2, padding=1),
        ]
        self.feature_info.append({"module": "base.0", "num_chs": first, "reduction": 2})
        channels, reduction = second, 4
        last = len(cfg["layers"]) - 1
        for i, (width, growth, num_layers, down) in enumerate(
            zip(cfg["widths"], cfg["growth"], cfg["layers"], cfg["down"])
        ):
            block = HarDBlock(channels, growth, cfg["mul"], num_layers, depthwise)
            base.append(block)
            if i == last and arch == 85:
                base.append(make_dropout(0.1, "upscale_in_train"))
            base.append(ConvLayer(block.out_channels, width, 1))
            channels = width
            if down or i == last:
                # The map at this reduction, just before the next downsampling.
                self.feature_info.append(
                    {"module": f"base.{len(base) - 1}", "num_chs": width, "reduction": reduction}
                )
            if down:
                base.append(
                    DWConvLayer(width, stride=2) if depthwise else nn.MaxPool2D(kernel_size=2, stride=2)
                )
                reduction *= 2
        self.base = nn.LayerList(base)
        self.drop = make_dropout(DS_DROPOUT if depthwise else cfg["dropout"], "upscale_in_train")
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = make_linear(channels, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.base:
            x = layer(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(self.drop(x))


@register_model
def hardnet39_ds(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HarDNet:
    """HarDNet39-DS: depthwise-separable, blocks of 4-16-8-4 layers."""
    return HarDNet(39, True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def hardnet68_ds(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HarDNet:
    """HarDNet68-DS: depthwise-separable, blocks of 8-16-16-16-4 layers."""
    return HarDNet(68, True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def hardnet68(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HarDNet:
    """HarDNet68: blocks of 8-16-16-16-4 layers."""
    return HarDNet(68, False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def hardnet85(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> HarDNet:
    """HarDNet85: blocks of 8-16-16-16-16-4 layers."""
    return HarDNet(85, False, num_classes=num_classes, in_chans=in_chans, **kwargs)
