"""UniFormer name map: PaddleClas 2.6.0 ``model_zoo/uniformer.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.uniformer`. PaddleClas keeps each stage's embedding as
``patch_embed<s+1>`` and its blocks as ``blocks<s+1>.<b>``; we group them as ``stages.<s>.embed``
and ``stages.<s>.blocks.<b>``. Inside them, the final ``norm`` and the head (PaddleClas ``head``,
ours ``fc``) the names are PaddleClas's.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "uniformer"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``patch_embed<n>.*``, ``blocks<n>.<b>.*``, ``norm.*``, ``head.*``."""
    out: Dict[str, Source] = {}
    for key in model.state_dict():
        if key.startswith("stages."):
            _, s, part, rest = key.split(".", 3)
            n = int(s) + 1
            if part == "embed":
                out[key] = f"patch_embed{n}.{rest}"
            else:
                out[key] = f"blocks{n}.{rest}"
        elif key.startswith("fc."):
            out[key] = "head." + key[3:]
        else:
            out[key] = key
    return out
