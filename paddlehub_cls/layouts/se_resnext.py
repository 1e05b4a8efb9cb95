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

from paddlehub_cls.layouts import Source, fluid_convbn, register_layout
from paddlehub_cls.layouts.resnet import block_convs, iter_blocks, require_plain_stem
from paddlehub_cls.layouts.resnext import model_zoo_resnet

FAMILY = "se_resnext"

_FLUID_CONV = {"conv1": "x1", "conv2": "x2", "conv3": "x3", "shortcut": "prj"}


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """2019 fluid names: ``conv1_weights``, ``conv1_bn_*``, ``conv2_1_x1_weights``, ``conv2_1_prj_*``,
    ``fc2_1_sqz_{weights,offset}``, ``fc2_1_exc_*``, ``fc6_{weights,offset}``.

    A conv's BN is ``<conv name>_bn_{scale,offset,mean,variance}``.
    """
    require_plain_stem(model, "fluid2019")
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
    """PaddleClas 2.6.0 ``model_zoo/se_resnext.py``: the ResNeXt names (``conv`` or, at depth 152,
    ``conv1_{1,2,3}``; ``bb_<s>_<b>.{conv0,conv1,conv2,short}``; ``out``) plus
    ``bb_<s>_<b>.scale.{squeeze,excitation}``.
    """
    out = model_zoo_resnet(model)
    for s, b, _, _block in iter_blocks(model):
        for ours, theirs in (("squeeze", "squeeze"), ("excite", "excitation")):
            for p in ("weight", "bias"):
                out[f"stages.{s}.{b}.se.{ours}.{p}"] = f"bb_{s}_{b}.scale.{theirs}.{p}"
    return out
