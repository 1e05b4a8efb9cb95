"""LeViT name map: PaddleClas 2.6.0 ``model_zoo/levit.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.levit`. The blocks mirror PaddleClas's
(``blocks.<i>.m.{qkv,proj.1}.{c,bn}.*``, ``blocks.<i>.m.{0,2}.{c,bn}.*``,
``blocks.<i>.{kv,q.1,proj.1}.{c,bn}.*``, ``attention_biases`` and the persistable
``attention_bias_idxs`` buffers keep their names). The stem is our conv-BN-act list
``patch_embed.<i>.{conv,bn}`` (PaddleClas interleaves the activations:
``patch_embed.<2i>.{c,bn}``), and PaddleClas's ``BN_Linear`` head ``head.{bn,l}`` is our
``head_norm`` and ``fc``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "levit"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``patch_embed.<2i>.{c,bn}.*``, ``blocks.*``, ``head.{bn,l}.*``."""
    out: Dict[str, Source] = {}
    for key in model.state_dict():
        if key.startswith("patch_embed."):
            _, i, layer, tensor = key.split(".")
            out[key] = f"patch_embed.{2 * int(i)}.{'c' if layer == 'conv' else 'bn'}.{tensor}"
        elif key.startswith("head_norm."):
            out[key] = "head.bn." + key[len("head_norm.") :]
        elif key.startswith("fc."):
            out[key] = "head.l." + key[len("fc.") :]
        else:
            out[key] = key
    return out
