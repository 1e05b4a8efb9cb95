"""ViT and DeiT name maps: PaddleClas 2.6.0 ``model_zoo`` -> ours.

PaddleClas ``model_zoo/vision_transformer.py`` and ``model_zoo/distilled_vision_transformer.py``
name their tensors by structure (no ``ParamAttr`` names): ``pos_embed``, ``cls_token``,
``dist_token`` (distilled), ``patch_embed.proj.*``, ``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2}.*``, ``norm.*``, ``head.*``, ``head_dist.*`` (distilled). Our network
(:mod:`paddlehub_cls.models._transformer`) keeps those names, so every key maps to itself;
the map is still built from the PaddleClas structure, not from our state_dict, so a
network that grew or lost a tensor fails to match.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

_BLOCK = (
    "norm1.weight",
    "norm1.bias",
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


def paddleclas_vit_keys(model) -> Dict[str, Source]:
    """PaddleClas's ``VisionTransformer`` / ``DistilledVisionTransformer`` names for ``model``."""
    names = [
        "pos_embed",
        "cls_token",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
    ]
    qkv_bias = model.blocks[0].attn.qkv.bias is not None
    for i in range(len(model.blocks)):
        names += [f"blocks.{i}.{p}" for p in _BLOCK if qkv_bias or p != "attn.qkv.bias"]
    heads = list(model.classifier_attrs)
    if len(heads) > 1:
        names.append("dist_token")
    if model.num_classes:
        names += [f"{h}.{p}" for h in heads for p in ("weight", "bias")]
    return {n: n for n in names}


FAMILY = "vision_transformer"


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/vision_transformer.py`` (names equal ours)."""
    return paddleclas_vit_keys(model)


@register_layout("distilled_vision_transformer", "paddleclas_model_zoo")
def paddleclas_model_zoo_deit(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``model_zoo/distilled_vision_transformer.py`` (names equal ours)."""
    return paddleclas_vit_keys(model)
