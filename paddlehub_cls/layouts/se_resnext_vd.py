"""SE-ResNeXt-vd and SENet-154-vd name map: PaddleClas 2.6.0 ``model_zoo/se_resnext_vd.py`` -> ours.

The ``model_zoo`` names of SE-ResNeXt (:func:`paddlehub_cls.layouts.se_resnext.paddleclas_model_zoo`)
with the deep stem ``conv1_1``..``conv1_3``; the vd shortcut's average pool has no parameters.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.se_resnext import paddleclas_model_zoo as se_model_zoo

FAMILY = "se_resnext_vd"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/se_resnext_vd.py``: ``conv1_{1,2,3}``, ``bb_<s>_<b>.*`` with ``scale``, ``out``."""
    return se_model_zoo(model)
