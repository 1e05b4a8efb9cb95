"""SE-ResNet-vd name map: PaddleClas 2.6.0 ``model_zoo/se_resnet_vd.py`` -> ours.

The ``model_zoo`` names of SE-ResNeXt (:func:`paddlehub_cls.layouts.se_resnext.paddleclas_model_zoo`):
the deep stem ``conv1_1``..``conv1_3``, ``bb_<s>_<b>.{conv0,conv1[,conv2],short}`` (a basic block's
two convs are ``conv0`` and ``conv1``), ``bb_<s>_<b>.scale.{squeeze,excitation}``, ``out``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.se_resnext import paddleclas_model_zoo as se_model_zoo

FAMILY = "se_resnet_vd"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/se_resnet_vd.py``: ``conv1_{1,2,3}``, ``bb_<s>_<b>.*``, ``out``."""
    return se_model_zoo(model)
