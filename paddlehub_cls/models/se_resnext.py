"""SE-ResNeXt50_32x4d and SE-ResNeXt101_32x4d (Xie et al., 2016; Hu et al., 2017).

A ResNet (same 7x7 stem, max-pool and stage layout, see :mod:`paddlehub_cls.models.resnet`)
whose bottlenecks have a 32-group 3x3 conv carrying the stride, widths
128/256/512/1024 with stage outputs of twice that, and squeeze-excitation with
ratio 16 before the residual sum. This is the graph of the 2019 fluid
``models_name/se_resnext.py`` and of PaddleClas ``model_zoo/se_resnext.py``; both
project the shortcut only in the first block of a stage.

The 2019 graph applies dropout (p = 0.5, ``downscale_in_infer``: multiply by 0.5 at
inference) to the pooled features before the classifier; PaddleClas applies none.
``dropout`` / ``dropout_mode`` select the one the weights were evaluated with.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.resnet import ResNet

# depth -> blocks per stage
SE_RESNEXT_CONFIGS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
}

_CARDINALITY = 32
_WIDTHS = (128, 256, 512, 1024)
_EXPANSION = 2
_SE_REDUCTION = 16


class SEResNeXt(ResNet):
    """SE-ResNeXt 32x4d of a given depth.

    Args:
        depth: 50 or 101.
        num_classes: classifier outputs; 0 returns pooled features.
        in_chans: input channels.
        dropout: dropout probability before the classifier (0.5 in the 2019 graph).
        dropout_mode: ``"downscale_in_infer"`` (2019 graph) or ``"upscale_in_train"``.
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
        dropout_mode: str = "upscale_in_train",
    ) -> None:
        if depth not in SE_RESNEXT_CONFIGS:
            raise ValueError(f"SE-ResNeXt depth must be one of {sorted(SE_RESNEXT_CONFIGS)}, got {depth!r}")
        super().__init__(
            SE_RESNEXT_CONFIGS[depth],
            block="bottleneck",
            widths=_WIDTHS,
            expansion=_EXPANSION,
            groups=_CARDINALITY,
            se_reduction=_SE_REDUCTION,
            num_classes=num_classes,
            in_chans=in_chans,
            dropout=dropout,
            dropout_mode=dropout_mode,
        )


@register_model
def se_resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SEResNeXt:
    """SE-ResNeXt-50 32x4d. The 2019 weights need ``dropout=0.5, dropout_mode="downscale_in_infer"``."""
    return SEResNeXt(50, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def se_resnext101_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SEResNeXt:
    """SE-ResNeXt-101 32x4d. The 2019 weights need ``dropout=0.5, dropout_mode="downscale_in_infer"``."""
    return SEResNeXt(101, num_classes=num_classes, in_chans=in_chans, **kwargs)
