"""ResNet name maps: 2019 fluid, PaddleClas legendary, paddle.vision -> ours.

Our keys (:mod:`paddlehub_cls.models.resnet`): ``stem.{conv,bn}.*`` (``stem.<i>.{conv,bn}.*``
for the deep stem of the vd variants, which only PaddleClas publishes),
``stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*``, ``fc.{weight,bias}``.
Every map is generated from the network itself (its stages, blocks and which
blocks have a projection shortcut), so ResNet18 built with or without
``first_block_projection`` gets exactly the keys it has.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

from paddlehub_cls.errors import PaddleHubClsError
from paddlehub_cls.layouts import OUR_BN, Source, dygraph_convbn, fluid_convbn, register_layout
from paddlehub_cls.models._dbb import DiverseBranchBlock

FAMILY = "resnet"


def stem_convs(model) -> List[str]:
    """Our names of the stem's conv-BN layers: ``["stem"]``, or ``["stem.0", "stem.1", ...]`` (deep stem)."""
    if hasattr(model.stem, "conv"):
        return ["stem"]
    return [f"stem.{i}" for i in range(len(model.stem))]


def require_plain_stem(model, layout: str) -> None:
    """Refuse a deep-stem (vd) network in a layout whose source has only the 7x7 stem."""
    if stem_convs(model) != ["stem"]:
        raise PaddleHubClsError(
            f"layout {layout!r} has no deep 3x3 stem (vd, SE_ResNeXt152): only PaddleClas publishes "
            "weights for it; use the model's PaddleClas layout "
            "('paddleclas_legendary' or 'paddleclas_model_zoo')"
        )


def iter_blocks(model) -> Iterator[Tuple[int, int, int, object]]:
    """``(stage index, block index in stage, block index overall, block)`` in forward order."""
    flat = 0
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            yield s, b, flat, block
            flat += 1


def block_convs(block) -> List[str]:
    """Names of the conv-BN layers a block has, in our naming (``conv1`` ..., ``shortcut``)."""
    names = [n for n in ("conv1", "conv2", "conv3") if hasattr(block, n)]
    if getattr(block, "shortcut", None) is not None:
        names.append("shortcut")
    return names


def network_depth(model) -> int:
    """The "layers" of a ResNet-like network: its convs and classifier on the main path."""
    per_block = 2 if model.block_type == "basic" else 3
    return per_block * sum(model.depths) + 2


def fluid_block_name(depth: int, stage: int, index: int, numbered: Tuple[int, ...] = (101, 152)) -> str:
    """The 2019 block name: ``res2a``..., with ``res4b1``, ``res4b2``... in stage 4 of ResNet101/152.

    From models@dc1b032 ``models/resnet.py`` (and models@c1c5ed6 ``models_name/resnet.py``):
    ``"res" + str(block + 2) + chr(97 + i)``, except ``layers in [101, 152] and block == 2``
    where block 0 is ``a`` and block i is ``b<i>``. PaddleClas's ``res2net_vd.py`` numbers
    the third stage of depth 200 too: pass ``numbered=(101, 152, 200)``.
    """
    if depth in numbered and stage == 2:
        return f"res{stage + 2}" + ("a" if index == 0 else f"b{index}")
    if index >= 26:
        raise PaddleHubClsError(
            f"a ResNet-{depth} stage with {index + 1} blocks has no 2019 fluid names (letters a-z only)"
        )
    return f"res{stage + 2}{chr(97 + index)}"


# Our conv names -> the 2019 branch names, per block type.
_FLUID_BRANCH = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}


@register_layout(FAMILY, "fluid2019")
def fluid2019(model) -> Dict[str, Source]:
    """2019 fluid names: ``conv1_weights``, ``bn_conv1_*``, ``res2a_branch2a_weights``, ``bn2a_branch2a_*``,
    ``fc_0.w_0``.

    The BN of a block conv is ``"bn" + name[3:]`` (``res2a_branch1`` -> ``bn2a_branch1``);
    the classifier was created without a name, hence ``fc_0.w_0`` / ``fc_0.b_0``.
    """
    require_plain_stem(model, "fluid2019")
    depth = network_depth(model)
    out = fluid_convbn("stem", "conv1", "bn_conv1")
    for s, b, _, block in iter_blocks(model):
        name = fluid_block_name(depth, s, b)
        for conv in block_convs(block):
            fluid = f"{name}_{_FLUID_BRANCH[conv]}"
            out.update(fluid_convbn(f"stages.{s}.{b}.{conv}", fluid, "bn" + fluid[3:]))
    out["fc.weight"] = "fc_0.w_0"
    out["fc.bias"] = "fc_0.b_0"
    return out


