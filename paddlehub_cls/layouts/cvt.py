"""CvT name map: PaddleClas 2.6.0 ``model_zoo/cvt.py`` -> ours.

Our network (:mod:`paddlehub_cls.models.cvt`) keeps PaddleClas's structure and names
(``stage<i>.patch_embed.*``, ``stage2.cls_token``, ``stage<i>.blocks.<j>.*``, ``norm.*``,
``head.*``), so every key maps to itself.
"""

from __future__ import annotations

from paddlehub_cls.layouts import register_layout, same_names

FAMILY = "cvt"

#: PaddleClas names, which equal ours.
paddleclas_model_zoo = register_layout(FAMILY, "paddleclas_model_zoo")(same_names)
