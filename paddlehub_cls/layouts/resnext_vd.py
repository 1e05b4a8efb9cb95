"""ResNeXt-vd name map: PaddleClas 2.6.0 ``model_zoo/resnext_vd.py`` -> ours.

The names of ``model_zoo/resnext.py`` (:mod:`paddlehub_cls.layouts.resnext`) with the deep
stem ``conv1_1``..``conv1_3``; the vd shortcut's average pool has no parameters.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.resnext import model_zoo_resnet

FAMILY = "resnext_vd"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/resnext_vd.py``: ``conv1_{1,2,3}``, ``bb_<s>_<b>.*``, ``out``."""
    return model_zoo_resnet(model)
