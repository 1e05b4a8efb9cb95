"""MobileNetV2 name maps: 2019 fluid, PaddleClas model_zoo, paddle.vision -> ours.

Our keys: ``stem.*``, ``blocks.<i>.{expand,dw,project}.{conv,bn}.*`` (``expand`` absent in
the first unit when built with ``expand_first_block=False``), ``conv_head.*``, ``fc.*``.
The 2019 and PaddleClas names number units per group: group ``g`` = 2..8, unit ``k`` = 1..n.
"""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

from paddlehub_cls.layouts import Source, dygraph_convbn, fluid_convbn, register_layout

FAMILY = "mobilenet_v2"

# Units per group (the n of models/mobilenet_v2.py SETTINGS); kept here so that
# importing the layouts does not import paddle.
REPEATS = (1, 2, 3, 4, 3, 3, 1)
FIRST_GROUP = 2  # the 2019 graph calls the stem conv1_1 and the groups conv2 .. conv8

_PARTS = ("expand", "dw", "project")


def _units(model) -> Iterator[Tuple[int, int, int, bool]]:
    """(block index, group number, unit number, has expand conv) of every unit."""
    i = 0
    for g, n in enumerate(REPEATS, start=FIRST_GROUP):
        for k in range(1, n + 1):
            yield i, g, k, model.blocks[i].expand is not None
            i += 1


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """models@c1c5ed6 ``models_name/mobilenet_v2.py``: ``conv{g}_{k}_{expand,dwise,linear}``, conv9, fc10."""
    out = fluid_convbn("stem", "conv1_1")
    for i, g, k, has_expand in _units(model):
        for part, theirs in zip(_PARTS, ("expand", "dwise", "linear")):
            if part != "expand" or has_expand:
                out.update(fluid_convbn(f"blocks.{i}.{part}", f"conv{g}_{k}_{theirs}"))
    out.update(fluid_convbn("conv_head", "conv9"))
    out["fc.weight"] = "fc10_weights"
    out["fc.bias"] = "fc10_offset"
    return out


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/mobilenet_v2.py``: ``conv{g}._first_block``, ``conv{g}.conv{g}_{k}``."""
    out = dygraph_convbn("stem", "conv1._conv", "conv1._batch_norm")
    for i, g, k, has_expand in _units(model):
        unit = f"conv{g}._first_block" if k == 1 else f"conv{g}.conv{g}_{k}"
        for part, theirs in zip(_PARTS, ("_expand_conv", "_bottleneck_conv", "_linear_conv")):
            if part != "expand" or has_expand:
                layer = f"{unit}.{theirs}"
                out.update(dygraph_convbn(f"blocks.{i}.{part}", f"{layer}._conv", f"{layer}._batch_norm"))
    out.update(dygraph_convbn("conv_head", "conv9._conv", "conv9._batch_norm"))
    out["fc.weight"] = "out.weight"
    out["fc.bias"] = "out.bias"
    return out


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, Source]:
    """paddle.vision ``mobilenetv2.py``: ``features.<i>`` (0 stem, 1..17 units, 18 last conv), classifier."""
    out = dygraph_convbn("stem", "features.0.0", "features.0.1")
    for i, _, _, has_expand in _units(model):
        unit = f"features.{i + 1}.conv"
        # ConvNormActivation blocks are Sequential [conv, bn, act]; the projection is a bare conv then a BN.
        pos = 0
        if has_expand:
            out.update(dygraph_convbn(f"blocks.{i}.expand", f"{unit}.{pos}.0", f"{unit}.{pos}.1"))
            pos += 1
        out.update(dygraph_convbn(f"blocks.{i}.dw", f"{unit}.{pos}.0", f"{unit}.{pos}.1"))
        out.update(dygraph_convbn(f"blocks.{i}.project", f"{unit}.{pos + 1}", f"{unit}.{pos + 2}"))
    last = sum(REPEATS) + 1
    out.update(dygraph_convbn("conv_head", f"features.{last}.0", f"features.{last}.1"))
    out["fc.weight"] = "classifier.1.weight"
    out["fc.bias"] = "classifier.1.bias"
    return out
