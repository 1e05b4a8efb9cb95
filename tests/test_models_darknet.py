"""DarkNet-53: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: PaddleClas 2.6.0's own ``model_zoo/darknet.py`` builder runs in a subprocess with
random weights, writes them with ``paddle.save``, and reports eval logits on a 64x64 input
(the last stage then runs at 2x2); ``load_model`` must restore that file, served at the
variant's real URL, and give the same logits. The checks every architecture shares are in
``test_models_common.py``.
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

FAMILY = "darknet"
LAYOUT = "paddleclas_model_zoo"
X = family_input(FAMILY)


def test_stages_and_blocks_follow_paddleclas():
    model = lazy("darknet53")
    sd = model.state_dict()
    assert len(sd) == 262  # PaddleClas DarkNet53's state_dict
    assert [len(s.blocks) for s in model.stages] == [1, 2, 8, 8, 4]
    assert sd["stem.0.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.1.conv.weight"].shape == [64, 32, 3, 3]
    assert sd["stages.0.blocks.0.conv1.conv.weight"].shape == [32, 64, 1, 1]
    assert sd["stages.4.downsample.conv.weight"].shape == [1024, 512, 3, 3]
    assert sd["stages.4.blocks.3.conv2.conv.weight"].shape == [1024, 512, 3, 3]
    assert not any(k.startswith("stages.0.downsample") for k in sd)
    assert sd["fc.weight"].shape == [1024, 1000]


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("darknet53"))
    assert mapping["stem.0.conv.weight"] == "_conv1._conv.weight"
    assert mapping["stem.1.bn._variance"] == "_conv2._bn._variance"
    assert mapping["stages.0.blocks.0.conv1.conv.weight"] == "_basic_block_01._conv1._conv.weight"
    assert mapping["stages.2.blocks.7.conv2.bn.weight"] == "_basic_block_28._conv2._bn.weight"
    assert mapping["stages.1.downsample.conv.weight"] == "_downsample_0._conv.weight"
    assert mapping["stages.4.downsample.bn._mean"] == "_downsample_3._bn._mean"
    assert mapping["fc.bias"] == "_out.bias"


def test_the_registry_variant_is_covered():
    assert family_variants(FAMILY) == [("DarkNet53", "paddleclas")]
    info, variant = REGISTRY.resolve("DarkNet53", "paddleclas")
    assert variant.layout == LAYOUT and info.input_size == (3, 256, 256)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DarkNet53", "paddleclas")
    pair = ("stages.2.blocks.3.conv1.conv.weight", "stages.2.blocks.4.conv1.conv.weight")
    assert_swap_is_caught("darknet53", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with one ReLU made the leaky ReLU of the Darknet original.
    model = load_as_variant("DarkNet53", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[1].blocks[0].conv1.act = make_act("leaky_relu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("DarkNet53", "paddleclas")
    maps = [[1, 64, 32, 32], [1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]]
    assert_load_options_work("DarkNet53", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DarkNet53", "paddleclas")
    model = load_as_variant("DarkNet53", "paddleclas", res.path, cleanup, monkeypatch)
    # Exported for the oracle's 64x64 input (the registry size, 256, is the same graph).
    assert_predictor_matches(model, cleanup / "export", side=64)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
