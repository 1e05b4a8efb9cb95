"""ResNeXt name map: PaddleClas 2.6.0 ``model_zoo/resnext.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.resnext`, a :class:`~paddlehub_cls.models.resnet.ResNet`):
``stem.{conv,bn}.*`` (``stem.<i>.*`` for a deep stem),
``stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*``,
``fc.{weight,bias}``.

The PaddleClas ``model_zoo`` ResNet relatives (``resnext``, ``resnext_vd``, ``se_resnext``)
share one naming scheme, written once here: a conv-BN is ``<name>._conv`` / ``<name>._batch_norm``,
block ``b`` of stage ``s`` is ``bb_<s>_<b>`` with ``conv0``/``conv1``/``conv2``/``short``, the
classifier is ``out``. The 7x7 stem is ``conv``; a deep stem is ``conv1_1``, ``conv1_2``, ``conv1_3``
(``resnext_vd.py``, and ``se_resnext.py`` for depth 152). The global ``ParamAttr`` names
those files also give do not reach the state_dict, which is keyed by structure.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout
from paddlehub_cls.layouts.resnet import block_convs, iter_blocks, stem_convs

FAMILY = "resnext"

_ZOO_CONV = {"conv1": "conv0", "conv2": "conv1", "conv3": "conv2", "shortcut": "short"}


def zoo_convbn(ours: str, theirs: str) -> Dict[str, Source]:
    """Our conv-BN ``ours`` from a PaddleClas ``model_zoo`` ``ConvBNLayer`` named ``theirs``."""
    return dygraph_convbn(ours, f"{theirs}._conv", f"{theirs}._batch_norm")


def model_zoo_resnet(model) -> Dict[str, Source]:
    """The stem, block and classifier names shared by the ``model_zoo`` ResNet relatives (no SE)."""
    stems = stem_convs(model)
    theirs = ["conv"] if stems == ["stem"] else [f"conv1_{i + 1}" for i in range(len(stems))]
    out: Dict[str, Source] = {}
    for ours, name in zip(stems, theirs):
        out.update(zoo_convbn(ours, name))
    for s, b, _, block in iter_blocks(model):
        for conv in block_convs(block):
            out.update(zoo_convbn(f"stages.{s}.{b}.{conv}", f"bb_{s}_{b}.{_ZOO_CONV[conv]}"))
    out["fc.weight"] = "out.weight"
    out["fc.bias"] = "out.bias"
    return out


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/resnext.py``: ``conv``, ``bb_<s>_<b>.{conv0,...,short}``, ``out``."""
    return model_zoo_resnet(model)
