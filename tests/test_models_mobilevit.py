"""MobileViT v1, MobileViTV2 and MobileViTV3: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

The three families share their blocks (``paddlehub_cls/models/_mobilevit.py``) and this file.
Fidelity: for every (model, variant) registry.json lists for the ``mobilevit``, ``mobilevit_v2``
and ``mobilevit_v3`` families, PaddleClas 2.6.0's own ``model_zoo/<family>.py`` builder runs in a
subprocess with random weights, writes them with ``paddle.save``, and reports eval logits on a
64x64 input (the smallest the v2 graph takes: its 2x2 patches need even maps down to the 2x2
last stage); ``load_model`` must restore that file, served at the variant's real URL, and give
the same logits. The resize paths of the v1 and v1-style v3 blocks (maps of odd side) are checked
against PaddleClas at 96x96. Expected source names and shapes below are copied from PaddleClas's
state_dicts. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models._mobilevit import GroupNorm1, from_patches, to_patches
from paddlehub_cls.models.layers import make_act

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_logits_close,
    assert_logits_differ,
    assert_load_options_work,
    assert_predictor_matches,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    swapped_copy,
    variant_params,
)

FAMILIES = ("mobilevit", "mobilevit_v2", "mobilevit_v3")
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 140-155.
VARIANTS = {
    "mobilevit": ["MobileViT_XXS", "MobileViT_XS", "MobileViT_S"],
    "mobilevit_v2": [f"MobileViTV2_{w}" for w in ("x0_5", "x1_0", "x1_5", "x2_0")],
    "mobilevit_v3": [
        f"MobileViTV3_{w}" for w in ("XXS", "XS", "S", "XXS_L2", "XS_L2", "S_L2", "x0_5", "x0_75", "x1_0")
    ],
}
X = family_input("mobilevit")
X96 = X224[:, :, :96, :96]
# The registry input size of every model here; the exported programs take it.
X256 = np.random.default_rng(2019).standard_normal((1, 3, 256, 256)).astype("float32")


# --------------------------------------------------------------------------- graph


def test_patches_are_what_unfold_gives_and_fold_back():
    x = paddle.randn([2, 3, 6, 8])
    patches = to_patches(x, 2)
    ref = paddle.nn.functional.unfold(x, [2, 2], strides=[2, 2]).reshape([2, 3, 4, 12])
    np.testing.assert_array_equal(patches.numpy(), ref.numpy())
    np.testing.assert_array_equal(from_patches(patches, (6, 8), 2).numpy(), x.numpy())


def test_group_norm_of_one_group_normalises_each_whole_sample():
    paddle.seed(2)
    ours, ref = GroupNorm1(6), paddle.nn.GroupNorm(1, 6)
    for p, q in ((ours.weight, ref.weight), (ours.bias, ref.bias)):
        value = paddle.rand([6]) + 0.5
        p.set_value(value)
        q.set_value(value)
    x = paddle.randn([2, 6, 4, 5]) * 3 + 1
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "builder,keys,shapes",
    [
        # PaddleClas MobileViT_XXS: 279 keys; conv2 (no norm) 48 -> 64, the fusion conv4 3x3 on 2 x 48.
        ("mobilevit_xxs", 279, {"stages.2.1.conv_in.weight": [64, 48, 1, 1], "stages.2.1.fusion.conv.weight": [48, 96, 3, 3], "head_conv.conv.weight": [320, 80, 1, 1]}),
        # MobileViTV2_x0_5: 244 keys; qkv_proj 1 + 2 x 64, ffn 128.
        ("mobilevit_v2_x0_5", 244, {"stages.2.1.blocks.0.attn.qkv.weight": [129, 64, 1, 1], "stages.2.1.blocks.0.fc1.weight": [128, 64, 1, 1], "stages.2.1.proj.conv.weight": [128, 64, 1, 1]}),
        # MobileViTV3_XXS: depthwise local conv, fusion 1x1 on 64 + 64, head min(4 x 128, 960).
        ("mobilevit_v3_xxs", 279, {"stages.2.1.local.conv.weight": [64, 1, 3, 3], "stages.2.1.fusion.conv.weight": [64, 128, 1, 1], "head_conv.conv.weight": [512, 128, 1, 1]}),
        ("mobilevit_v3_s", 279, {"head_conv.conv.weight": [960, 320, 1, 1], "stages.1.0.expand.conv.weight": [128, 32, 1, 1]}),
        # MobileViTV3_x0_5: conv_proj reads the concatenation, 2 x 64 channels.
        ("mobilevit_v3_x0_5", 244, {"stages.2.1.proj.conv.weight": [128, 128, 1, 1]}),
        ("mobilevit_v3_xxs_l2", 255, {}),
    ],
)
def test_keys_and_widths_follow_paddleclas(builder, keys, shapes):
    sd = lazy(builder).state_dict()
    assert len(sd) == keys
    for key, shape in shapes.items():
        assert sd[key].shape == shape, key


def test_layout_names_follow_paddleclas():
    v1 = get_layout("mobilevit", LAYOUT)(lazy("mobilevit_xxs"))
    assert v1["stem.bn._variance"] == "conv3x3.norm._variance"
    assert v1["stages.1.2.project.conv.weight"] == "mv2_block_4.conv.2.weight"
    assert v1["stages.1.2.project.bn.bias"] == "mv2_block_4.conv.3.bias"
    assert v1["stages.4.1.blocks.2.norm2.weight"] == "mvit_block_3.transformer.layers.2.mlp_norm.weight"
    assert v1["stages.3.1.fusion.conv.weight"] == "mvit_block_2.conv4.conv.weight"
    assert v1["fc.weight"] == "linear.weight"
    v2 = get_layout("mobilevit_v2", LAYOUT)(lazy("mobilevit_v2_x0_5"))
    assert v2["stages.1.1.expand.bn._mean"] == "layer_2.1.block.exp_1x1.norm._mean"
    assert v2["stages.4.1.blocks.2.fc2.bias"] == "layer_5.1.global_rep.2.pre_norm_ffn.4.bias"
    assert v2["stages.4.1.norm.weight"] == "layer_5.1.global_rep.3.weight"
    assert v2["fc.bias"] == "classifier.fc.bias"
    v3 = get_layout("mobilevit_v3", LAYOUT)(lazy("mobilevit_v3_xs"))
    assert v3["stages.3.1.blocks.3.attn.proj.weight"] == "layer_4.1.global_rep.3.pre_norm_mha.1.out_proj.weight"
    assert v3["stages.3.1.conv_in.weight"] == "layer_4.1.local_rep.conv_1x1.conv.weight"
    assert v3["head_conv.bn.weight"] == "conv_1x1_exp.norm.weight"


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("family", FAMILIES)
def test_every_registry_variant_of_the_family_is_covered(family):
    assert sorted(family_variants(family)) == sorted((n, "paddleclas") for n in VARIANTS[family])
    for name in VARIANTS[family]:
        info = REGISTRY.get(name)
        assert REGISTRY.resolve(name, "paddleclas")[1].layout == LAYOUT
        assert info.input_size == (3, 256, 256)
        # Only v1's eval pipeline keeps the decoder's BGR order.
        assert info.preprocess["channel_order"] == ("BGR" if family == "mobilevit" else "RGB")


@pytest.mark.parametrize(
    "name,tag", [p for family in FAMILIES for p in variant_params(family)]
)
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    # Published parameter counts are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


@pytest.mark.parametrize("name", ["MobileViT_XXS", "MobileViTV3_XXS"])
def test_odd_maps_are_resized_as_paddleclas_does(name, shared_oracles, cleanup, monkeypatch):
    # At 96x96 the last stage is 3x3: v1 resizes to 4x4 bilinearly and back with nearest
    # neighbours, the v1-style v3 back bilinearly.
    res = shared_oracles(name, "paddleclas", x=X96)
    model = load_as_variant(name, "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X96), res.logits)
    block = model.stages[4][1]
    block.resize_back = "bilinear" if block.resize_back == "nearest" else "nearest"
    assert_logits_differ(model, res, X96)  # ten times the fidelity tolerance or more


@pytest.mark.parametrize(
    "name,pair,block",
    [
        ("MobileViT_XXS", ("mvit_block_2.transformer.layers.0.attn.qkv.weight", "mvit_block_2.transformer.layers.1.attn.qkv.weight"), (3, 1)),
        ("MobileViTV2_x0_5", ("layer_4.1.global_rep.0.pre_norm_ffn.1.weight", "layer_4.1.global_rep.1.pre_norm_ffn.1.weight"), (3, 1)),
        ("MobileViTV3_XXS", ("layer_3.1.global_rep.0.pre_norm_mha.1.out_proj.weight", "layer_3.1.global_rep.1.pre_norm_mha.1.out_proj.weight"), (2, 1)),
        ("MobileViTV3_x0_5", ("layer_5.1.conv_proj.norm.weight", "layer_5.1.local_rep.0.norm.weight"), (3, 1)),
    ],
    ids=["v1", "v2", "v3-v1style", "v3-v2style"],
)
def test_a_wrong_mapping_or_activation_changes_the_logits(name, pair, block, shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(name, "paddleclas")
    # Two tensors of the same shape swapped in the file: it still loads, but the logits differ.
    swapped = swapped_copy(res.path, cleanup / "swapped.pdparams", *pair)
    model = load_as_variant(name, "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more
    # The right file, with one MobileViT block's SiLU replaced by ReLU.
    model = load_as_variant(name, "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    s, i = block
    model.stages[s][i].local.act = make_act("relu")
    assert_logits_differ(model, res, X)


@pytest.mark.parametrize(
    "name,maps",
    [
        ("MobileViT_XXS", [[1, 16, 32, 32], [1, 24, 16, 16], [1, 48, 8, 8], [1, 64, 4, 4], [1, 80, 2, 2]]),
        ("MobileViTV2_x0_5", [[1, 32, 32, 32], [1, 64, 16, 16], [1, 128, 8, 8], [1, 192, 4, 4], [1, 256, 2, 2]]),
        ("MobileViTV3_XXS", [[1, 16, 32, 32], [1, 24, 16, 16], [1, 64, 8, 8], [1, 80, 4, 4], [1, 128, 2, 2]]),
    ],
)
def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    name, maps, shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles(name, "paddleclas")
    assert_load_options_work(name, "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


@pytest.mark.parametrize("name", ["MobileViT_XXS", "MobileViTV2_x0_5", "MobileViTV3_x0_5"])
def test_exported_program_runs_in_paddle_inference(name, shared_oracles, cleanup, monkeypatch):
    # Guards the patch reshapes (Paddle Inference rejected a 6-d form of them) and the norms.
    res = shared_oracles(name, "paddleclas")
    model = load_as_variant(name, "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export", x=X256)
