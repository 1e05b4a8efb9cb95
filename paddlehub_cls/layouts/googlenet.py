"""GoogLeNet name maps: 2019 fluid names, PaddleClas model_zoo and paddle.vision structured names.

No convolution has a bias and there is no batch norm, so every conv maps one
weight. Name rules (ours -> source):

==========================  ==================================  ==================================
ours                        fluid2019                           paddleclas_model_zoo/paddle_vision
==========================  ==================================  ==================================
conv1                       conv1_weights                       _conv._conv.weight
conv2_reduce                conv2_1x1_weights                   _conv_1._conv.weight
conv2                       conv2_3x3_weights                   _conv_2._conv.weight
inception4a.branch1         inception_ince4a_1x1_weights        _ince4a._conv1._conv.weight
inception4a.branch2_reduce  inception_ince4a_3x3_reduce_weights _ince4a._conv3r._conv.weight
inception4a.branch2         inception_ince4a_3x3_weights        _ince4a._conv3._conv.weight
inception4a.branch3_reduce  inception_ince4a_5x5_reduce_weights _ince4a._conv5r._conv.weight
inception4a.branch3         inception_ince4a_5x5_weights        _ince4a._conv5._conv.weight
inception4a.branch4_proj    inception_ince4a_3x3_proj_weights   _ince4a._convprj._conv.weight
fc (weight, bias)           out_weights, out_offset             _fc_out.weight, _fc_out.bias
auxN.conv                   conv_oN_weights                     _conv_oN._conv.weight
auxN.fc1 (weight, bias)     fc_oN_weights, fc_oN_offset         _fc_oN.weight, _fc_oN.bias
auxN.fc2 (weight, bias)     outN_weights, outN_offset           _outN.weight, _outN.bias
==========================  ==================================  ==================================

PaddleClas's ``GoogLeNetDY`` and paddle.vision's ``GoogLeNet`` have the same
attribute names (paddle.vision's file derives from PaddleClas's), so one function
serves both layouts.
"""

from __future__ import annotations

from typing import Dict, List

from paddlehub_cls.layouts import register_layout

FAMILY = "googlenet"

# our branch name -> (fluid suffix, structured attribute)
_BRANCHES = {
    "branch1": ("1x1", "_conv1"),
    "branch2_reduce": ("3x3_reduce", "_conv3r"),
    "branch2": ("3x3", "_conv3"),
    "branch3_reduce": ("5x5_reduce", "_conv5r"),
    "branch3": ("5x5", "_conv5"),
    "branch4_proj": ("3x3_proj", "_convprj"),
}
_STEM = {
    "conv1": ("conv1", "_conv"),
    "conv2_reduce": ("conv2_1x1", "_conv_1"),
    "conv2": ("conv2_3x3", "_conv_2"),
}


def _blocks(model) -> List[str]:
    # read from the network so that this module does not import paddle
    return [name for name, _ in model.named_children() if name.startswith("inception")]


def _short(block: str) -> str:
    # "inception3a" -> "ince3a", the block name the Paddle sources use
    return "ince" + block[len("inception") :]


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, str]:
    """Ours -> the 2019 fluid variable names (``GoogLeNet_pretrained/``)."""
    m: Dict[str, str] = {}
    for ours, (fluid, _) in _STEM.items():
        m[f"{ours}.weight"] = f"{fluid}_weights"
    for block in _blocks(model):
        for ours, (suffix, _) in _BRANCHES.items():
            m[f"{block}.{ours}.weight"] = f"inception_{_short(block)}_{suffix}_weights"
    m["fc.weight"], m["fc.bias"] = "out_weights", "out_offset"
    for n in (1, 2):
        m[f"aux{n}.conv.weight"] = f"conv_o{n}_weights"
        for ours, fluid in (("fc1", f"fc_o{n}"), ("fc2", f"out{n}")):
            m[f"aux{n}.{ours}.weight"], m[f"aux{n}.{ours}.bias"] = f"{fluid}_weights", f"{fluid}_offset"
    return m


def _structured(model) -> Dict[str, str]:
    m: Dict[str, str] = {}
    for ours, (_, attr) in _STEM.items():
        m[f"{ours}.weight"] = f"{attr}._conv.weight"
    for block in _blocks(model):
        for ours, (_, attr) in _BRANCHES.items():
            m[f"{block}.{ours}.weight"] = f"_{_short(block)}.{attr}._conv.weight"
    for p in ("weight", "bias"):
        m[f"fc.{p}"] = f"_fc_out.{p}"
    for n in (1, 2):
        m[f"aux{n}.conv.weight"] = f"_conv_o{n}._conv.weight"
        for p in ("weight", "bias"):
            m[f"aux{n}.fc1.{p}"] = f"_fc_o{n}.{p}"
            m[f"aux{n}.fc2.{p}"] = f"_out{n}.{p}"
    return m


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, str]:
    """Ours -> PaddleClas 2.x ``model_zoo/googlenet.py`` (``GoogLeNetDY``) state_dict keys."""
    return _structured(model)


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, str]:
    """Ours -> ``paddle.vision.models.googlenet`` state_dict keys."""
    return _structured(model)
