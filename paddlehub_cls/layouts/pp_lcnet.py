"""PP-LCNet name map: PaddleClas 2.6.0 ``legendary_models/pp_lcnet.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.pp_lcnet`): ``stem.{conv,bn}.*``,
``stages.<s>.<b>.{dw,pw}.{conv,bn}.*``, ``stages.<s>.<b>.se.{reduce,expand}.*``,
``head.conv.weight``, ``fc.*``. PaddleClas names the stages ``blocks2`` .. ``blocks6``
and the stem ``conv1``; a block holds ``dw_conv``, ``se.{conv1,conv2}``, ``pw_conv``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.mobilenet_v3 import paddleclas_convbn, paddleclas_se

FAMILY = "pp_lcnet"
FIRST_STAGE = 2  # PaddleClas's blocks2 is our stages.0


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``PPLCNet_x*`` state_dict names."""
    out = paddleclas_convbn("stem", "conv1")
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            ours, theirs = f"stages.{s}.{b}", f"blocks{s + FIRST_STAGE}.{b}"
            out.update(paddleclas_convbn(f"{ours}.dw", f"{theirs}.dw_conv"))
            out.update(paddleclas_convbn(f"{ours}.pw", f"{theirs}.pw_conv"))
            if block.se is not None:
                out.update(paddleclas_se(f"{ours}.se", f"{theirs}.se"))
    out["head.conv.weight"] = "last_conv.weight"
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
