"""DPN name map: PaddleClas 2.6.0 ``model_zoo/dpn.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.dpn`. PaddleClas adds its blocks with ``add_sublayer``
as ``dpn1`` .. ``dpn<N>`` in forward order (its numbering skips no number: each stage's
first block takes the next one), each with pre-activated convs ``c1x1_w_func`` (the
projection), ``c1x1_a_func``, ``c3x3_b_func`` and ``c1x1_c_func`` holding ``_batch_norm``
and ``_conv``; the stem is ``conv1_x_1_func`` (``_conv``, ``_batch_norm``), the final batch
norm ``conv5_x_x_bn`` and the classifier ``out``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import OUR_BN, Source, dygraph_convbn, register_layout

FAMILY = "dpn"
_CONVS = {"proj": "c1x1_w_func", "conv_a": "c1x1_a_func", "conv_b": "c3x3_b_func", "conv_c": "c1x1_c_func"}


def _bn(ours: str, theirs: str) -> Dict[str, Source]:
    return {f"{ours}.{p}": f"{theirs}.{p}" for p in OUR_BN}


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv1_x_1_func.*``, ``dpn<n>.<conv>_func.{_batch_norm,_conv}.*``, ``conv5_x_x_bn.*``, ``out.*``."""
    out = dygraph_convbn("stem", "conv1_x_1_func._conv", "conv1_x_1_func._batch_norm")
    for i, block in enumerate(model.blocks):
        for ours, theirs in _CONVS.items():
            if getattr(block, ours) is not None:
                prefix = f"dpn{i + 1}.{theirs}"
                out[f"blocks.{i}.{ours}.conv.weight"] = f"{prefix}._conv.weight"
                out.update(_bn(f"blocks.{i}.{ours}.bn", f"{prefix}._batch_norm"))
    out.update(_bn("head_norm.0", "conv5_x_x_bn"))
    out["fc.weight"] = "out.weight"
    out["fc.bias"] = "out.bias"
    return out
