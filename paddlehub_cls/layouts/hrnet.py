"""HRNet name map: PaddleClas 2.6.0 ``legendary_models/hrnet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.hrnet`. PaddleClas's conv-BN layers are
``<name>.conv`` / ``<name>.bn`` like ours; the differences are the module names and
the fuse, whose convs PaddleClas keeps in one flat ``fuse_func.residual_func_list``
numbered in forward order (for each output ``i``, for each input ``j != i``: one conv
if ``j > i``, ``i - j`` chained convs if ``j < i``), where ours are
``fuse.<i>.paths.<j>[.<k>]``. The map is generated from the network, so every width
and the SE variant get exactly their keys.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from paddlehub_cls.layouts import Source, dygraph_convbn, register_layout

FAMILY = "hrnet"

_BOTTLENECK = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "shortcut": "conv_down"}
_SE = {"squeeze": "fc_squeeze", "excite": "fc_excitation"}


def _convbn(ours: str, theirs: str) -> Dict[str, Source]:
    return dygraph_convbn(ours, f"{theirs}.conv", f"{theirs}.bn")


def _block(ours: str, theirs: str, block) -> Dict[str, Source]:
    """A basic block or bottleneck: its conv-BNs and, in SE-HRNet, its SE linears."""
    out: Dict[str, Source] = {}
    for conv, name in _BOTTLENECK.items():
        if getattr(block, conv, None) is not None:
            out.update(_convbn(f"{ours}.{conv}", f"{theirs}.{name}"))
    if block.se is not None:
        for a, b in _SE.items():
            for p in ("weight", "bias"):
                out[f"{ours}.se.{a}.{p}"] = f"{theirs}.se.{b}.{p}"
    return out


def fuse_convs(branches: int) -> List[Tuple[int, int, int]]:
    """``(i, j, k)`` of every fuse conv, in PaddleClas's ``residual_func_list`` order.

    ``k`` is the step of a downsampling chain (always 0 for a 1x1 upsampling conv).
    """
    order = []
    for i in range(branches):
        for j in range(branches):
            if j > i:
                order.append((i, j, 0))
            elif j < i:
                order.extend((i, j, k) for k in range(i - j))
    return order


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv_layer1_{1,2}``, ``layer1.<b>.{conv1,conv2,conv3,conv_down,se}``,
    ``conv_tr1_{1,2}``, ``conv_tr2``, ``conv_tr3``,
    ``st<2-4>.stage_func_list.<m>.{basic_block_list.<i>.<b>, fuse_func.residual_func_list.<n>}``,
    ``last_cls.func_list.<i>``, ``cls_head_conv_list.<i>``, ``conv_last``, ``fc``.
    """
    out = _convbn("stem.0", "conv_layer1_1")
    out.update(_convbn("stem.1", "conv_layer1_2"))
    for b, block in enumerate(model.layer1):
        out.update(_block(f"layer1.{b}", f"layer1.{b}", block))
    out.update(_convbn("transition1.0", "conv_tr1_1"))
    out.update(_convbn("transition1.1", "conv_tr1_2"))
    out.update(_convbn("transition2", "conv_tr2"))
    out.update(_convbn("transition3", "conv_tr3"))
    for s, stage in enumerate(model.stages):
        for m, module in enumerate(stage):
            ours, theirs = f"stages.{s}.{m}", f"st{s + 2}.stage_func_list.{m}"
            for i, branch in enumerate(module.branches):
                for b, block in enumerate(branch):
                    out.update(
                        _block(f"{ours}.branches.{i}.{b}", f"{theirs}.basic_block_list.{i}.{b}", block)
                    )
            for n, (i, j, k) in enumerate(fuse_convs(len(module.branches))):
                path = f"{ours}.fuse.{i}.paths.{j}" + (f".{k}" if j < i else "")
                out.update(_convbn(path, f"{theirs}.fuse_func.residual_func_list.{n}"))
    for i, block in enumerate(model.incre):
        out.update(_block(f"incre.{i}", f"last_cls.func_list.{i}", block))
    for i in range(len(model.downsamp)):
        out.update(_convbn(f"downsamp.{i}", f"cls_head_conv_list.{i}"))
    out.update(_convbn("final", "conv_last"))
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