_LEGENDARY_CONV = {"conv1": "conv0", "conv2": "conv1", "conv3": "conv2", "shortcut": "short"}

# Our DiverseBranchBlock branches -> PaddleClas ``base/dbb/dbb_block.py`` (its BNAndPad keeps
# the BN one level down, as ``.bn``).
_DBB_BN = {
    "avg.bn": "dbb_avg.bn.bn",
    "avg.out_bn": "dbb_avg.avgbn",
    "kxk.bn": "dbb_1x1_kxk.bn1.bn",
    "kxk.out_bn": "dbb_1x1_kxk.bn2",
}


def dbb_keys(ours: str, theirs: str) -> Dict[str, Source]:
    """Our unfused :class:`~paddlehub_cls.models._dbb.DiverseBranchBlock` ``ours`` from PaddleClas's ``theirs``."""
    out = dygraph_convbn(f"{ours}.origin", f"{theirs}.dbb_origin.conv", f"{theirs}.dbb_origin.bn")
    out.update(dygraph_convbn(f"{ours}.conv_1x1", f"{theirs}.dbb_1x1.conv", f"{theirs}.dbb_1x1.bn"))
    out[f"{ours}.avg.conv.weight"] = f"{theirs}.dbb_avg.conv.weight"
    out[f"{ours}.kxk.id_conv"] = f"{theirs}.dbb_1x1_kxk.idconv1.weight"
    out[f"{ours}.kxk.conv.weight"] = f"{theirs}.dbb_1x1_kxk.conv2.weight"
    for bn, their_bn in _DBB_BN.items():
        for a in OUR_BN:
            out[f"{ours}.{bn}.{a}"] = f"{theirs}.{their_bn}.{a}"
    return out


@register_layout(FAMILY, "paddleclas_legendary")
def paddleclas_legendary(model) -> Dict[str, Source]:
    """PaddleClas 2.6.0 ``legendary_models/resnet.py``: ``stem.0.{conv,bn}``,
    ``blocks.<n>.{conv0,conv1,conv2,short}``, ``fc``.

    Blocks are one flat ``nn.Sequential`` numbered across stages. The vd stem is
    ``stem.0`` .. ``stem.2``; the vd shortcut's average pool has no parameters, so the
    keys are the same.
    """
    out: Dict[str, Source] = {}
    for i, ours in enumerate(stem_convs(model)):
        out.update(dygraph_convbn(ours, f"stem.{i}.conv", f"stem.{i}.bn"))
    for s, b, n, block in iter_blocks(model):
        for conv in block_convs(block):
            theirs = f"blocks.{n}.{_LEGENDARY_CONV[conv]}"
            if isinstance(getattr(block, conv), DiverseBranchBlock):
                out.update(dbb_keys(f"stages.{s}.{b}.{conv}", theirs))
            else:
                out.update(dygraph_convbn(f"stages.{s}.{b}.{conv}", f"{theirs}.conv", f"{theirs}.bn"))
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out


@register_layout(FAMILY, "paddle_vision")
def paddle_vision(model) -> Dict[str, Source]:
    """paddle.vision ``resnet.py``: ``conv1``/``bn1``, ``layer<k>.<b>.{conv1,bn1,...,downsample.0/1}``."""
    require_plain_stem(model, "paddle_vision")
    out = dygraph_convbn("stem", "conv1", "bn1")
    for s, b, _, block in iter_blocks(model):
        prefix = f"layer{s + 1}.{b}"
        for conv in block_convs(block):
            if conv == "shortcut":
                theirs = (f"{prefix}.downsample.0", f"{prefix}.downsample.1")
            else:
                k = conv[-1]
                theirs = (f"{prefix}.conv{k}", f"{prefix}.bn{k}")
            out.update(dygraph_convbn(f"stages.{s}.{b}.{conv}", *theirs))
    out["fc.weight"] = "fc.weight"
    out["fc.bias"] = "fc.bias"
    return out
