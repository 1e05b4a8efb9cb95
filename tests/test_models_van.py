"""VAN B0-B3: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``van`` family, PaddleClas
2.6.0's own ``model_zoo/van.py`` builder runs in a subprocess with random weights, writes them
with ``paddle.save``, and reports eval logits on a 64x64 input (no position table; the last
stage is then 2x2). Its constructor re-initialises its convs with ``set_value``, so its oracle
builds eagerly (``PADDLECLAS_EAGER``). Expected source names and shapes below are copied from
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

FAMILY = "van"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 352-355.
VARIANTS = [(n, "paddleclas") for n in ("VAN_B0", "VAN_B1", "VAN_B2", "VAN_B3")]
X = family_input(FAMILY)


def test_keys_and_widths_follow_paddleclas():
    sd = lazy("van_b0").state_dict()
    assert len(sd) == 372  # PaddleClas VAN_B0's state_dict
    assert sd["stages.0.patch_embed.proj.weight"].shape == [32, 3, 7, 7]
    assert sd["stages.1.patch_embed.proj.weight"].shape == [64, 32, 3, 3]
    assert sd["stages.2.blocks.4.attn.spatial_gating_unit.conv_spatial.weight"].shape == [160, 1, 7, 7]
    assert sd["stages.0.blocks.0.mlp.dwconv.weight"].shape == [256, 1, 3, 3]  # MLP ratio 8
    assert sd["stages.3.blocks.1.layer_scale_2"].shape == [256, 1, 1]
    assert sd["stages.3.norm.weight"].shape == [256]
    assert [len(lazy(b).state_dict()) for b in ("van_b1", "van_b2", "van_b3")] == [294, 580, 1022]


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("van_b0"))
    assert mapping["stages.0.patch_embed.norm._mean"] == "patch_embed1.norm._mean"
    assert mapping["stages.2.blocks.4.mlp.dwconv.bias"] == "block3.4.mlp.dwconv.dwconv.bias"
    assert mapping["stages.1.blocks.2.attn.spatial_gating_unit.conv0.weight"] == "block2.2.attn.spatial_gating_unit.conv0.weight"
    assert mapping["stages.3.norm.bias"] == "norm4.bias"
    assert mapping["fc.weight"] == "head.weight"


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert {tuple(REGISTRY.get(n).mean) for n, _ in VARIANTS} == {(0.5, 0.5, 0.5)}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    # Published parameter counts are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("VAN_B0", "paddleclas")
    swapped = swapped_copy(res.path, cleanup / "swapped.pdparams", "block3.1.layer_scale_1", "block3.2.layer_scale_1")
    model = load_as_variant("VAN_B0", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more
    model = load_as_variant("VAN_B0", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[2].blocks[1].attn.activation = make_act("relu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("VAN_B0", "paddleclas")
    maps = [[1, 32, 16, 16], [1, 64, 8, 8], [1, 160, 4, 4], [1, 256, 2, 2]]
    assert_load_options_work("VAN_B0", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("VAN_B0", "paddleclas")
    model = load_as_variant("VAN_B0", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
