"""TNT name map: PaddleClas 2.6.0 ``model_zoo/tnt.py`` -> ours.

Our network (:mod:`paddlehub_cls.models.tnt`) keeps PaddleClas's structure and names
(``pixel_embed.proj.*``, ``{cls_token,patch_pos,pixel_pos}``, ``blocks.<i>.*``, ``norm.*``,
``head.*``), so every key maps to itself.
"""

from __future__ import annotations

from paddlehub_cls.layouts import register_layout, same_names

FAMILY = "tnt"

#: PaddleClas names, which equal ours.
paddleclas_model_zoo = register_layout(FAMILY, "paddleclas_model_zoo")(same_names)
