"""Inception v4 name map: PaddleClas 2.6.0 ``model_zoo/inception_v4.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.inception_v4`. PaddleClas names each block as an
attribute (``_inceptionA_1`` .. ``_inceptionA_4``, ``_reductionA``, ``_inceptionB_1`` ..
``_inceptionB_7``, ``_reductionB``, ``_inceptionC_1`` .. ``_inceptionC_3``) under the
network, the stem ``_inception_stem``, every conv ``_<name>`` holding ``_conv`` and
``_batch_norm``, and the classifier ``out``. Our convs have the same names without the
underscore; our blocks are one sequence.
"""

from __future__ import annotations

from typing import Dict, List

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout
from paddlehub_cls.models.layers import ConvBNAct

FAMILY = "inception_v4"
# PaddleClas's attribute of each of our blocks, in order.
BLOCK_NAMES: List[str] = (
    [f"_inceptionA_{i}" for i in range(1, 5)]
    + ["_reductionA"]
    + [f"_inceptionB_{i}" for i in range(1, 8)]
    + ["_reductionB"]
    + [f"_inceptionC_{i}" for i in range(1, 4)]
)


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_inception_stem._<conv>``, ``_inceptionB_3._<conv>``, ... ``{_conv,_batch_norm}.*``, ``out.*``."""
    out: Dict[str, Source] = {"fc.weight": "out.weight", "fc.bias": "out.bias"}
    for name, layer in model.named_sublayers():
        if isinstance(layer, ConvBNAct):
            parts = name.split(".")
            owner = "_inception_stem" if parts[0] == "stem" else BLOCK_NAMES[int(parts[1])]
            theirs = f"{owner}._{parts[-1]}"
            out.update(dygraph_convbn(name, f"{theirs}._conv", f"{theirs}._batch_norm"))
    return out
