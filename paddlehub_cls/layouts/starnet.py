"""StarNet name map: PaddleClas 2.6.0 ``model_zoo/starnet.py`` -> ours.

Our module tree (:mod:`paddlehub_cls.models.starnet`) mirrors PaddleClas's, so every
key keeps its name except the classifier (PaddleClas ``head``, ours ``fc``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "starnet"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ours, with ``fc.*`` read from ``head.*``."""
    return {k: "head." + k[3:] if k.startswith("fc.") else k for k in model.state_dict()}
