"""PeleeNet name map: PaddleClas 2.6.0 ``model_zoo/peleenet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.peleenet`. PaddleClas keeps the trunk in one
``features`` sequence: ``stemblock`` (``stem1``, ``stem2a``, ``stem2b``, ``stem3``),
``denseblock<s+1>.denselayer<j+1>.<branch>``, ``transition<s+1>``; every conv-BN is
``conv`` and ``norm`` (ours ``conv`` and ``bn``); the classifier is ``classifier``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "peleenet"

_BRANCHES = ("branch1a", "branch1b", "branch2a", "branch2b", "branch2c")


def _convbn(ours: str, theirs: str) -> Dict[str, Source]:
    return dygraph_convbn(ours, f"{theirs}.conv", f"{theirs}.norm")


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``features.stemblock.*``, ``features.denseblock<n>.denselayer<j>.*``,
    ``features.transition<n>``, ``classifier``."""
    out: Dict[str, Source] = {}
    for conv in ("stem1", "stem2a", "stem2b", "stem3"):
        out.update(_convbn(f"stem.{conv}", f"features.stemblock.{conv}"))
    for s, stage in enumerate(model.stages):
        for j in range(len(stage.layers)):
            for branch in _BRANCHES:
                theirs = f"features.denseblock{s + 1}.denselayer{j + 1}.{branch}"
                out.update(_convbn(f"stages.{s}.layers.{j}.{branch}", theirs))
        out.update(_convbn(f"stages.{s}.transition", f"features.transition{s + 1}"))
    out["fc.weight"], out["fc.bias"] = "classifier.weight", "classifier.bias"
    return out
