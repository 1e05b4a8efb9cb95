"""SqueezeNet 1.0 and 1.1: graph, conv classifier, PaddleClas names, the paddle.vision md5s, fidelity.

Fidelity: for both registry variants, PaddleClas 2.6.0's own ``model_zoo/squeezenet.py``
builder runs in a subprocess with random weights, writes them with ``paddle.save``, and
reports eval logits on a 64x64 input (its head is a 1x1 conv and a global pool, so any size
works); ``load_model`` must restore that file, served at the variant's real URL, and give
the same logits. The checks every architecture shares are in ``test_models_common.py``
(SqueezeNet is not in its HEADS list: its classifier is a 1x1 conv on the map, tested here).
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder

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

FAMILY = "squeezenet"
LAYOUT = "paddleclas_model_zoo"
NAMES = ("SqueezeNet1_0", "SqueezeNet1_1")
X = family_input(FAMILY)


def test_stems_fires_and_the_conv_classifier_follow_paddleclas():
    sd = lazy("squeezenet1_0").state_dict()
    assert len(sd) == 52  # PaddleClas SqueezeNet1_0's state_dict
    assert sd["stem.weight"].shape == [96, 3, 7, 7]
    assert sd["stages.0.fires.0.squeeze.weight"].shape == [16, 96, 1, 1]
    assert sd["stages.1.fires.3.expand3x3.weight"].shape == [256, 64, 3, 3]
    assert sd["fc.weight"].shape == [1000, 512, 1, 1]
    sd = lazy("squeezenet1_1").state_dict()
    assert sd["stem.weight"].shape == [64, 3, 3, 3]
    assert [len(s.fires) for s in lazy("squeezenet1_1").stages] == [2, 2, 4]
    assert [len(s.fires) for s in lazy("squeezenet1_0").stages] == [3, 4, 1]


def test_unpadded_pools_give_output_stride_16():
    # No ceil mode: the last map of a 224 input is 12x12 (1.0) and 13x13 (1.1).
    for builder, side in (("squeezenet1_0", 12), ("squeezenet1_1", 13)):
        model = get_builder(builder)()
        model.eval()
        with paddle.no_grad():
            assert model.forward_features(paddle.zeros([1, 3, 224, 224])).shape == [1, 512, side, side]


def test_the_classifier_is_a_conv_on_the_map_then_relu_then_the_mean():
    paddle.seed(3)
    model = get_builder("squeezenet1_1")(num_classes=0)
    model.eval()
    x = paddle.randn([1, 3, 96, 96])
    with paddle.no_grad():
        fmap = model.forward_features(x)
        np.testing.assert_allclose(model(x).numpy(), fmap.mean([2, 3]).numpy(), rtol=1e-6)
        model.reset_classifier(7)
        model.eval()
        assert model.fc.weight.shape == [7, 512, 1, 1] and model.classifier_keys() == ["fc.weight", "fc.bias"]
        # downscale_in_infer dropout: the map is halved before the conv.
        per_pixel = paddle.nn.functional.conv2d(0.5 * fmap, model.fc.weight, model.fc.bias)
        want = paddle.nn.functional.relu(per_pixel).mean([2, 3])
        np.testing.assert_allclose(model(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model.forward_head(fmap, pre_logits=True).numpy(), fmap.mean([2, 3]).numpy()
        )
        model.reset_classifier(0)
        assert model(x).shape == [1, 512]


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("squeezenet1_1"))
    assert mapping["stem.weight"] == "_conv.weight"
    assert mapping["stages.0.fires.0.squeeze.weight"] == "_conv1._conv._conv.weight"
    assert mapping["stages.0.fires.1.expand1x1.bias"] == "_conv2._conv_path1._conv.bias"
    assert mapping["stages.2.fires.3.expand3x3.weight"] == "_conv8._conv_path2._conv.weight"
    assert mapping["fc.weight"] == "_conv9.weight"


def test_every_registry_variant_is_covered_with_the_paddle_vision_md5():
    import paddle.vision.models.squeezenet as vision_squeezenet

    assert sorted(family_variants(FAMILY)) == [(n, "paddleclas") for n in NAMES]
    for name in NAMES:
        info, variant = REGISTRY.resolve(name, "paddleclas")
        url, md5 = vision_squeezenet.model_urls[info.architecture]
        assert list(variant.urls) == [url] and variant.checksum == f"md5:{md5}"
        assert variant.layout == LAYOUT


def test_a_wrong_mapping_or_a_missing_relu_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("SqueezeNet1_1", "paddleclas")
    # fire6's and fire7's 1x1-expand biases mapped to each other (both [192]).
    pair = ("stages.2.fires.0.expand1x1.bias", "stages.2.fires.1.expand1x1.bias")
    assert_swap_is_caught("squeezenet1_1", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with the classifier's ReLU before the pool left out.
    model = load_as_variant("SqueezeNet1_1", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.forward_head = lambda x, pre_logits=False: model.fc(model.drop(x)).mean([2, 3])
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("SqueezeNet1_1", "paddleclas")
    maps = [[1, 64, 32, 32], [1, 128, 15, 15], [1, 256, 7, 7], [1, 512, 3, 3]]
    assert_load_options_work("SqueezeNet1_1", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("SqueezeNet1_1", "paddleclas")
    model = load_as_variant("SqueezeNet1_1", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
