"""Xception_deeplab name map: PaddleClas 2.6.0 ``model_zoo/xception_deeplab.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.xception_deeplab`. PaddleClas registers its entry and
middle blocks with ``add_sublayer`` under TensorFlow-style scope names that contain slashes
(``xception_65/entry_flow/block1``, ``xception_65/middle_flow/block16``); the exit blocks are
``_exit_flow_1`` and ``_exit_flow_2``, the stem ``_conv1`` and ``_conv2``, the classifier
``_fc``. A block's separable convs are ``_conv1`` .. ``_conv3``, each holding the depthwise
``_conv1`` / ``_bn1`` and the pointwise ``_conv2`` / ``_bn2``; a conv-BN (stem, shortcut
``_short``) holds ``_conv`` and ``_bn``.
"""

from __future__ import annotations

from typing import Dict, List

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout
from paddlehub_cls.models.xception_deeplab import ENTRY_WIDTHS, MIDDLE_DEPTHS

FAMILY = "xception_deeplab"


def _block_prefixes(model) -> List[str]:
    """PaddleClas's name of each of our blocks, in order."""
    scope = f"xception_{model.depth}"
    names = [f"{scope}/entry_flow/block{i + 1}" for i in range(len(ENTRY_WIDTHS))]
    names += [f"{scope}/middle_flow/block{i + 1}" for i in range(MIDDLE_DEPTHS[model.depth])]
    return names + ["_exit_flow_1", "_exit_flow_2"]


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_conv{1,2}``, ``xception_<depth>/{entry,middle}_flow/block<n>.*``, ``_exit_flow_{1,2}.*``, ``_fc.*``."""
    out = dygraph_convbn("stem.0", "_conv1._conv", "_conv1._bn")
    out.update(dygraph_convbn("stem.1", "_conv2._conv", "_conv2._bn"))
    for b, prefix in enumerate(_block_prefixes(model)):
        block = model.blocks[b]
        for j in range(len(block.convs)):
            ours, theirs = f"blocks.{b}.convs.{j}", f"{prefix}._conv{j + 1}"
            out.update(dygraph_convbn(f"{ours}.dw", f"{theirs}._conv1", f"{theirs}._bn1"))
            out.update(dygraph_convbn(f"{ours}.pw", f"{theirs}._conv2", f"{theirs}._bn2"))
        if block.shortcut is not None:
            out.update(
                dygraph_convbn(f"blocks.{b}.shortcut", f"{prefix}._short._conv", f"{prefix}._short._bn")
            )
    out["fc.weight"] = "_fc.weight"
    out["fc.bias"] = "_fc.bias"
    return out
