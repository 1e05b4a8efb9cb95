"""SqueezeNet name map: PaddleClas 2.6.0 ``model_zoo/squeezenet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.squeezenet`. PaddleClas names the stem ``_conv``, the
eight fire modules ``_conv1`` .. ``_conv8`` in order (each ``_conv._conv`` = squeeze,
``_conv_path1._conv`` = 1x1 expand, ``_conv_path2._conv`` = 3x3 expand) and the classifier
conv ``_conv9``; paddle.vision's ``squeezenet1_0/1_1`` have the same names.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "squeezenet"

_FIRE_PARTS = {"squeeze": "_conv", "expand1x1": "_conv_path1", "expand3x3": "_conv_path2"}


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``_conv`` (stem), ``_conv<n>.{_conv,_conv_path1,_conv_path2}._conv``
    (fires), ``_conv9`` (classifier)."""
    pairs = {"stem": "_conv", "fc": "_conv9"}
    n = 0
    for s, stage in enumerate(model.stages):
        for j in range(len(stage.fires)):
            n += 1
            for ours, theirs in _FIRE_PARTS.items():
                pairs[f"stages.{s}.fires.{j}.{ours}"] = f"_conv{n}.{theirs}._conv"
    return {f"{o}.{p}": f"{t}.{p}" for o, t in pairs.items() for p in ("weight", "bias")}
