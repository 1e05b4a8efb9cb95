"""HarDNet 39-DS, 68-DS, 68 and 85: graph, harmonic links, PaddleClas names, fidelity to PaddleClas 2.6.0.

Fidelity: for every registry variant, PaddleClas 2.6.0's own ``model_zoo/hardnet.py`` builder
runs in a subprocess with random weights, writes them with ``paddle.save``, and reports eval
logits on a 64x64 input (the last block then runs at 2x2); ``load_model`` must restore that
file, served at the variant's real URL, and give the same logits. The checks every
architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import pytest
from paddle import nn

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.hardnet import DWConvLayer, harmonic_link

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

FAMILY = "hardnet"
LAYOUT = "paddleclas_model_zoo"
NAMES = ("HarDNet39_ds", "HarDNet68_ds", "HarDNet68", "HarDNet85")
X = family_input(FAMILY)


def test_harmonic_links_follow_the_power_of_two_rule():
    # Layer 4 reads layers 3, 2 and 0 (the input); two extra links: 14 * 1.7^2 = 40.46 -> 40.
    # Layer 3 reads 2 -> 14 channels; layer 2 reads 1 and 0 -> 14 * 1.7 = 23.8 -> 24.
    assert harmonic_link(3, 64, 14, 1.7) == (14, 24, [2])
    assert harmonic_link(2, 64, 14, 1.7) == (24, 64 + 14, [1, 0])
    assert harmonic_link(4, 64, 14, 1.7) == (40, 14 + 24 + 64, [3, 2, 0])


def test_blocks_and_stems_follow_paddleclas():
    sd = lazy("hardnet68").state_dict()
    assert len(sd) == 337  # PaddleClas HarDNet68's state_dict
    assert sd["base.0.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["base.1.conv.weight"].shape == [64, 32, 3, 3]
    assert sd["base.3.layers.3.conv.weight"].shape == [40, 102, 3, 3]
    assert sd["fc.weight"].shape == [1024, 1000]
    sd = lazy("hardnet39_ds").state_dict()
    assert len(sd) == 372
    assert sd["base.1.conv.weight"].shape == [48, 24, 1, 1]  # the _ds stem's 1x1 conv
    assert sd["base.2.dwconv.weight"].shape == [48, 1, 3, 3]  # its stride-2 depthwise layer
    assert sd["base.3.layers.0.layer2.dwconv.weight"].shape[1] == 1
    assert len(lazy("hardnet68_ds").state_dict()) == 657 and len(lazy("hardnet85").state_dict()) == 422
    assert lazy("hardnet85").num_features == 1280


def test_layout_keeps_the_base_names_and_maps_the_head():
    model = lazy("hardnet85")
    mapping = get_layout(FAMILY, LAYOUT)(model)
    assert mapping["base.0.conv.weight"] == "base.0.conv.weight"
    assert mapping["base.3.layers.7.norm._variance"] == "base.3.layers.7.norm._variance"
    # 3 stem layers; per block: block, 1x1 conv, pool where it downsamples; HarDNet85's dropout.
    assert len(model.base) == 19
    assert mapping["fc.weight"] == "base.19.3.weight" and mapping["fc.bias"] == "base.19.3.bias"
    assert get_layout(FAMILY, LAYOUT)(lazy("hardnet39_ds"))["fc.weight"] == "base.14.3.weight"


def test_every_registry_variant_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted((n, "paddleclas") for n in NAMES)
    assert {REGISTRY.resolve(n, "paddleclas")[1].layout for n in NAMES} == {LAYOUT}


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("HarDNet39_ds", "paddleclas")
    # The norms of layers 1 and 3 of the second block (both 20 channels wide).
    pair = ("base.6.layers.0.layer1.norm.weight", "base.6.layers.2.layer1.norm.weight")
    assert_swap_is_caught("hardnet39_ds", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with a ReLU6 after the stem's depthwise layer, which has no activation.
    model = load_as_variant("HarDNet39_ds", "paddleclas", res.path, cleanup, monkeypatch)
    assert isinstance(model.base[2], DWConvLayer)
    assert_logits_close(logits_of(model, X), res.logits)
    model.base[2].add_sublayer("relu", nn.ReLU6())
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("HarDNet39_ds", "paddleclas")
    maps = [[1, 24, 32, 32], [1, 96, 16, 16], [1, 320, 8, 8], [1, 640, 4, 4], [1, 1024, 2, 2]]
    assert_load_options_work("HarDNet39_ds", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("HarDNet39_ds", "paddleclas")
    model = load_as_variant("HarDNet39_ds", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
