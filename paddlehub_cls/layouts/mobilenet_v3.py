"""MobileNetV3 name map: PaddleClas 2.6.0 ``legendary_models/mobilenet_v3.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.mobilenet_v3`): ``stem.{conv,bn}.*``,
``blocks.<i>.{expand,dw,project}.{conv,bn}.*``, ``blocks.<i>.se.{reduce,expand}.{weight,bias}``,
``conv_feature.{conv,bn}.*``, ``head.conv.weight``, ``fc.*``.
PaddleClas keys its state_dict by structure: ``conv``, ``blocks.<i>.{expand_conv,
bottleneck_conv,linear_conv}``, ``blocks.<i>.mid_se.{conv1,conv2}``, ``last_second_conv``,
``last_conv``, ``fc``; each ConvBNLayer holds ``conv`` and ``bn``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "mobilenet_v3"

_PARTS = {"expand": "expand_conv", "dw": "bottleneck_conv", "project": "linear_conv"}


def paddleclas_convbn(ours: str, theirs: str) -> Dict[str, Source]:
    """A PaddleClas legendary ``ConvBNLayer`` (``<theirs>.conv``, ``<theirs>.bn``) as our ConvBNAct."""
    return dygraph_convbn(ours, f"{theirs}.conv", f"{theirs}.bn")


def paddleclas_se(ours: str, theirs: str) -> Dict[str, Source]:
    """A PaddleClas ``SEModule`` (``conv1`` squeezes, ``conv2`` excites) as our ConvSqueezeExcite."""
    return {
        f"{ours}.{a}.{p}": f"{theirs}.{b}.{p}"
        for a, b in (("reduce", "conv1"), ("expand", "conv2"))
        for p in ("weight", "bias")
    }


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``MobileNetV3_{small,large}_x*`` state_dict names."""
    out = paddleclas_convbn("stem", "conv")
    for i, block in enumerate(model.blocks):
        for ours, theirs in _PARTS.items():
            out.update(paddleclas_convbn(f"blocks.{i}.{ours}", f"blocks.{i}.{theirs}"))
        if block.se is not None:
            out.update(paddleclas_se(f"blocks.{i}.se", f"blocks.{i}.mid_se"))
    out.update(paddleclas_convbn("conv_feature", "last_second_conv"))
    out["head.conv.weight"] = "last_conv.weight"
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
