"""VGG name maps: 2019 fluid, PaddleClas legendary, paddle.vision -> ours.

Our keys: ``stages.<s>.convs.<j>.weight`` / ``.bias`` (bias only when built with
``conv_bias=True``), ``fc1.*``, ``fc2.*``, ``fc.*`` (the classifier).
"""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

from paddlehub_cls.layouts import OptionalSource, Source, register_layout

FAMILY = "vgg"

_FLUID_BIAS_REASON = (
    "the 2019 VGG code lost its conv biases on 2019-09-05 (models@d6c6511), so archives "
    "fetched since then may hold no convX_Y_offset; a zero bias is the graph they were trained with"
)


def _convs(model) -> Iterator[Tuple[int, int]]:
    """(stage index, conv index) of every 3x3 conv, in order."""
    for s, stage in enumerate(model.stages):
        for j in range(len(stage.convs)):
            yield s, j


def _classifier(model, names: Tuple[str, str, str], weight: str, bias: str) -> Dict[str, Source]:
    out: Dict[str, Source] = {}
    for ours, theirs in zip(("fc1", "fc2", "fc"), names):
        out[f"{ours}.weight"] = theirs + weight
        out[f"{ours}.bias"] = theirs + bias
    return out


def _with_bias(model) -> bool:
    return getattr(model, "conv_bias", True)


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """models@c1c5ed6 ``models_name/vgg.py``: ``conv{s}_{j}_weights`` / ``_offset``, fc6/fc7/fc8."""
    out: Dict[str, Source] = {}
    for s, j in _convs(model):
        name = f"conv{s + 1}_{j + 1}"
        out[f"stages.{s}.convs.{j}.weight"] = f"{name}_weights"
        if _with_bias(model):
            out[f"stages.{s}.convs.{j}.bias"] = OptionalSource(f"{name}_offset", 0.0, _FLUID_BIAS_REASON)
    out.update(_classifier(model, ("fc6", "fc7", "fc8"), "_weights", "_offset"))
    return out


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``legendary_models/vgg.py``: ``conv_block_{s}.conv{j}.weight``, fc1/fc2/fc3."""
    out: Dict[str, Source] = {}
    for s, j in _convs(model):
        name = f"conv_block_{s + 1}.conv{j + 1}"
        out[f"stages.{s}.convs.{j}.weight"] = f"{name}.weight"
        if _with_bias(model):
            # PaddleClas VGG has no conv bias: a network built with one does not fit its files
            # (and must not: it would also run its dropout in the wrong mode).
            out[f"stages.{s}.convs.{j}.bias"] = f"{name}.bias"
    out.update(_classifier(model, ("fc1", "fc2", "fc3"), ".weight", ".bias"))
    return out


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, Source]:
    """paddle.vision ``vgg.py``: ``features.<i>`` counts convs, ReLUs and pools; ``classifier.0/3/6``."""
    out: Dict[str, Source] = {}
    index = 0
    for s, stage in enumerate(model.stages):
        for j in range(len(stage.convs)):
            out[f"stages.{s}.convs.{j}.weight"] = f"features.{index}.weight"
            if _with_bias(model):
                out[f"stages.{s}.convs.{j}.bias"] = f"features.{index}.bias"
            index += 2  # conv, ReLU
        index += 1  # max pool
    out.update(_classifier(model, ("classifier.0", "classifier.3", "classifier.6"), ".weight", ".bias"))
    return out
