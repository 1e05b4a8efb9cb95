"""ResNet18/34/50/101/152, their "vd" variants (He et al., 2015 and 2018), and the residual
blocks ResNeXt and SE-ResNeXt reuse.

One table gives the five depths (the way PaddleClas's ``NET_CONFIG`` does); the
network, its stages and its blocks are written once. Every weight source this
library reads (the 2019 fluid graphs, PaddleClas ``legendary_models``,
``paddle.vision``) puts the stride of a bottleneck on its 3x3 convolution, and so
do we.

The sources differ in one place: whether the first block of the first stage of
ResNet18/34 has a projection shortcut. There, input and output both have 64
channels at stride 1, so ``paddle.vision`` uses the identity, while the 2019 graph
(its ``is_first`` flag) and PaddleClas (``use_first_short_conv=True``) add a 1x1
conv + BN. ``first_block_projection`` selects the graph that fits the weights.
Bottleneck networks always project there (64 -> 256 channels), so the flag does
not change them.

``resnet18_dbb`` (PaddleClas ``ResNet18(layer_type="DiverseBranchBlock")``) replaces the 3x3
conv-BN layers of the blocks by :class:`~paddlehub_cls.models._dbb.DiverseBranchBlock`; call
:func:`~paddlehub_cls.models._dbb.reparameterize` after loading to fold them for deployment.

PaddleClas's ``model_zoo`` adds two options of the same network: "vc" (``resnet_vc.py``) takes
only the deep stem of vd, and SE_ResNet_vd (``se_resnet_vd.py``) puts squeeze-excitation
(ratio 16) before the residual sum of every vd block.

The "vd" variants ("Bag of Tricks", He et al., 2018; PaddleClas ``version="vd"``)
change two things: ``stem_widths`` replaces the 7x7 stem by three 3x3 conv-BN-ReLU
layers (32/32/64 channels, the first with stride 2), and ``avg_down`` makes every
strided projection shortcut a 2x2 stride-2 average pool (ceil mode, padding not
counted) followed by a stride-1 1x1 conv, so the projection sees every input pixel.

State-dict keys: ``stem.{conv,bn}.*`` (``stem.<i>.{conv,bn}.*`` with ``stem_widths``), ``stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*``
(``se.{squeeze,excite}.*`` in SE blocks), ``fc.{weight,bias}``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, Union

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._dbb import DiverseBranchBlock
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, SqueezeExcite, global_pool_flatten, make_dropout

# depth -> (block type, blocks per stage)
RESNET_CONFIGS: Dict[int, Tuple[str, Tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 12, 48, 3)),
}
#: the vd stem: three 3x3 conv-BN-ReLU layers (PaddleClas legendary ``stem_cfg["vd"]``)
VD_STEM = (32, 32, 64)
#: squeeze-excitation ratio of PaddleClas's SE_ResNet_vd and SE_ResNeXt(_vd) (``reduction_ratio=16``)
SE_REDUCTION = 16

# Output channels of a stage are width * expansion.
_EXPANSION = {"basic": 1, "bottleneck": 4}
_WIDTHS = (64, 128, 256, 512)


class AvgDownConvBN(ConvBNAct):
    """2x2 stride-2 average pool, then a stride-1 1x1 conv-BN: the vd projection shortcut.

    Keys are those of :class:`ConvBNAct` (the pool has none). ``ceil_mode`` keeps the last
    row/column of an odd map, averaged over the pixels that exist, as PaddleClas does.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1, act=None)
        self.pool = nn.AvgPool2D(kernel_size=2, stride=2, ceil_mode=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return super().forward(self.pool(x))


def make_shortcut(
    in_chs: int, out_chs: int, stride: int, project: bool, avg_down: bool
) -> Optional[nn.Layer]:
    """The projection shortcut of a block, or None for the identity."""
    if not project:
        return None
    if avg_down and stride == 2:
        return AvgDownConvBN(in_chs, out_chs)
    return ConvBNAct(in_chs, out_chs, 1, stride=stride, act=None)


class BasicBlock(nn.Layer):
    """Two 3x3 conv-BN layers (stride on the first), optional SE, plus the shortcut.

    ``se_reduction`` (0: none) adds squeeze-excitation before the sum, as in SE-HRNet.
    ``conv_cls`` builds the two 3x3 layers (``ConvBNAct``; ResNet18_dbb: ``DiverseBranchBlock``).
    """

    def __init__(
        self,
        in_chs: int,
        width: int,
        out_chs: int,
        stride: int,
        project: bool,
        *,
        avg_down: bool = False,
        se_reduction: int = 0,
        conv_cls: Callable[..., nn.Layer] = ConvBNAct,
    ) -> None:
        super().__init__()
        self.conv1 = conv_cls(in_chs, width, 3, stride=stride, act="relu")
        self.conv2 = conv_cls(width, out_chs, 3, act=None)
        self.se = SqueezeExcite(out_chs, se_reduction) if se_reduction else None
        self.shortcut = make_shortcut(in_chs, out_chs, stride, project, avg_down)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        short = x if self.shortcut is None else self.shortcut(x)
        return nn.functional.relu(out + short)


class Bottleneck(nn.Layer):
    """1x1 reduce, 3x3 (strided, optionally grouped), 1x1 expand, optional SE, plus the shortcut.

    Args:
        in_chs: input channels.
        width: channels of the 3x3 conv.
        out_chs: output channels.
        stride: stride of the 3x3 conv and of the projection.
        project: use a 1x1 conv + BN shortcut instead of the identity.
        groups: groups of the 3x3 conv (cardinality for ResNeXt).
        se_reduction: squeeze-excitation reduction ratio, 0 for none.
        avg_down: a strided projection average-pools, then convolves at stride 1 (vd).
    """

    def __init__(
        self,
        in_chs: int,
        width: int,
        out_chs: int,
        stride: int,
        project: bool,
        groups: int = 1,
        se_reduction: int = 0,
        avg_down: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_chs, width, 1)
        self.conv2 = ConvBNAct(width, width, 3, stride=stride, groups=groups)
        self.conv3 = ConvBNAct(width, out_chs, 1, act=None)
        self.se = SqueezeExcite(out_chs, se_reduction) if se_reduction else None
        self.shortcut = make_shortcut(in_chs, out_chs, stride, project, avg_down)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        if self.se is not None:
            out = self.se(out)
        short = x if self.shortcut is None else self.shortcut(x)
        return nn.functional.relu(out + short)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ClassifierNet):
    """Stem, max-pool, four residual stages, global average pool, optional dropout, linear head.

    Args:
        depths: blocks per stage.
        block: ``"basic"``, ``"bottleneck"``, or a block class called as
            ``block(in_chs, width, out_chs, stride, project, avg_down=..., **block_kwargs)``
            (Res2Net's hierarchical bottleneck).
        widths: per stage, the width of the blocks (the 3x3 convs of a bottleneck).
        expansion: stage output channels = width * expansion.
        out_widths: per stage, the output channels, where they are not ``width * expansion``
            (Res2Net: 256/512/1024/2048 whatever its split widths).
        block_kwargs: extra arguments of a block class.
        groups: groups of the bottleneck 3x3 convs.
        se_reduction: squeeze-excitation ratio in every block, 0 for none (SE_ResNet_vd, SE-ResNeXt).
        first_block_projection: give the first block a projection shortcut even
            when its input and output shapes agree (the 2019 and PaddleClas ResNet18/34).
        stem_widths: ``None`` for one 7x7 stride-2 conv of 64 channels, or the output
            channels of a deep stem of 3x3 convs, the first with stride 2 (vd: ``VD_STEM``).
        avg_down: strided projection shortcuts average-pool first (vd).
        num_classes: classifier outputs; 0 returns pooled features.
        in_chans: input channels.
        dropout: dropout probability before the classifier.
        dropout_mode: ``"downscale_in_infer"`` (the 2019 fluid graphs: scale by
            ``1 - dropout`` at inference) or ``"upscale_in_train"`` (identity at inference).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        depths: Sequence[int],
        block: Union[str, Type[nn.Layer]] = "bottleneck",
        widths: Sequence[int] = _WIDTHS,
        expansion: int = 4,
        out_widths: Optional[Sequence[int]] = None,
        block_kwargs: Optional[Dict[str, Any]] = None,
        groups: int = 1,
        se_reduction: int = 0,
        first_block_projection: bool = False,
        stem_widths: Optional[Sequence[int]] = None,
        avg_down: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
        dropout_mode: str = "upscale_in_train",
    ) -> None:
        super().__init__()
        _check_args(block, first_block_projection, in_chans, dropout)
        if not isinstance(avg_down, bool):
            raise ValueError(f"avg_down must be True or False, got {avg_down!r}")
        if len(depths) != len(widths):
            raise ValueError(
                f"depths and widths need one entry per stage, got {list(depths)} and {list(widths)}"
            )
        if block == "basic" and groups != 1:
            raise ValueError(f"basic blocks take no groups; got groups={groups}")
        if out_widths is not None and len(out_widths) != len(depths):
            raise ValueError(f"out_widths needs one entry per stage, got {list(out_widths)} for {len(depths)} stages")
        check_num_classes(num_classes)
        # Kept for the layouts, whose source names depend on the depth and block type.
        self.block_type = block if isinstance(block, str) else block.block_type
        self.depths = tuple(int(d) for d in depths)
        self.stem, in_chs = _make_stem(in_chans, stem_widths)
        if stem_widths is not None:
            self.first_conv = "stem.0.conv"
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        block_cls = _BLOCKS[block] if isinstance(block, str) else block
        extra: Dict[str, Any] = {"avg_down": avg_down, **(block_kwargs or {})}
        if block == "bottleneck":
            extra.update(groups=groups, se_reduction=se_reduction)
        elif block == "basic":
            extra.update(se_reduction=se_reduction)
        stages = []
        for idx, (depth, width) in enumerate(zip(depths, widths)):
            out_chs = width * expansion if out_widths is None else out_widths[idx]
            blocks = []
            for i in range(depth):
                stride = 2 if (i == 0 and idx > 0) else 1
                project = i == 0 and (
                    stride != 1 or in_chs != out_chs or (idx == 0 and first_block_projection)
                )
                blocks.append(block_cls(in_chs, width, out_chs, stride, project, **extra))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"module": f"stages.{idx}", "num_chs": out_chs, "reduction": 4 * 2**idx})
        self.stages = nn.LayerList(stages)

        self.num_features = in_chs
        self.num_classes = num_classes
        self.drop = make_dropout(dropout, dropout_mode)
        self.fc = make_linear(self.num_features, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        # The inference-time dropout scale belongs to the classifier's input, so
        # pooled features (pre_logits, or no classifier) are returned unscaled.
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(self.drop(x))


def _make_stem(in_chans: int, stem_widths: Optional[Sequence[int]]) -> Tuple[nn.Layer, int]:
    """The stem and its output channels."""
    if stem_widths is None:
        return ConvBNAct(in_chans, 64, 7, stride=2), 64
    widths = list(stem_widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            f"stem_widths must be None or a non-empty list of positive ints, got {stem_widths!r}"
        )
    layers = [
        ConvBNAct(c_in, c_out, 3, stride=2 if i == 0 else 1)
        for i, (c_in, c_out) in enumerate(zip([in_chans] + widths[:-1], widths))
    ]
    return nn.Sequential(*layers), widths[-1]


def _check_args(
    block: Union[str, Type[nn.Layer]], first_block_projection: bool, in_chans: int, dropout: float
) -> None:
    if isinstance(block, str) and block not in _BLOCKS:
        raise ValueError(f"block must be one of {sorted(_BLOCKS)} or a block class, got {block!r}")
    if not isinstance(block, str) and not (isinstance(block, type) and hasattr(block, "block_type")):
        raise ValueError(f"a block class needs a block_type name for the layouts, got {block!r}")
    if not isinstance(first_block_projection, bool):
        raise ValueError(f"first_block_projection must be True or False, got {first_block_projection!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")


def _resnet(
    depth: int, num_classes: int, in_chans: int, kwargs: Dict[str, Any], vd: bool = False, se: bool = False
) -> ResNet:
    block, depths = RESNET_CONFIGS[depth]
    if vd:
        # PaddleClas projects the first block of ResNet18/34_vd too (use_first_short_conv=True).
        kwargs = {"stem_widths": VD_STEM, "avg_down": True, "first_block_projection": True, **kwargs}
    if se:
        kwargs = {"se_reduction": SE_REDUCTION, **kwargs}
    return ResNet(
        depths, block=block, expansion=_EXPANSION[block], num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2).

    ``first_block_projection=True`` builds the graph of the 2019 and PaddleClas weights.
    """
    return _resnet(18, num_classes, in_chans, kwargs)


