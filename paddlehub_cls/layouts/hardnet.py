"""HarDNet name map: PaddleClas 2.6.0 ``model_zoo/hardnet.py`` -> ours.

Our keys (:mod:`paddlehub_cls.models.hardnet`) keep PaddleClas's ``base.<i>`` list and its
layer names; only the classifier differs: PaddleClas's is the last item of ``base``, a
sequence of pool, flatten, dropout and linear (``base.<n>.3``), ours is ``fc``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "hardnet"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``base.<i>.*`` as ours, ``fc`` -> ``base.<len(base)>.3``."""
    head = f"base.{len(model.base)}.3"
    out: Dict[str, Source] = {k: k for k in model.state_dict() if not k.startswith("fc.")}
    out["fc.weight"], out["fc.bias"] = f"{head}.weight", f"{head}.bias"
    return out
