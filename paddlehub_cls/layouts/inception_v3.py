"""Inception v3 name maps: PaddleClas 2.6.0 ``legendary_models/inception_v3.py`` and paddle.vision -> ours.

Our keys: :mod:`paddlehub_cls.models.inception_v3`. Both sources keep the stem as
``inception_stem`` and the blocks in ``inception_block_list.<i>``, with the same
conv names as ours; PaddleClas's conv-BN layer holds ``conv`` and ``bn`` (as ours
does), paddle.vision's ``ConvNormActivation`` is a sequential ``0`` (conv), ``1`` (BN).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout
from paddlehub_cls.models.layers import ConvBNAct

FAMILY = "inception_v3"
# Our top-level containers -> theirs; every conv-BN sits in one of them.
_CONTAINERS = {"stem": "inception_stem", "blocks": "inception_block_list"}


def _map(model, conv: str, bn: str) -> Dict[str, Source]:
    out: Dict[str, Source] = {"fc.weight": "fc.weight", "fc.bias": "fc.bias"}
    for name, layer in model.named_sublayers():
        if isinstance(layer, ConvBNAct):
            top, rest = name.split(".", 1)
            theirs = f"{_CONTAINERS[top]}.{rest}"
            out.update(dygraph_convbn(name, f"{theirs}.{conv}", f"{theirs}.{bn}"))
    return out


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas names: ``inception_stem.<conv>.{conv,bn}.*``, ``inception_block_list.<i>.<conv>.{conv,bn}.*``, ``fc.*``."""
    return _map(model, "conv", "bn")


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, Source]:
    """paddle.vision names: ``inception_stem.<conv>.{0,1}.*``, ``inception_block_list.<i>.<conv>.{0,1}.*``, ``fc.*``."""
    return _map(model, "0", "1")
