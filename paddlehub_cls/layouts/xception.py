"""Xception name map: PaddleClas 2.6.0 ``model_zoo/xception.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.xception`. PaddleClas nests the network in
``_entry_flow`` (stem ``_conv1``, ``_conv2``; blocks ``_conv_<i>`` with separable convs
``_conv1``, ``_conv2``), ``_middle_flow`` (blocks ``_conv_<i>`` with ``_conv_0`` ..
``_conv_2``) and ``_exit_flow`` (block ``_conv_0`` with ``_conv_1``, ``_conv_2``; then the
separable convs ``_conv_1``, ``_conv_2`` and the classifier ``_out``). A separable conv holds
``_pointwise_conv`` and ``_depthwise_conv``, each ``_conv`` + ``_batch_norm``; a shortcut is a
bare conv ``_short``.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "xception"


def _clas_convbn(ours: str, theirs: str) -> Dict[str, Source]:
    return dygraph_convbn(ours, f"{theirs}._conv", f"{theirs}._batch_norm")


def _separable(ours: str, theirs: str) -> Dict[str, Source]:
    out = _clas_convbn(f"{ours}.pw", f"{theirs}._pointwise_conv")
    out.update(_clas_convbn(f"{ours}.dw", f"{theirs}._depthwise_conv"))
    return out


def _block_names(model) -> List[Tuple[str, List[str]]]:
    """PaddleClas's prefix and separable-conv names of each of our blocks, in order."""
    names = [(f"_entry_flow._conv_{i}", ["_conv1", "_conv2"]) for i in range(model.entry_depth)]
    names += [
        (f"_middle_flow._conv_{i}", ["_conv_0", "_conv_1", "_conv_2"]) for i in range(model.middle_depth)
    ]
    names.append(("_exit_flow._conv_0", ["_conv_1", "_conv_2"]))
    return names


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_entry_flow.*``, ``_middle_flow.*``, ``_exit_flow.*`` (see the module docstring)."""
    out = _clas_convbn("stem.0", "_entry_flow._conv1")
    out.update(_clas_convbn("stem.1", "_entry_flow._conv2"))
    for b, (prefix, seps) in enumerate(_block_names(model)):
        block = model.blocks[b]
        for j, sep in enumerate(seps):
            out.update(_separable(f"blocks.{b}.convs.{j}", f"{prefix}.{sep}"))
        if block.shortcut is not None:
            out[f"blocks.{b}.shortcut.weight"] = f"{prefix}._short.weight"
    out.update(_separable("head_convs.0", "_exit_flow._conv_1"))
    out.update(_separable("head_convs.2", "_exit_flow._conv_2"))
    out["fc.weight"] = "_exit_flow._out.weight"
    out["fc.bias"] = "_exit_flow._out.bias"
    return out
