"""SE-ResNeXt name maps: 2019 fluid and PaddleClas model_zoo -> ours.

Our keys (:mod:`paddlehub_cls.models.se_resnext`): ``stem.{conv,bn}.*``,
``stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*``,
``stages.<s>.<b>.se.{squeeze,excite}.{weight,bias}``, ``fc.{weight,bias}``.

Both sources name a block ``"<n>_<i>"`` with ``n`` = stage + 2 and ``i`` counted
from 1 (models@c1c5ed6 ``models_name/se_resnext.py``: ``name=str(n) + '_' + str(i + 1)``);
PaddleClas keeps those names as ``ParamAttr`` names but its state_dict is keyed
by structure (``bb_<s>_<b>``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, fluid_convbn, register_layout
from paddlehub_cls.layouts.resnet import block_convs, iter_blocks

FAMILY = "se_resnext"

_FLUID_CONV = {"conv1": "x1", "conv2": "x2", "conv3": "x3", "shortcut": "prj"}
_ZOO_CONV = {"conv1": "conv0", "conv2": "conv1", "conv3": "conv2", "shortcut": "short"}


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """2019 fluid names: ``conv1_weights``, ``conv1_bn_*``, ``conv2_1_x1_weights``, ``conv2_1_prj_*``,
    ``fc2_1_sqz_{weights,offset}``, ``fc2_1_exc_*``, ``fc6_{weights,offset}``.

    A conv's BN is ``<conv name>_bn_{scale,offset,mean,variance}``.
    """
    out = fluid_convbn("stem", "conv1", "conv1_bn")
    for s, b, _, block in iter_blocks(model):
        name = f"{s + 2}_{b + 1}"
        for conv in block_convs(block):
            fluid = f"conv{name}_{_FLUID_CONV[conv]}"
            out.update(fluid_convbn(f"stages.{s}.{b}.{conv}", fluid, f"{fluid}_bn"))
        for ours, theirs in (("squeeze", "sqz"), ("excite", "exc")):
            out[f"stages.{s}.{b}.se.{ours}.weight"] = f"fc{name}_{theirs}_weights"
            out[f"stages.{s}.{b}.se.{ours}.bias"] = f"fc{name}_{theirs}_offset"
    out["fc.weight"] = "fc6_weights"
    out["fc.bias"] = "fc6_offset"
    return out


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/se_resnext.py``: ``conv._conv`` / ``conv._batch_norm``,
    ``bb_<s>_<b>.{conv0,conv1,conv2,short}``, ``bb_<s>_<b>.scale.{squeeze,excitation}``, ``out``.
    """
    out = dygraph_convbn("stem", "conv._conv", "conv._batch_norm")
    for s, b, _, block in iter_blocks(model):
        prefix = f"bb_{s}_{b}"
        for conv in block_convs(block):
            theirs = f"{prefix}.{_ZOO_CONV[conv]}"
            out.update(dygraph_convbn(f"stages.{s}.{b}.{conv}", f"{theirs}._conv", f"{theirs}._batch_norm"))
        for ours, theirs in (("squeeze", "squeeze"), ("excite", "excitation")):
            for p in ("weight", "bias"):
                out[f"stages.{s}.{b}.se.{ours}.{p}"] = f"{prefix}.scale.{theirs}.{p}"
    out["fc.weight"] = "out.weight"
    out["fc.bias"] = "out.bias"
    return out
