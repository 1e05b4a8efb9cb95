"""PP-HGNetV2 name map: PaddleClas 2.6.0 ``legendary_models/pp_hgnet_v2.py`` -> ours.

Our network mirrors PaddleClas's attribute structure (``stem.stem1``...``stem4``,
``stages.<s>.downsample``, ``stages.<s>.blocks.<b>.layers.<i>[.conv1|.conv2]``,
``aggregation_{squeeze,excitation}_conv``, ``lab.{scale,bias}`` after each activation of
B0-B3, ``last_conv``, ``fc``), so every key maps to the same name; the map is still strict.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout, same_names

FAMILY = "pp_hgnet_v2"


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas keys equal ours, e.g. ``stem.stem2a.lab.scale``, ``stages.3.blocks.0.layers.2.conv2.bn.weight``."""
    return same_names(model)
