"""MobileViTV2 name map: PaddleClas 2.6.0 ``model_zoo/mobilevit_v2.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.mobilevit_v2`. PaddleClas: ``conv_1`` (stem),
``layer_<s+1>.<i>`` (our ``stages.<s>.<i>``: inverted residuals ``block.{exp_1x1,conv_3x3,red_1x1}``,
MobileViTV2 blocks as in :data:`paddlehub_cls.layouts._mobilevit.LINEAR_MIX`) and
``classifier.fc`` (ours ``fc``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts._mobilevit import convbn, layer_stages, linear

FAMILY = "mobilevit_v2"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv_1``, ``layer_1..5``, ``classifier.fc``."""
    out = convbn("stem", "conv_1")
    out.update(layer_stages(model))
    out.update(linear("fc", "classifier.fc"))
    return out
