"""ResNeXt 32x4d / 64x4d of depth 50, 101 and 152, and their vd variants (Xie et al., 2016).

A ResNet (:mod:`paddlehub_cls.models.resnet`) whose bottleneck 3x3 conv is grouped
(the cardinality) and carries the stride. PaddleClas 2.6.0 ``model_zoo/resnext.py`` and
``model_zoo/resnext_vd.py`` set the widths by cardinality: 32 groups use 3x3 widths
128/256/512/1024 and stage outputs twice that; 64 groups use widths 256/512/1024/2048
and stage outputs equal to the width. Both project the shortcut only in the first block
of a stage and apply no dropout. The vd variants take the deep 3x3 stem and the
average-pool projection shortcut of ResNet-vd.

ResNeXt-101 32xNd WSL (Mahajan et al., 2018: weakly supervised on Instagram hashtags, then
fine-tuned on ImageNet-1k; PaddleClas ``model_zoo/resnext101_wsl.py`` holds the converted
Facebook weights) is the torchvision topology: the 7x7 stem, 32 groups of ``N`` channels in
the 3x3 convs of stage 1 (``32 * N * 2**s`` in stage ``s``), stage outputs 256, 512, 1024,
2048 whatever ``N``, and strided 1x1 projections.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.resnet import RESNET_CONFIGS, VD_STEM, ResNet

#: cardinality -> (3x3 widths per stage, expansion)
CARDINALITIES: Dict[int, Tuple[Tuple[int, int, int, int], int]] = {
    32: ((128, 256, 512, 1024), 2),
    64: ((256, 512, 1024, 2048), 1),
}
DEPTHS = (50, 101, 152)
#: group widths of the published ResNeXt-101 32xNd WSL networks
WSL_WIDTHS = (8, 16, 32, 48)


def resnext(
    depth: int, cardinality: int, vd: bool = False, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any
) -> ResNet:
    """A ResNeXt ``depth`` with ``cardinality`` x 4d groups; ``vd`` adds the deep stem and avg-pool shortcuts.

    ``kwargs`` go to :class:`~paddlehub_cls.models.resnet.ResNet` (e.g. ``se_reduction``,
    ``stem_widths``).
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNeXt depth must be one of {list(DEPTHS)}, got {depth!r}")
    if cardinality not in CARDINALITIES:
        raise ValueError(f"ResNeXt cardinality must be one of {sorted(CARDINALITIES)}, got {cardinality!r}")
    widths, expansion = CARDINALITIES[cardinality]
    if vd:
        kwargs = {"stem_widths": VD_STEM, "avg_down": True, **kwargs}
    return ResNet(
        RESNET_CONFIGS[depth][1],
        block="bottleneck",
        widths=widths,
        expansion=expansion,
        groups=cardinality,
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )


def _register(depth: int, cardinality: int, vd: bool) -> None:
    name = f"resnext{depth}{'_vd' if vd else ''}_{cardinality}x4d"

    def builder(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
        return resnext(depth, cardinality, vd, num_classes=num_classes, in_chans=in_chans, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"ResNeXt-{depth} {cardinality}x4d" + (
        " vd (deep stem, average-pool projection shortcuts)." if vd else " (7x7 stem)."
    )
    register_model(builder)


for _vd in (False, True):
    for _depth in DEPTHS:
        for _card in sorted(CARDINALITIES):
            _register(_depth, _card, _vd)


def resnext101_wsl(group_width: int, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNeXt-101 with 32 groups of ``group_width`` channels in stage 1 (the WSL networks)."""
    if group_width not in WSL_WIDTHS:
        raise ValueError(f"ResNeXt-101 WSL group width must be one of {list(WSL_WIDTHS)}, got {group_width!r}")
    return ResNet(
        RESNET_CONFIGS[101][1],
        block="bottleneck",
        widths=[32 * group_width * 2**s for s in range(4)],
        out_widths=(256, 512, 1024, 2048),
        groups=32,
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )


def _register_wsl(group_width: int) -> None:
    name = f"resnext101_32x{group_width}d_wsl"

    def builder(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
        return resnext101_wsl(group_width, num_classes=num_classes, in_chans=in_chans, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"ResNeXt-101 32x{group_width}d WSL (7x7 stem, strided 1x1 projections)."
    register_model(builder)


for _width in WSL_WIDTHS:
    _register_wsl(_width)
