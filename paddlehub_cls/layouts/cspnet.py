"""CSPDarkNet-53 name map: PaddleClas 2.6.0 ``model_zoo/cspnet.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.cspnet`) are PaddleClas's own, name for name: its
``ConvBnAct`` keeps ``conv`` and ``bn`` as our ``ConvBNAct`` does, and our stages, blocks
and transitions carry its attribute names. The map is the identity, still applied strictly.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout, same_names

FAMILY = "cspnet"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``stem.conv1``, ``stages.<s>.{conv_down,conv_exp,blocks.<b>,...}``, ``fc``."""
    return same_names(model)
