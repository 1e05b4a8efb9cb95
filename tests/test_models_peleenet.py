"""PeleeNet: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: PaddleClas 2.6.0's own ``model_zoo/peleenet.py`` builder runs in a subprocess with
random weights, writes them with ``paddle.save``, and reports eval logits on a 64x64 input
(the last stage then runs at 2x2); ``load_model`` must restore that file, served at the
variant's real URL, and give the same logits. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.layers import make_act
from paddlehub_cls.models.peleenet import bottleneck_width

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_load_options_work,
    assert_logits_close,
    assert_logits_differ,
    assert_predictor_matches,
    assert_published_count_near,
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "peleenet"
LAYOUT = "paddleclas_model_zoo"
X = family_input(FAMILY)


def test_stem_two_way_dense_layers_and_transitions_follow_paddleclas():
    model = lazy("peleenet")
    sd = model.state_dict()
    assert len(sd) == 567  # PaddleClas PeleeNet's state_dict
    assert [len(s.layers) for s in model.stages] == [3, 4, 8, 6]
    assert sd["stem.stem1.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.stem3.conv.weight"].shape == [32, 64, 1, 1]
    # Bottlenecks of int(16 * w / 4) * 4 channels for widths w = 1, 2, 4, 4; each branch adds 16.
    assert sd["stages.0.layers.0.branch1a.conv.weight"].shape == [16, 32, 1, 1]
    assert sd["stages.1.layers.0.branch2a.conv.weight"].shape == [32, 128, 1, 1]
    assert sd["stages.3.layers.0.branch2b.conv.weight"].shape == [16, 64, 3, 3]
    assert sd["stages.3.layers.5.branch2c.conv.weight"].shape == [16, 16, 3, 3]
    assert sd["stages.3.transition.conv.weight"].shape == [704, 704, 1, 1]
    assert sd["fc.weight"].shape == [704, 1000]


def test_bottleneck_width_shrinks_where_it_would_exceed_half_the_input():
    assert bottleneck_width(32, 16, 1) == 16
    assert bottleneck_width(512, 16, 4) == 64
    # 16 * 4 / 4 = 16 > 24 / 2, so int(24 / 8) * 4 = 12.
    assert bottleneck_width(24, 16, 4) == 12


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("peleenet"))
    assert mapping["stem.stem2b.conv.weight"] == "features.stemblock.stem2b.conv.weight"
    assert mapping["stem.stem1.bn._mean"] == "features.stemblock.stem1.norm._mean"
    assert (
        mapping["stages.2.layers.7.branch1b.bn.weight"]
        == "features.denseblock3.denselayer8.branch1b.norm.weight"
    )
    assert mapping["stages.0.transition.conv.weight"] == "features.transition1.conv.weight"
    assert mapping["fc.weight"] == "classifier.weight"


def test_the_registry_variant_is_covered():
    assert family_variants(FAMILY) == [("PeleeNet", "paddleclas")]
    info, variant = REGISTRY.resolve("PeleeNet", "paddleclas")
    assert variant.layout == LAYOUT
    assert (info.preprocess["backend"], info.preprocess["interpolation"]) == ("pil", "bilinear")


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("PeleeNet", "paddleclas")
    # The two branches' first 1x1 convs of one layer mapped to each other (same shape).
    pair = ("stages.2.layers.3.branch1a.conv.weight", "stages.2.layers.3.branch2a.conv.weight")
    assert_swap_is_caught("peleenet", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    model = load_as_variant("PeleeNet", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[1].transition.act = make_act("hardswish")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("PeleeNet", "paddleclas")
    maps = [[1, 32, 16, 16], [1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 704, 2, 2]]
    assert_load_options_work("PeleeNet", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("PeleeNet", "paddleclas")
    model = load_as_variant("PeleeNet", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
