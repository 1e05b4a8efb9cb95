"""ResNeXt-101 WSL name map: PaddleClas 2.6.0 ``model_zoo/resnext101_wsl.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.resnext`, a :class:`~paddlehub_cls.models.resnet.ResNet`):
``stem.{conv,bn}.*``, ``stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*``, ``fc.{weight,bias}``.

PaddleClas writes every block as its own attribute, ``_conv<s + 1>_<b>``, with ``_conv0``,
``_conv1``, ``_conv2`` and a ``_short`` wrapper whose projection is ``_short._conv``; a
conv-BN is ``<name>._conv`` / ``<name>._bn``. The stem is ``_conv_stem``, the classifier ``_out``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout
from paddlehub_cls.layouts.resnet import block_convs, iter_blocks

FAMILY = "resnext101_wsl"

_WSL_CONV = {"conv1": "_conv0", "conv2": "_conv1", "conv3": "_conv2", "shortcut": "_short._conv"}


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/resnext101_wsl.py``: ``_conv_stem``, ``_conv<s+1>_<b>.*``, ``_out``."""
    out = dygraph_convbn("stem", "_conv_stem._conv", "_conv_stem._bn")
    for s, b, _, block in iter_blocks(model):
        for conv in block_convs(block):
            theirs = f"_conv{s + 1}_{b}.{_WSL_CONV[conv]}"
            out.update(dygraph_convbn(f"stages.{s}.{b}.{conv}", f"{theirs}._conv", f"{theirs}._bn"))
    out["fc.weight"] = "_out.weight"
    out["fc.bias"] = "_out.bias"
    return out
