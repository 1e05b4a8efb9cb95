"""CvT name map: PaddleClas 2.6.0 ``model_zoo/cvt.py`` -> ours.

Our network (:mod:`paddlehub_cls.models.cvt`) keeps PaddleClas's structure and names
(``stage<i>.patch_embed.*``, ``stage2.cls_token``, ``stage<i>.blocks.<j>.*``, ``norm.*``,
``head.*``), so every key maps to itself.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout, same_names

FAMILY = "cvt"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names, which equal ours."""
    return same_names(model)
