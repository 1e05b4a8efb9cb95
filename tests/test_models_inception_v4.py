"""Inception v4: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: PaddleClas 2.6.0's own ``model_zoo/inception_v4.py`` builder runs in a subprocess
with random weights, writes them with ``paddle.save`` and reports eval logits on a 139x139
input, the smallest whose last map is 3x3 (the unpadded stem and reductions shrink it as in
Inception v3); ``load_model`` must restore that file, served at the variant's real URL, and
give the same logits. Expected shapes below are those of PaddleClas's state_dict of
``InceptionV4()``. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.errors import InputSizeError
from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import make_act

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

FAMILY = "inception_v4"
NAME = "InceptionV4"
LAYOUT = "paddleclas_model_zoo"
VARIANTS = [(NAME, "paddleclas")]  # ZOO_FACTS table 1 row 96
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_blocks_and_widths_follow_paddleclas():
    sd = lazy("inception_v4").state_dict()
    assert len(sd) == 747  # PaddleClas InceptionV4's state_dict
    assert sd["stem.conv_1.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.conv2_2.conv.weight"].shape == [64, 64, 7, 1]
    assert sd["stem.conv3.conv.weight"].shape == [192, 192, 3, 3]
    assert sd["blocks.0.conv1.conv.weight"].shape == [96, 384, 1, 1]
    assert sd["blocks.4.conv3_3.conv.weight"].shape == [256, 224, 3, 3]
    assert sd["blocks.11.conv4_5.conv.weight"].shape == [256, 224, 7, 1]
    assert sd["blocks.12.conv3_4.conv.weight"].shape == [320, 320, 3, 3]
    assert sd["blocks.15.conv4_000.conv.weight"].shape == [512, 448, 3, 1]
    assert sd["fc.weight"].shape == [1536, 1000]


def test_border_pools_exclude_the_padding_and_the_head_sees_0_8_of_the_pooled_features():
    paddle.seed(2)
    model = get_builder("inception_v4")()
    model.eval()
    # exclusive=True: a corner mean of ones stays 1 (Inception v3 counts the padding: 4/9).
    assert float(model.blocks[0].pool(paddle.ones([1, 1, 4, 4]))[0, 0, 0, 0]) == pytest.approx(1.0)
    with paddle.no_grad():
        fmap = model.forward_features(paddle.randn([1, 3, 139, 139]))
        assert fmap.shape == [1, 1536, 3, 3]
        pre = model.forward_head(fmap, pre_logits=True)
        np.testing.assert_allclose(pre.numpy(), fmap.mean([2, 3]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model.forward_head(fmap).numpy(), model.fc(0.8 * pre).numpy(), rtol=1e-5, atol=1e-5
        )
        with pytest.raises(InputSizeError, match="InceptionV4 needs inputs of at least 75x75"):
            model(paddle.randn([1, 3, 74, 74]))


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("inception_v4"))
    assert mapping["stem.conv_1.conv.weight"] == "_inception_stem._conv_1._conv.weight"
    assert mapping["stem.conv2_3.bn._mean"] == "_inception_stem._conv2_3._batch_norm._mean"
    assert mapping["blocks.3.conv4_3.bn.weight"] == "_inceptionA_4._conv4_3._batch_norm.weight"
    assert mapping["blocks.4.conv2.conv.weight"] == "_reductionA._conv2._conv.weight"
    assert mapping["blocks.5.conv1.conv.weight"] == "_inceptionB_1._conv1._conv.weight"
    assert mapping["blocks.12.conv3_4.bn.bias"] == "_reductionB._conv3_4._batch_norm.bias"
    assert mapping["blocks.15.conv4_00.conv.weight"] == "_inceptionC_3._conv4_00._conv.weight"
    assert mapping["fc.weight"] == "out.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == VARIANTS
    assert REGISTRY.resolve(NAME, "paddleclas")[1].layout == LAYOUT
    assert REGISTRY.get(NAME).input_size == (3, 299, 299)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, "paddleclas")
    # The 1x1 convs of two B blocks (same shape) swapped in the file: it loads, the logits differ.
    swapped = swapped_copy(
        res.path,
        cleanup / "swapped.pdparams",
        "_inceptionB_2._conv2._conv.weight",
        "_inceptionB_3._conv2._conv.weight",
    )
    model = load_as_variant(NAME, "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)
    # The right file, with one conv's ReLU replaced by GELU.
    model = load_as_variant(NAME, "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.blocks[6].conv2.act = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles(NAME, "paddleclas")
    # At 224 the unpadded maps are 109, 25, 12 and 5: nearest powers of two 2, 8, 16, 32.
    assert_load_options_work(
        NAME,
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X224,
        maps=[[1, 64, 109, 109], [1, 384, 25, 25], [1, 1024, 12, 12], [1, 1536, 5, 5]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, "paddleclas")
    model = load_as_variant(NAME, "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export", side=X.shape[-1])
