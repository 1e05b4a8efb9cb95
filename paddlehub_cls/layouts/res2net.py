"""Res2Net name map: PaddleClas 2.6.0 ``model_zoo/res2net.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.res2net`): ``stem.{conv,bn}.*`` (``stem.<i>.*`` for the
vd stem), ``stages.<s>.<b>.{conv1,conv3,shortcut}.{conv,bn}.*``,
``stages.<s>.<b>.convs.<i>.{conv,bn}.*``, ``fc.{weight,bias}``.

PaddleClas keys a block ``bb_<s>_<b>`` with ``conv0``, ``conv2`` and ``short`` (the
``model_zoo`` ``ConvBNLayer``: ``_conv`` / ``_batch_norm``), but adds the split 3x3 convs
with ``add_sublayer`` under their 2019 names: ``<res name>_branch2b_<i + 1>``, with the
``res2a``/``res4b12`` block names of ResNet (:func:`~paddlehub_cls.layouts.resnet.fluid_block_name`).
The stem is ``conv1`` (7x7) or ``conv1_1``..``conv1_3`` (vd), the classifier ``out``.
"""

from __future__ import annotations

from typing import Dict, Tuple

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.resnet import fluid_block_name, iter_blocks, network_depth, stem_convs
from paddlehub_cls.layouts.resnext import zoo_convbn

FAMILY = "res2net"

_ZOO_CONV = {"conv1": "conv0", "conv3": "conv2", "shortcut": "short"}


def model_zoo_res2net(model, numbered: Tuple[int, ...]) -> Dict[str, Source]:
    """The PaddleClas names of a Res2Net; ``numbered``: depths whose third stage names blocks ``b<i>``."""
    stems = stem_convs(model)
    theirs = ["conv1"] if stems == ["stem"] else [f"conv1_{i + 1}" for i in range(len(stems))]
    out: Dict[str, Source] = {}
    for ours, name in zip(stems, theirs):
        out.update(zoo_convbn(ours, name))
    depth = network_depth(model)
    for s, b, _, block in iter_blocks(model):
        prefix = f"bb_{s}_{b}"
        res = fluid_block_name(depth, s, b, numbered)
        for ours, name in _ZOO_CONV.items():
            if ours != "shortcut" or block.shortcut is not None:
                out.update(zoo_convbn(f"stages.{s}.{b}.{ours}", f"{prefix}.{name}"))
        for i in range(len(block.convs)):
            out.update(zoo_convbn(f"stages.{s}.{b}.convs.{i}", f"{prefix}.{res}_branch2b_{i + 1}"))
    out["fc.weight"] = "out.weight"
    out["fc.bias"] = "out.bias"
    return out


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/res2net.py``: ``conv1``, ``bb_<s>_<b>.{conv0,res2a_branch2b_1,...}``, ``out``."""
    return model_zoo_res2net(model, (101, 152))
