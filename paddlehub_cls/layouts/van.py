"""VAN name map: PaddleClas 2.6.0 ``model_zoo/van.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.van`. PaddleClas keeps each stage's parts as
``patch_embed<s+1>``, ``block<s+1>.<b>`` and ``norm<s+1>``; we group them as
``stages.<s>.{patch_embed,blocks.<b>,norm}``. Inside the blocks the names are PaddleClas's,
except the MLP's depthwise conv, which PaddleClas wraps (``mlp.dwconv.dwconv``, ours
``mlp.dwconv``). The classifier is ``head`` (ours ``fc``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "van"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``patch_embed<n>.*``, ``block<n>.<b>.*``, ``norm<n>.*``, ``head.*``."""
    out: Dict[str, Source] = {}
    for key in model.state_dict():
        if key.startswith("fc."):
            out[key] = "head." + key[3:]
            continue
        _, s, part, rest = key.split(".", 3)
        n = int(s) + 1
        if part == "blocks":
            b, tensor = rest.split(".", 1)
            tensor = tensor.replace("mlp.dwconv.", "mlp.dwconv.dwconv.")
            out[key] = f"block{n}.{b}.{tensor}"
        else:  # patch_embed.<...>, norm.<weight|bias>
            out[key] = f"{part}{n}.{rest}"
    return out
