"""AlexNet name map: PaddleClas 2.6.0 ``model_zoo/alexnet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.alexnet`. PaddleClas names its convs ``_conv1`` ..
``_conv5`` (the first, second and fifth inside a ``ConvPoolLayer`` as ``_conv``) and its fully
connected layers ``_fc6``, ``_fc7``, ``_fc8``; paddle.vision's ``alexnet`` has the same names.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "alexnet"

# our conv -> PaddleClas's, in order
_CONVS = {
    "stages.0.convs.0": "_conv1._conv",
    "stages.1.convs.0": "_conv2._conv",
    "stages.2.convs.0": "_conv3",
    "stages.2.convs.1": "_conv4",
    "stages.2.convs.2": "_conv5._conv",
}


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_conv1._conv`` .. ``_conv5._conv``, ``_fc6``, ``_fc7``, ``_fc8``."""
    out: Dict[str, Source] = {}
    pairs = {**_CONVS, "fc1": "_fc6", "fc2": "_fc7", "fc": "_fc8"}
    for ours, theirs in pairs.items():
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = f"{theirs}.{p}"
    return out
