"""Name-map pieces shared by the MobileViT v1/v2/v3 layouts (PaddleClas 2.6.0 -> ours).

Our blocks: :mod:`paddlehub_cls.models._mobilevit`. PaddleClas names a conv-BN(-act)
``<x>.conv`` / ``<x>.norm`` in every file except v1's inverted residual, a plain
``Sequential`` (``conv.0``, ``conv.1`` conv-BN-act, ``conv.2`` conv, ``conv.3`` BN).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, dygraph_convbn


def convbn(ours: str, theirs: str) -> Dict[str, Source]:
    """Our ConvBNAct ``ours`` from PaddleClas's ``<theirs>.conv`` and ``<theirs>.norm``."""
    return dygraph_convbn(ours, f"{theirs}.conv", f"{theirs}.norm")


def linear(ours: str, theirs: str, bias: bool = True) -> Dict[str, Source]:
    """A linear, 1x1 conv or norm with weight (and bias) of the same names."""
    out: Dict[str, Source] = {f"{ours}.weight": f"{theirs}.weight"}
    if bias:
        out[f"{ours}.bias"] = f"{theirs}.bias"
    return out


def mv2(ours: str, theirs: str, block, v1: bool) -> Dict[str, Source]:
    """An inverted residual: our ``expand``/``dw``/``project`` from v1's ``conv.0..3`` or the
    v2/v3 ``block.{exp_1x1,conv_3x3,red_1x1}``."""
    if v1:
        # Without the expand conv (expansion 1, in no released size) every index moves down one.
        first = 0 if block.expand is None else 1
        out = dygraph_convbn(f"{ours}.project", f"{theirs}.conv.{first + 1}", f"{theirs}.conv.{first + 2}")
        out.update(convbn(f"{ours}.dw", f"{theirs}.conv.{first}"))
        if block.expand is not None:
            out.update(convbn(f"{ours}.expand", f"{theirs}.conv.0"))
        return out
    out = convbn(f"{ours}.dw", f"{theirs}.block.conv_3x3")
    out.update(convbn(f"{ours}.project", f"{theirs}.block.red_1x1"))
    if block.expand is not None:
        out.update(convbn(f"{ours}.expand", f"{theirs}.block.exp_1x1"))
    return out


class MixerNames:
    """Where PaddleClas keeps the parts of one kind of MobileViT block (relative to the block).

    ``local``: the 3x3 conv-BN; ``conv_in``: the 1x1 conv (weight only); ``layer``: the
    ``i``-th transformer layer (a format string); ``tensors``: our name in a layer -> theirs;
    ``norm``: the final norm (formatted with ``depth``); ``proj`` and ``fusion``: conv-BNs.
    """

    def __init__(self, local: str, conv_in: str, layer: str, tensors: Dict[str, str], norm: str,
                 proj: str, fusion: str = "") -> None:
        self.local, self.conv_in, self.layer, self.tensors = local, conv_in, layer, tensors
        self.norm, self.proj, self.fusion = norm, proj, fusion


def mixer(ours: str, theirs: str, block, names: MixerNames) -> Dict[str, Source]:
    """A MobileViT block (:class:`TransformerMixBlock` or :class:`LinearMixBlock`) by ``names``."""
    out = convbn(f"{ours}.local", f"{theirs}.{names.local}")
    out.update(linear(f"{ours}.conv_in", f"{theirs}.{names.conv_in}", bias=False))
    depth = len(block.blocks)
    for i in range(depth):
        layer = f"{theirs}.{names.layer.format(i=i)}"
        for a, b in names.tensors.items():
            out.update(linear(f"{ours}.blocks.{i}.{a}", f"{layer}.{b}"))
    out.update(linear(f"{ours}.norm", f"{theirs}.{names.norm.format(depth=depth)}"))
    out.update(convbn(f"{ours}.proj", f"{theirs}.{names.proj}"))
    if names.fusion:
        out.update(convbn(f"{ours}.fusion", f"{theirs}.{names.fusion}"))
    return out


#: the v2 block and the v2-style v3 block (``MobileViTV2Block``, ``MobileViTV3BlockV2``)
LINEAR_MIX = MixerNames(
    local="local_rep.0",
    conv_in="local_rep.1.conv",
    layer="global_rep.{i}",
    tensors={
        "norm1": "pre_norm_attn.0",
        "attn.qkv": "pre_norm_attn.1.qkv_proj",
        "attn.proj": "pre_norm_attn.1.out_proj",
        "norm2": "pre_norm_ffn.0",
        "fc1": "pre_norm_ffn.1",
        "fc2": "pre_norm_ffn.4",
    },
    norm="global_rep.{depth}",
    proj="conv_proj",
)


def layer_stages(model, transformer_mix=None) -> Dict[str, Source]:
    """The v2 and v3 stages: our ``stages.<s>.<i>`` from PaddleClas's ``layer_<s+1>.<i>``.

    ``transformer_mix(ours, theirs, block)`` maps a transformer block (the v1-style v3);
    the other MobileViT blocks are :data:`LINEAR_MIX`.
    """
    from paddlehub_cls.models._mobilevit import LinearMixBlock, TransformerMixBlock

    out: Dict[str, Source] = {}
    for s, stage in enumerate(model.stages):
        for i, layer in enumerate(stage):
            ours, theirs = f"stages.{s}.{i}", f"layer_{s + 1}.{i}"
            if isinstance(layer, LinearMixBlock):
                out.update(mixer(ours, theirs, layer, LINEAR_MIX))
            elif isinstance(layer, TransformerMixBlock):
                out.update(transformer_mix(ours, theirs, layer))
            else:
                out.update(mv2(ours, theirs, layer, v1=False))
    return out
