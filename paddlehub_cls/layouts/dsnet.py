"""DSNet name map: PaddleClas 2.6.0 ``model_zoo/dsnet.py`` -> ours.

Our network (:mod:`paddlehub_cls.models.dsnet`) keeps PaddleClas's structure and names
(``patch_embed<s>.proj.*``, ``blocks<s>.<i>.*``, ``norm.*``,
``head.*``), so every key maps to itself.
"""

from __future__ import annotations

from paddlehub_cls.layouts import register_layout, same_names

FAMILY = "dsnet"

#: PaddleClas names, which equal ours.
paddleclas_model_zoo = register_layout(FAMILY, "paddleclas_model_zoo")(same_names)
