"""MobileNetV1 name maps: 2019 fluid, PaddleClas legendary, paddle.vision -> ours.

Our keys: ``stem.{conv,bn}.*``, ``blocks.<i>.dw.{conv,bn}.*``, ``blocks.<i>.pw.{conv,bn}.*``, ``fc.*``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, fluid_convbn, register_layout

FAMILY = "mobilenet_v1"

# 2019 fluid and paddle.vision name the thirteen blocks after the original stage numbering.
BLOCK_NAMES = (
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv4_1",
    "conv4_2",
    "conv5_1",
    "conv5_2",
    "conv5_3",
    "conv5_4",
    "conv5_5",
    "conv5_6",
    "conv6",
)



@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """models@c1c5ed6 ``models_name/mobilenet.py``: ``conv1_*``, ``conv2_1_dw_*``, ``conv2_1_sep_*``, fc7."""
    out = fluid_convbn("stem", "conv1")
    for i, name in enumerate(BLOCK_NAMES):
        out.update(fluid_convbn(f"blocks.{i}.dw", f"{name}_dw"))
        out.update(fluid_convbn(f"blocks.{i}.pw", f"{name}_sep"))
    out["fc.weight"] = "fc7_weights"
    out["fc.bias"] = "fc7_offset"
    return out


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``legendary_models/mobilenet_v1.py``: ``conv.*``, ``blocks.<i>.depthwise_conv.*``."""
    out = dygraph_convbn("stem", "conv.conv", "conv.bn")
    for i in range(len(BLOCK_NAMES)):
        for ours, theirs in (("dw", "depthwise_conv"), ("pw", "pointwise_conv")):
            prefix = f"blocks.{i}.{theirs}"
            out.update(dygraph_convbn(f"blocks.{i}.{ours}", f"{prefix}.conv", f"{prefix}.bn"))
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, Source]:
    """paddle.vision ``mobilenetv1.py``: ``conv1.0/1``, ``conv2_1._depthwise_conv.0/1``, ``fc``."""
    out = dygraph_convbn("stem", "conv1.0", "conv1.1")
    for i, name in enumerate(BLOCK_NAMES):
        for ours, theirs in (("dw", "_depthwise_conv"), ("pw", "_pointwise_conv")):
            out.update(dygraph_convbn(f"blocks.{i}.{ours}", f"{name}.{theirs}.0", f"{name}.{theirs}.1"))
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
