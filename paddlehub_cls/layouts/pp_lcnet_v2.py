"""PP-LCNetV2 name map: PaddleClas 2.6.0 ``legendary_models/pp_lcnet_v2.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.pp_lcnet_v2`): ``stem.0.{conv,bn}.*``, ``stem.1.*`` and
``stages.<s>.<b>.*`` blocks with ``dw.*`` or ``dw_branches.<j>.*`` + ``dw_fused.*``, ``se.*``,
``pw.*`` or ``pw1.*`` + ``pw2.*``; ``head.conv.weight``, ``fc.*``. PaddleClas's block names:
``dw_conv`` (a ConvBNLayer when plain, the biased conv when re-parameterisable),
``dw_conv_list.<j>``, ``se.{conv1,conv2}``, ``pw_conv``, ``pw_conv_1``, ``pw_conv_2``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.mobilenet_v3 import paddleclas_convbn, paddleclas_se

FAMILY = "pp_lcnet_v2"


def _block(ours: str, theirs: str, block) -> Dict[str, Source]:
    out: Dict[str, Source] = {}
    if block.dw_branches is None:
        out.update(paddleclas_convbn(f"{ours}.dw", f"{theirs}.dw_conv"))
    else:
        for j in range(len(block.dw_branches)):
            out.update(paddleclas_convbn(f"{ours}.dw_branches.{j}", f"{theirs}.dw_conv_list.{j}"))
        out[f"{ours}.dw_fused.weight"] = f"{theirs}.dw_conv.weight"
        out[f"{ours}.dw_fused.bias"] = f"{theirs}.dw_conv.bias"
    if block.se is not None:
        out.update(paddleclas_se(f"{ours}.se", f"{theirs}.se"))
    if block.pw is not None:
        out.update(paddleclas_convbn(f"{ours}.pw", f"{theirs}.pw_conv"))
    else:
        out.update(paddleclas_convbn(f"{ours}.pw1", f"{theirs}.pw_conv_1"))
        out.update(paddleclas_convbn(f"{ours}.pw2", f"{theirs}.pw_conv_2"))
    return out


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``PPLCNetV2_{small,base,large}`` state_dict names (the unfused training form)."""
    out = paddleclas_convbn("stem.0", "stem.0")
    out.update(_block("stem.1", "stem.1", model.stem[1]))
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            out.update(_block(f"stages.{s}.{b}", f"stages.{s}.{b}", block))
    out["head.conv.weight"] = "last_conv.weight"
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
