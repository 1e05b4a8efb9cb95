"""AlexNet: graph, PaddleClas names, the paddle.vision md5, fidelity to PaddleClas 2.6.0.

Fidelity: PaddleClas 2.6.0's own ``model_zoo/alexnet.py`` builder runs in a subprocess with
random weights, writes them with ``paddle.save``, and reports eval logits on a 224x224 input
(its fc6 only takes the 6x6 map of that size); ``load_model`` must restore that file, served
at the variant's real URL, and give the same logits. The checks every architecture shares
are in ``test_models_common.py``.
"""

from __future__ import annotations

import importlib

import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.layers import make_dropout

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_load_options_work,
    assert_logits_close,
    assert_logits_differ,
    assert_predictor_matches,
    assert_published_count_near,
    assert_swap_is_caught,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "alexnet"
LAYOUT = "paddleclas_model_zoo"


def test_convs_and_fully_connected_layers_follow_paddleclas():
    sd = lazy("alexnet").state_dict()
    assert len(sd) == 16  # PaddleClas AlexNet's state_dict
    assert sd["stages.0.convs.0.weight"].shape == [64, 3, 11, 11]
    assert sd["stages.1.convs.0.weight"].shape == [192, 64, 5, 5]
    assert sd["stages.2.convs.0.weight"].shape == [384, 192, 3, 3]
    assert sd["stages.2.convs.2.bias"].shape == [256]
    assert sd["fc1.weight"].shape == [256 * 6 * 6, 4096]
    assert sd["fc.weight"].shape == [4096, 1000]


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("alexnet"))
    assert mapping["stages.0.convs.0.weight"] == "_conv1._conv.weight"
    assert mapping["stages.2.convs.0.bias"] == "_conv3.bias"
    assert mapping["stages.2.convs.1.weight"] == "_conv4.weight"
    assert mapping["stages.2.convs.2.weight"] == "_conv5._conv.weight"
    assert mapping["fc1.weight"] == "_fc6.weight"
    assert mapping["fc2.bias"] == "_fc7.bias"
    assert mapping["fc.weight"] == "_fc8.weight"


def test_the_registry_variant_carries_the_paddle_vision_md5():
    # The module, not the function that paddle.vision.models exports under the same name.
    vision_alexnet = importlib.import_module("paddle.vision.models.alexnet")
    assert family_variants(FAMILY) == [("AlexNet", "paddleclas")]
    _, variant = REGISTRY.resolve("AlexNet", "paddleclas")
    url, md5 = vision_alexnet.model_urls["alexnet"]
    assert list(variant.urls) == [url] and variant.checksum == f"md5:{md5}"
    assert variant.layout == LAYOUT


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X224)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_dropout_mode_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("AlexNet", "paddleclas")
    # conv4's and conv5's biases mapped to each other (both [256]): the logits move.
    pair = ("stages.2.convs.1.bias", "stages.2.convs.2.bias")
    assert_swap_is_caught("alexnet", res, FAMILY, LAYOUT, pair, monkeypatch, X224)
    # The right file, with the dropout before fc6 an identity at inference (paddle's default mode)
    # instead of PaddleClas's halving: fc6's bias makes that more than a change of scale.
    model = load_as_variant("AlexNet", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X224), res.logits)
    model.drop1 = make_dropout(0.5, "upscale_in_train")
    assert_logits_differ(model, res, X224)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("AlexNet", "paddleclas")
    # Unpadded pools: 55, 27, 13 and 6 pixels at 224.
    maps = [[1, 64, 55, 55], [1, 192, 27, 27], [1, 256, 13, 13], [1, 256, 6, 6]]
    assert_load_options_work("AlexNet", "paddleclas", res, cleanup, monkeypatch, X224, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("AlexNet", "paddleclas")
    model = load_as_variant("AlexNet", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
