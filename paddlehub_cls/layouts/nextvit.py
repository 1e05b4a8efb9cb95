"""Next-ViT name map: PaddleClas 2.6.0 ``model_zoo/nextvit.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.nextvit`. Our blocks mirror PaddleClas's
(``features.<i>.*`` and ``norm.*`` keep their names); the stem's conv-BN is
``stem.<i>.{conv,bn}`` (PaddleClas ``stem.<i>.{conv,norm}``) and the classifier is
``fc`` (PaddleClas ``proj_head.0``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "nextvit"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``stem.<i>.norm.*``, ``features.<i>.*``, ``norm.*``, ``proj_head.0.*``."""
    out: Dict[str, Source] = {}
    for key in model.state_dict():
        if key.startswith("stem.") and ".bn." in key:
            out[key] = key.replace(".bn.", ".norm.")
        elif key.startswith("fc."):
            out[key] = "proj_head.0." + key[len("fc.") :]
        else:
            out[key] = key
    return out