@register_model
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34 (basic blocks 3-4-6-3).

    ``first_block_projection=True`` builds the graph of the 2019 and PaddleClas weights.
    """
    return _resnet(34, num_classes, in_chans, kwargs)


@register_model
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (bottlenecks 3-4-6-3)."""
    return _resnet(50, num_classes, in_chans, kwargs)


@register_model
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101 (bottlenecks 3-4-23-3)."""
    return _resnet(101, num_classes, in_chans, kwargs)


@register_model
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152 (bottlenecks 3-8-36-3)."""
    return _resnet(152, num_classes, in_chans, kwargs)


@register_model
def resnet18_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18-vd: deep stem, average-pool projections, first block projected (PaddleClas)."""
    return _resnet(18, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet34_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34-vd: deep stem, average-pool projections, first block projected (PaddleClas)."""
    return _resnet(34, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet50_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50-vd: deep stem and average-pool projections."""
    return _resnet(50, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet101_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101-vd: deep stem and average-pool projections."""
    return _resnet(101, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet152_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152-vd: deep stem and average-pool projections."""
    return _resnet(152, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet200_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-200-vd (bottlenecks 3-12-48-3): deep stem and average-pool projections."""
    return _resnet(200, num_classes, in_chans, kwargs, vd=True)


@register_model
def resnet50_vc(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50-vc (PaddleClas ``model_zoo/resnet_vc.py``): the vd deep stem, strided 1x1 projections."""
    return _resnet(50, num_classes, in_chans, {"stem_widths": VD_STEM, **kwargs})


@register_model
def se_resnet18_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """SE-ResNet-18-vd (PaddleClas ``model_zoo/se_resnet_vd.py``): ResNet-18-vd with SE (ratio 16) in every block."""
    return _resnet(18, num_classes, in_chans, kwargs, vd=True, se=True)


@register_model
def se_resnet34_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """SE-ResNet-34-vd (PaddleClas ``model_zoo/se_resnet_vd.py``): ResNet-34-vd with SE (ratio 16) in every block."""
    return _resnet(34, num_classes, in_chans, kwargs, vd=True, se=True)


@register_model
def se_resnet50_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """SE-ResNet-50-vd (PaddleClas ``model_zoo/se_resnet_vd.py``): ResNet-50-vd with SE (ratio 16) in every block."""
    return _resnet(50, num_classes, in_chans, kwargs, vd=True, se=True)


@register_model
def resnet18_dbb(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18 whose block convs are Diverse Branch Blocks (PaddleClas ``ResNet18_dbb``).

    The first block is projected, as in PaddleClas's ResNet18; stem and shortcuts are plain conv-BN.
    """
    kwargs = {"first_block_projection": True, "block_kwargs": {"conv_cls": DiverseBranchBlock}, **kwargs}
    return _resnet(18, num_classes, in_chans, kwargs)
