"""ResNet-vc name map: PaddleClas 2.6.0 ``model_zoo/resnet_vc.py`` -> ours.

The names of the ``model_zoo`` ResNet relatives (:func:`paddlehub_cls.layouts.resnext.model_zoo_resnet`):
the deep stem ``conv1_1``..``conv1_3``, ``bb_<s>_<b>.{conv0,conv1,conv2,short}``, ``out``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.resnext import model_zoo_resnet

FAMILY = "resnet_vc"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/resnet_vc.py``: ``conv1_{1,2,3}``, ``bb_<s>_<b>.*``, ``out``."""
    return model_zoo_resnet(model)
