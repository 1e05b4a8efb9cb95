"""DarkNet-53 name map: PaddleClas 2.6.0 ``model_zoo/darknet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.darknet`. PaddleClas keeps every layer as a flat
attribute: the stem ``_conv1``, ``_conv2``; the blocks ``_basic_block_<s><b+1>`` (``_conv1``,
``_conv2``); the stride-2 conv after stage ``s``, ``_downsample_<s>``, which starts our stage
``s + 1``; the classifier ``_out``. Each conv-BN is ``_conv`` and ``_bn``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "darknet"


def _convbn(ours: str, theirs: str) -> Dict[str, Source]:
    return dygraph_convbn(ours, f"{theirs}._conv", f"{theirs}._bn")


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_conv1``, ``_conv2``, ``_basic_block_<s><b>``, ``_downsample_<s>``, ``_out``."""
    out: Dict[str, Source] = {**_convbn("stem.0", "_conv1"), **_convbn("stem.1", "_conv2")}
    for s, stage in enumerate(model.stages):
        if stage.downsample is not None:
            out.update(_convbn(f"stages.{s}.downsample", f"_downsample_{s - 1}"))
        for b in range(len(stage.blocks)):
            for conv in ("conv1", "conv2"):
                out.update(_convbn(f"stages.{s}.blocks.{b}.{conv}", f"_basic_block_{s}{b + 1}._{conv}"))
    out["fc.weight"], out["fc.bias"] = "_out.weight", "_out.bias"
    return out
