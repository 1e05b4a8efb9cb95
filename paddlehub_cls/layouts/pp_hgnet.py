"""PP-HGNet name map: PaddleClas 2.6.0 ``legendary_models/pp_hgnet.py`` -> ours.

Our network mirrors PaddleClas's attribute structure (``stem.<i>``, ``stages.<s>.downsample``,
``stages.<s>.blocks.<b>.{layers.<i>,aggregation_conv,att.conv}``, ``last_conv``, ``fc``), so
every key maps to the same name; the map is still strict (every key, no extra).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout, same_names

FAMILY = "pp_hgnet"


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas keys equal ours, e.g. ``stages.2.blocks.1.layers.4.bn._variance``, ``att.conv.bias``."""
    return same_names(model)
