"""Swin Transformer name map: PaddleClas 2.6.0 ``legendary_models/swin_transformer.py`` -> ours.

PaddleClas names by structure: ``patch_embed.{proj,norm}.*``,
``layers.<s>.blocks.<b>.{norm1,norm2}.*``, ``...attn.{relative_position_bias_table,
relative_position_index,qkv.*,proj.*}``, ``...mlp.{fc1,fc2}.*``,
``layers.<s>.downsample.{norm.*,reduction.weight}`` (stages 0-2), ``norm.*``, ``head.*``.
``relative_position_index`` is a persistable buffer, so PaddleClas's state_dict (and the
files it saves) hold it; we map it like a weight. Our module tree is PaddleClas's, so
every key maps to itself; the map is built from the PaddleClas structure.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "swin_transformer"

_BLOCK = (
    "norm1.weight",
    "norm1.bias",
    "attn.relative_position_bias_table",
    "attn.relative_position_index",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``legendary_models/swin_transformer.py`` (names equal ours)."""
    names = [
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "patch_embed.norm.weight",
        "patch_embed.norm.bias",
    ]
    for s, stage in enumerate(model.layers):
        for b in range(len(stage.blocks)):
            names += [f"layers.{s}.blocks.{b}.{p}" for p in _BLOCK]
        if stage.downsample is not None:
            names += [f"layers.{s}.downsample.{p}" for p in ("reduction.weight", "norm.weight", "norm.bias")]
    names += ["norm.weight", "norm.bias"]
    if model.num_classes:
        names += ["head.weight", "head.bias"]
    return {n: n for n in names}
