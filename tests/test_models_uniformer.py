"""UniFormer small, small_plus, small_plus_dim64, base, base_ls: graph, PaddleClas names, fidelity.

Fidelity: for every (model, variant) registry.json lists for the ``uniformer`` family, PaddleClas
2.6.0's own ``model_zoo/uniformer.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on the 224x224 input (its patch embeddings
assert the trained size); ``load_model`` must restore that file, served at the variant's real
URL, and give the same logits. Expected source names and shapes below are copied from
PaddleClas's state_dicts. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import pytest

from paddlehub_cls.layouts import get_layout
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
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    swapped_copy,
    variant_params,
)

FAMILY = "uniformer"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 347-351.
VARIANTS = [
    (n, "paddleclas")
    for n in ("UniFormer_small", "UniFormer_small_plus", "UniFormer_small_plus_dim64", "UniFormer_base", "UniFormer_base_ls")
]


@pytest.mark.parametrize(
    "builder,keys,shapes",
    [
        ("uniformer_small", 316, {"stages.0.embed.proj_conv.weight": [64, 3, 4, 4], "stages.1.blocks.0.attn.weight": [128, 1, 5, 5], "stages.2.blocks.0.attn.qkv.weight": [320, 960]}),
        ("uniformer_small_plus", 364, {"stages.0.embed.proj.0.weight": [32, 3, 3, 3], "stages.0.embed.proj.3.weight": [64, 32, 3, 3], "stages.3.embed.proj.1._variance": [512]}),
        ("uniformer_base_ls", 714, {"stages.3.blocks.6.gamma_2": [512], "norm._mean": [512]}),
    ],
)
def test_keys_and_widths_follow_paddleclas(builder, keys, shapes):
    sd = lazy(builder).state_dict()
    assert len(sd) == keys
    for key, shape in shapes.items():
        assert sd[key].shape == shape, key
    # Heads of 64 channels (32 in small_plus): 5 and 8 heads in the attention stages.
    heads = 10 if builder == "uniformer_small_plus" else 5
    assert lazy(builder).stages[2].blocks[0].attn.num_heads == heads


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("uniformer_small_plus"))
    assert mapping["stages.0.embed.proj.4.bias"] == "patch_embed1.proj.4.bias"
    assert mapping["stages.1.blocks.4.mlp.fc2_conv.weight"] == "blocks2.4.mlp.fc2_conv.weight"
    assert mapping["stages.3.blocks.2.attn.proj.bias"] == "blocks4.2.attn.proj.bias"
    assert mapping["norm._variance"] == "norm._variance"
    assert mapping["fc.weight"] == "head.weight"


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert {REGISTRY.get(n).input_size for n, _ in VARIANTS} == {(3, 224, 224)}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property)
    # Published parameter counts are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("UniFormer_small", "paddleclas")
    swapped = swapped_copy(res.path, cleanup / "swapped.pdparams", "blocks3.0.attn.qkv.weight", "blocks3.1.attn.qkv.weight")
    model = load_as_variant("UniFormer_small", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res)  # ten times the fidelity tolerance or more
    model = load_as_variant("UniFormer_small", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model), res.logits)
    model.stages[1].blocks[0].mlp.act = make_act("relu")
    assert_logits_differ(model, res)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("UniFormer_small_plus", "paddleclas")
    maps = [[1, 64, 56, 56], [1, 128, 28, 28], [1, 320, 14, 14], [1, 512, 7, 7]]
    assert_load_options_work("UniFormer_small_plus", "paddleclas", res, cleanup, monkeypatch, X224, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("UniFormer_small", "paddleclas")
    model = load_as_variant("UniFormer_small", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
