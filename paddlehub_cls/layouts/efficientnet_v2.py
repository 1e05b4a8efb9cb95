"""EfficientNetV2 name map: PaddleClas 2.6.0 ``model_zoo/efficientnet_v2.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.efficientnet_v2`. PaddleClas wraps every conv in a
``Conv2ds`` (``<name>._conv.weight``) and numbers a block's batch norms in order:
MBConv ``_norm0`` (expand), ``_norm1`` (depthwise), ``_norm2`` (project); fused MBConv
``_norm0`` (expand) and ``_norm1`` (project). Stem ``_stem._conv_stem`` / ``_stem._norm``,
head ``_head._conv_head`` (a plain conv) / ``_head._norm``, classifier ``_fc``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "efficientnet_v2"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """``_stem.*``, ``_blocks.<i>.*``, ``_head.*``, ``_fc.*``."""
    out = dygraph_convbn("stem", "_stem._conv_stem._conv", "_stem._norm")
    for i, block in enumerate(model.blocks):
        theirs = f"_blocks.{i}"
        if not hasattr(block, "dw"):  # fused MBConv
            convs = [("expand", "_expand_conv", "_norm0")] if block.expand is not None else []
            convs.append(("project", "_project_conv", "_norm1"))
        else:
            convs = [("dw", "_depthwise_conv", "_norm1"), ("project", "_project_conv", "_norm2")]
            if block.expand is not None:
                convs.append(("expand", "_expand_conv", "_norm0"))
            if block.se is not None:
                for ours, conv in (("reduce", "_se_reduce"), ("expand", "_se_expand")):
                    for p in ("weight", "bias"):
                        out[f"blocks.{i}.se.{ours}.{p}"] = f"{theirs}._se.{conv}._conv.{p}"
        for ours, conv, norm in convs:
            out.update(dygraph_convbn(f"blocks.{i}.{ours}", f"{theirs}.{conv}._conv", f"{theirs}.{norm}"))
    out.update(dygraph_convbn("head", "_head._conv_head", "_head._norm"))
    out["fc.weight"] = "_fc.weight"
    out["fc.bias"] = "_fc.bias"
    return out
