"""TinyNet A-E: EfficientNet options, PaddleClas names and fidelity to PaddleClas 2.6.0.

TinyNet is PaddleClas's ``model_zoo/tinynet.py``: its ``EfficientNet`` subclass with width and
depth coefficients of its own, "DYNAMIC" (symmetric) padding, a 32-channel stem and a 1280-wide
head at every width. Ours is the same :class:`~paddlehub_cls.models.efficientnet.EfficientNet`
with ``fix_stem`` and ``head_width``, loaded through the EfficientNet name map.

Fidelity: for every (model, variant) registry.json lists for the ``tinynet`` family, PaddleClas
2.6.0's own builder runs in a subprocess with random weights (BN statistics randomised), writes
them with ``paddle.save``, and reports eval logits on a 64x64 input; ``load_model`` must restore
that file, served at the variant's real URL, and give the same logits. PaddleClas publishes no
parameter counts for TinyNet: the registry's are measured and must equal PaddleClas's network.
The checks every architecture shares are in ``test_models_common.py``.
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
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    trainable,
    variant_params,
)

FAMILY = "tinynet"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 334-338.
VARIANTS = [(f"TinyNet_{v}", "paddleclas") for v in "ABCDE"]
X = family_input(FAMILY)


def test_stem_head_and_blocks_follow_paddleclas():
    a, e = lazy("tinynet_a"), lazy("tinynet_e")
    # PaddleClas TinyNet_A / TinyNet_E state_dicts: 439 and 254 tensors.
    assert len(a.state_dict()) == 439 and len(e.state_dict()) == 254
    for model in (a, e):
        assert model.stem.conv.weight.shape == [32, 3, 3, 3]
        assert model.head.conv.weight.shape[0] == 1280 and model.fc.weight.shape == [1280, 1000]
        assert model.blocks[0].dw.conv.weight.shape[0] == 32  # the first group's input is not scaled
    assert e.blocks[1].project.conv.weight.shape == [16, 48, 1, 1]  # 24 x 0.51 rounds to 16
    # B0's repeats 1-2-2-3-3-4-1 times depth 1.2 / 0.6, rounded up
    assert len(a.blocks) == 23 and len(e.blocks) == 13


def test_the_efficientnet_name_map_serves_tinynet():
    model = lazy("tinynet_c")
    mapping = get_layout(FAMILY, LAYOUT)(model)
    assert mapping == get_layout("efficientnet", LAYOUT)(model)
    assert mapping["stem.conv.weight"] == "_ef._conv_stem._conv._conv._conv.weight"
    assert mapping["blocks.1.se.reduce.bias"] == "_ef._blocks.1.._se._conv1._conv.bias"
    assert mapping["blocks.2.expand.bn._mean"] == "_ef.block.2.._ecn._conv._bn._mean"


def test_registry_parameter_counts_are_the_measured_ones():
    for name, _ in VARIANTS:
        info = REGISTRY.get(name)
        assert info.num_params["value"] == trainable(lazy(info.architecture)), name
        assert info.num_params["source"].startswith("measured"), name


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    crops = [REGISTRY.get(n).preprocess_for("paddleclas")["crop"] for n, _ in VARIANTS]
    assert crops == [192, 188, 184, 152, 106]


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("TinyNet_E", "paddleclas")
    # The project convs of two repeats of one group have equal shapes.
    assert_swap_is_caught(
        "tinynet_e", res, FAMILY, LAYOUT, ("blocks.6.project.conv.weight", "blocks.7.project.conv.weight"), monkeypatch, X
    )
    model = load_as_variant("TinyNet_E", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.blocks[3].expand.act = make_act("relu")  # swish
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert res.extra["num_trainable"] == REGISTRY.get(name).num_params["value"]


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("TinyNet_E", "paddleclas")
    assert_load_options_work(
        "TinyNet_E", "paddleclas", res, cleanup, monkeypatch, X,
        maps=[[1, 8, 32, 32], [1, 16, 16, 16], [1, 24, 8, 8], [1, 56, 4, 4], [1, 160, 2, 2]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("TinyNet_E", "paddleclas")
    model = load_as_variant("TinyNet_E", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
