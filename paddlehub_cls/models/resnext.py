"""ResNeXt 32x4d / 64x4d of depth 50, 101 and 152, and their vd variants (Xie et al., 2016).

A ResNet (:mod:`paddlehub_cls.models.resnet`) whose bottleneck 3x3 conv is grouped
(the cardinality) and carries the stride. PaddleClas 2.6.0 ``model_zoo/resnext.py`` and
``model_zoo/resnext_vd.py`` set the widths by cardinality: 32 groups use 3x3 widths
128/256/512/1024 and stage outputs twice that; 64 groups use widths 256/512/1024/2048
and stage outputs equal to the width. Both project the shortcut only in the first block
of a stage and apply no dropout. The vd variants take the deep 3x3 stem and the
average-pool projection shortcut of ResNet-vd.
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
