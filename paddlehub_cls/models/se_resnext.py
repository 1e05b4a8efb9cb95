"""SE-ResNeXt50_32x4d, SE-ResNeXt101_32x4d and SE-ResNeXt152_64x4d (Xie et al., 2016; Hu et al., 2017).

A ResNet (same 7x7 stem, max-pool and stage layout, see :mod:`paddlehub_cls.models.resnet`)
whose bottlenecks have a 32-group 3x3 conv carrying the stride, widths
128/256/512/1024 with stage outputs of twice that, and squeeze-excitation with
ratio 16 before the residual sum. This is the graph of the 2019 fluid
``models_name/se_resnext.py`` and of PaddleClas ``model_zoo/se_resnext.py``; both
project the shortcut only in the first block of a stage.

At depth 152 (only ``SE_ResNeXt152_64x4d`` is published) PaddleClas replaces the 7x7 stem
by three 3x3 conv-BN-ReLU layers of 64, 64 and 128 channels (the first with stride 2) and
uses the 64-group widths of :mod:`paddlehub_cls.models.resnext`. PaddleClas 2.6.0 then builds
the first block for a 64-channel input although the stem gives 128, so its
``SE_ResNeXt152_64x4d()`` cannot run a forward pass; our first block takes the 128 channels
the stem gives, the only shape a trained file can have.

PaddleClas's ``model_zoo/se_resnext_vd.py`` (SE_ResNeXt50_vd_32x4d, SENet154_vd) adds the vd
average-pool projection shortcuts, with the same 64/64/128 deep stem at every depth.

The 2019 graph applies dropout (p = 0.5, ``downscale_in_infer``: multiply by 0.5 at
inference) to the pooled features before the classifier; PaddleClas applies none.
``dropout`` / ``dropout_mode`` select the one the weights were evaluated with.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.resnet import RESNET_CONFIGS, SE_REDUCTION, ResNet
from paddlehub_cls.models.resnext import CARDINALITIES, resnext

#: the deep stem of SE_ResNeXt152_64x4d and of every SE-ResNeXt-vd (64, 64, 128 channels)
SE_STEM = (64, 64, 128)
# depth -> (cardinality, stem): the published combinations
SE_RESNEXT_CONFIGS: Dict[int, Tuple[int, Optional[Tuple[int, int, int]]]] = {
    50: (32, None),
    101: (32, None),
    152: (64, SE_STEM),
}


class SEResNeXt(ResNet):
    """SE-ResNeXt of a given depth (32x4d at 50 and 101, 64x4d with a deep stem at 152).

    Args:
        depth: 50, 101 or 152.
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
        cardinality, stem_widths = SE_RESNEXT_CONFIGS[depth]
        widths, expansion = CARDINALITIES[cardinality]
        super().__init__(
            RESNET_CONFIGS[depth][1],
            block="bottleneck",
            widths=widths,
            expansion=expansion,
            groups=cardinality,
            se_reduction=SE_REDUCTION,
            stem_widths=stem_widths,
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


@register_model
def se_resnext152_64x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SEResNeXt:
    """SE-ResNeXt-152 64x4d with the 64/64/128 deep stem (PaddleClas ``SE_ResNeXt152_64x4d``)."""
    return SEResNeXt(152, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def se_resnext50_vd_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-50-vd 32x4d (PaddleClas ``model_zoo/se_resnext_vd.py``): 64/64/128 deep stem, average-pool projections."""
    kwargs = {"stem_widths": SE_STEM, "se_reduction": SE_REDUCTION, **kwargs}
    return resnext(50, 32, vd=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def senet154_vd(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """SENet-154-vd (PaddleClas ``SENet154_vd``): SE-ResNeXt-152 64x4d with the vd average-pool projections."""
    kwargs = {"stem_widths": SE_STEM, "se_reduction": SE_REDUCTION, **kwargs}
    return resnext(152, 64, vd=True, num_classes=num_classes, in_chans=in_chans, **kwargs)
