"""ShuffleNetV2 name maps: 2019 fluid names, PaddleClas model_zoo and paddle.vision structured names.

The ReLU and swish models share every name. Units are named ``<stage>_<unit>``
with stage 2..4 and unit counted from 1 (ours: ``stages.<stage-2>.<unit-1>``).

Convolutions (each followed by a batch norm):

==================  ==========================  ========================  ==================
ours                fluid2019                   paddleclas_model_zoo      paddle_vision
==================  ==========================  ========================  ==================
stem                stage1_conv                 _conv1                    _conv1
S.U.branch1_dw      stage_<s>_<u>_conv4         <s>_<u>._conv_dw_1        <s>_<u>._conv_dw_1
S.U.branch1_pw      stage_<s>_<u>_conv5         <s>_<u>._conv_linear_1    <s>_<u>._conv_linear_1
S.U.branch2_pw1     stage_<s>_<u>_conv1         <s>_<u>._conv_pw_2 (*)    same as PaddleClas
S.U.branch2_dw      stage_<s>_<u>_conv2         <s>_<u>._conv_dw_2 (*)    same as PaddleClas
S.U.branch2_pw2     stage_<s>_<u>_conv3         <s>_<u>._conv_linear_2 (*)  same as PaddleClas
conv_last           conv5                       _last_conv                _last_conv
==================  ==========================  ========================  ==================

(*) in a downsampling (first) unit; the other units call them ``_conv_pw``,
``_conv_dw``, ``_conv_linear``.

Parameter suffixes:

=============  ===================  ==========================  ===============
ours           fluid2019            paddleclas_model_zoo        paddle_vision
=============  ===================  ==========================  ===============
conv.weight    <name>_weights       ._conv.weight               .0.weight
bn.weight      <name>_bn_scale      ._batch_norm.weight         .1.weight
bn.bias        <name>_bn_offset     ._batch_norm.bias           .1.bias
bn._mean       <name>_bn_mean       ._batch_norm._mean          .1._mean
bn._variance   <name>_bn_variance   ._batch_norm._variance      .1._variance
=============  ===================  ==========================  ===============

Classifier: ``fc.weight``/``fc.bias`` are ``fc6_weights``/``fc6_offset`` (fluid2019)
and ``_fc.weight``/``_fc.bias`` (both structured layouts).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from paddlehub_cls.errors import PaddleHubClsError
from paddlehub_cls.layouts import register_layout

FAMILY = "shufflenet_v2"

# ours -> fluid conv name suffix
_FLUID_CONV = {
    "branch1_dw": "conv4",
    "branch1_pw": "conv5",
    "branch2_pw1": "conv1",
    "branch2_dw": "conv2",
    "branch2_pw2": "conv3",
}
# ours -> structured attribute, (downsampling unit, other units)
_STRUCT_CONV = {
    "branch1_dw": ("_conv_dw_1", None),
    "branch1_pw": ("_conv_linear_1", None),
    "branch2_pw1": ("_conv_pw_2", "_conv_pw"),
    "branch2_dw": ("_conv_dw_2", "_conv_dw"),
    "branch2_pw2": ("_conv_linear_2", "_conv_linear"),
}
_FLUID_PARAM = {
    "conv.weight": "_weights",
    "bn.weight": "_bn_scale",
    "bn.bias": "_bn_offset",
    "bn._mean": "_bn_mean",
    "bn._variance": "_bn_variance",
}
_PADDLECLAS_PARAM = {
    "conv.weight": "._conv.weight",
    "bn.weight": "._batch_norm.weight",
    "bn.bias": "._batch_norm.bias",
    "bn._mean": "._batch_norm._mean",
    "bn._variance": "._batch_norm._variance",
}
_VISION_PARAM = {
    "conv.weight": ".0.weight",
    "bn.weight": ".1.weight",
    "bn.bias": ".1.bias",
    "bn._mean": ".1._mean",
    "bn._variance": ".1._variance",
}


def _split(key: str) -> Tuple[str, str]:
    """``stages.0.1.branch2_dw.bn._mean`` -> (``stages.0.1.branch2_dw``, ``bn._mean``)."""
    layer, _, param = key.rpartition(".")
    layer, _, sub = layer.rpartition(".")
    param = f"{sub}.{param}"
    if param not in _FLUID_PARAM:
        raise PaddleHubClsError(f"unexpected ShuffleNetV2 key {key!r}; this is a bug in paddlehub_cls")
    return layer, param


def _build(
    model, conv_name: Callable[[str], str], params: Dict[str, str], fc: Tuple[str, str]
) -> Dict[str, str]:
    m: Dict[str, str] = {}
    for key in model.state_dict():
        if key in ("fc.weight", "fc.bias"):
            m[key] = fc[0] if key == "fc.weight" else fc[1]
            continue
        layer, param = _split(key)
        m[key] = conv_name(layer) + params[param]
    return m


def _unit(layer: str) -> Tuple[int, int, str]:
    """``stages.1.0.branch1_dw`` -> (3, 1, ``branch1_dw``): the sources' stage and unit numbers."""
    _, stage, unit, branch = layer.split(".")
    return int(stage) + 2, int(unit) + 1, branch


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, str]:
    """Ours -> the 2019 fluid variable names (``ShuffleNetV2_pretrained/``)."""

    def conv_name(layer: str) -> str:
        if layer == "stem":
            return "stage1_conv"
        if layer == "conv_last":
            return "conv5"
        s, u, branch = _unit(layer)
        return f"stage_{s}_{u}_{_FLUID_CONV[branch]}"

    return _build(model, conv_name, _FLUID_PARAM, ("fc6_weights", "fc6_offset"))


def _structured_conv(layer: str) -> str:
    if layer == "stem":
        return "_conv1"
    if layer == "conv_last":
        return "_last_conv"
    s, u, branch = _unit(layer)
    downsampling, other = _STRUCT_CONV[branch]
    return f"{s}_{u}.{downsampling if u == 1 else other}"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, str]:
    """Ours -> PaddleClas 2.x ``model_zoo/shufflenet_v2.py`` (``ShuffleNet``) state_dict keys."""
    return _build(model, _structured_conv, _PADDLECLAS_PARAM, ("_fc.weight", "_fc.bias"))


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, str]:
    """Ours -> ``paddle.vision.models.shufflenet_v2_x1_0`` / ``shufflenet_v2_swish`` state_dict keys."""
    return _build(model, _structured_conv, _VISION_PARAM, ("_fc.weight", "_fc.bias"))
