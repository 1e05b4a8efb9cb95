"""Res2Net-vd name map: PaddleClas 2.6.0 ``model_zoo/res2net_vd.py`` -> ours.

The names of ``model_zoo/res2net.py`` (:mod:`paddlehub_cls.layouts.res2net`) with the deep stem
``conv1_1``..``conv1_3``; the vd shortcut's average pool has no parameters. Unlike
``res2net.py``, this file also numbers the third-stage blocks of depth 200 (``res4b1``...).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts.res2net import model_zoo_res2net

FAMILY = "res2net_vd"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/res2net_vd.py``: ``conv1_{1,2,3}``, ``bb_<s>_<b>.*``, ``out``."""
    return model_zoo_res2net(model, (101, 152, 200))
