"""EfficientNet name map: PaddleClas 2.6.0 ``model_zoo/efficientnet.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.efficientnet`): ``stem.{conv,bn}``,
``blocks.<i>.{expand,dw,project}.{conv,bn}``, ``blocks.<i>.se.{reduce,expand}.{weight,bias}``,
``head.{conv,bn}``, ``fc``.

PaddleClas registers a group's first block as ``"_blocks.<i>."`` and its repeats as
``"block.<i>."`` (``add_sublayer`` names with a trailing dot, hence the double dot in the
keys), ``<i>`` counting blocks over the whole network. A conv-BN is ``<x>._conv._conv._conv``
(conv) and ``<x>._conv._bn`` (BN) with ``<x>`` = ``_ecn`` / ``_dcn`` / ``_pcn``; the SE convs
are ``_se._conv1._conv`` / ``_se._conv2._conv``. Its ``ParamAttr`` names (``_blocks.0._se_reduce_weights``)
do not appear in the state_dict.

PaddleClas's TinyNet (``model_zoo/tinynet.py``, family ``tinynet``) subclasses that
EfficientNet, so its files use the same names.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "efficientnet"

_CONVS = {"expand": "_ecn", "dw": "_dcn", "project": "_pcn"}


def _convbn(ours: str, theirs: str) -> Dict[str, Source]:
    return dygraph_convbn(ours, f"{theirs}._conv._conv._conv", f"{theirs}._conv._bn")


@register_layout("tinynet", "paddleclas_model_zoo")
@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """``_ef._conv_stem``, ``_ef._blocks.<i>..`` / ``_ef.block.<i>..``, ``_conv`` (head), ``_fc``."""
    out = _convbn("stem", "_ef._conv_stem")
    for i, block in enumerate(model.blocks):
        prefix = f"_ef._blocks.{i}.." if block.first_in_group else f"_ef.block.{i}.."
        for ours, theirs in _CONVS.items():
            if getattr(block, ours) is not None:
                out.update(_convbn(f"blocks.{i}.{ours}", f"{prefix}{theirs}"))
        if block.se is not None:
            for ours, theirs in (("reduce", "_conv1"), ("expand", "_conv2")):
                for p in ("weight", "bias"):
                    out[f"blocks.{i}.se.{ours}.{p}"] = f"{prefix}_se.{theirs}._conv.{p}"
    out.update(dygraph_convbn("head", "_conv._conv._conv", "_conv._bn"))
    out["fc.weight"] = "_fc.weight"
    out["fc.bias"] = "_fc.bias"
    return out
