"""FasterNet name map: PaddleClas 2.6.0 ``model_zoo/fasternet.py`` -> ours.

Our tree (:mod:`paddlehub_cls.models.fasternet`) mirrors PaddleClas's; the head differs:
PaddleClas keeps its 1x1 head conv as ``avgpool_pre_head.1`` (after the pooling layer in
one Sequential), ours is ``pre_head``; the classifier is ``head`` there, ``fc`` here.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "fasternet"
_RENAMED = {"pre_head.": "avgpool_pre_head.1.", "fc.": "head."}


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ours, with the head conv and classifier renamed."""
    out: Dict[str, Source] = {}
    for key in model.state_dict():
        for ours, theirs in _RENAMED.items():
            if key.startswith(ours):
                key_src = theirs + key[len(ours):]
                break
        else:
            key_src = key
        out[key] = key_src
    return out
