"""Inception v3: graph, PaddleClas and paddle.vision names, and fidelity to both sources.

Fidelity: for every (model, variant) registry.json lists for the ``inception_v3`` family,
the source's own network (PaddleClas 2.6.0 ``legendary_models/inception_v3.py`` in a
subprocess, paddle.vision ``inception_v3`` in-process) gets random weights, writes them
with ``paddle.save`` and reports eval logits on a 139x139 input, the smallest whose last
map is 3x3 (139 -> 67 -> 31 -> 15 -> 7 -> 3 through the unpadded stem and reductions; at
1x1 one image's BN statistics are degenerate). ``load_model`` must restore that file,
served at the variant's real URL, and give the same logits. Expected shapes below are
those of PaddleClas's state_dict of ``InceptionV3()``. The checks every architecture
shares are in ``test_models_common.py``.
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

FAMILY = "inception_v3"
NAME = "InceptionV3"
# ZOO_FACTS table 1 row 95, and paddle.vision's own inception_v3 file (WEIGHTS_FACTS section 2).
VARIANTS = [(NAME, "paddleclas"), (NAME, "paddle_vision")]
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_blocks_and_widths_follow_paddleclas():
    sd = lazy("inception_v3").state_dict()
    assert len(sd) == 472  # PaddleClas InceptionV3's state_dict (and paddle.vision's)
    assert sd["stem.conv_1a_3x3.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.conv_4a_3x3.conv.weight"].shape == [192, 80, 3, 3]
    assert sd["blocks.0.branch_pool_conv.conv.weight"].shape == [32, 192, 1, 1]
    assert sd["blocks.3.branch3x3.conv.weight"].shape == [384, 288, 3, 3]
    assert sd["blocks.4.branch7x7_2.conv.weight"].shape == [128, 128, 1, 7]
    assert sd["blocks.7.branch7x7dbl_2.conv.weight"].shape == [192, 192, 7, 1]
    assert sd["blocks.9.branch3x3dbl_1.conv.weight"].shape == [448, 1280, 1, 1]
    assert sd["blocks.10.branch3x3_2b.conv.weight"].shape == [384, 384, 3, 1]
    assert sd["fc.weight"].shape == [2048, 1000]


def test_border_pools_count_the_padding_and_the_head_sees_0_8_of_the_pooled_features():
    paddle.seed(2)
    model = get_builder("inception_v3")()
    model.eval()
    pool = model.blocks[0].branch_pool
    ones = paddle.ones([1, 1, 4, 4])
    # exclusive=False: a corner mean of ones over a zero-padded 3x3 window is 4/9.
    assert float(pool(ones)[0, 0, 0, 0]) == pytest.approx(4 / 9)
    with paddle.no_grad():
        fmap = model.forward_features(paddle.randn([1, 3, 139, 139]))
        assert fmap.shape == [1, 2048, 3, 3]
        pre = model.forward_head(fmap, pre_logits=True)
        np.testing.assert_allclose(pre.numpy(), fmap.mean([2, 3]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model.forward_head(fmap).numpy(), model.fc(0.8 * pre).numpy(), rtol=1e-5, atol=1e-5
        )


def test_an_input_below_75_pixels_is_refused():
    model = get_builder("inception_v3")(num_classes=3)
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, 75, 80])).shape == [1, 3]  # 1x1 last map
        with pytest.raises(InputSizeError, match=r"at least 75x75 pixels, got shape \[1, 3, 74, 80\]"):
            model(paddle.randn([1, 3, 74, 80]))


def test_layout_names_follow_both_sources():
    model = lazy("inception_v3")
    clas = get_layout(FAMILY, "paddleclas_legendary")(model)
    assert clas["stem.conv_2b_3x3.conv.weight"] == "inception_stem.conv_2b_3x3.conv.weight"
    assert (
        clas["blocks.4.branch7x7dbl_5.bn._variance"] == "inception_block_list.4.branch7x7dbl_5.bn._variance"
    )
    assert clas["fc.bias"] == "fc.bias"
    vision = get_layout(FAMILY, "paddle_vision")(model)
    assert vision["stem.conv_2b_3x3.conv.weight"] == "inception_stem.conv_2b_3x3.0.weight"
    assert vision["blocks.10.branch_pool_conv.bn._mean"] == "inception_block_list.10.branch_pool_conv.1._mean"
    assert vision["fc.weight"] == "fc.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    layouts = {t: REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS}
    assert layouts == {"paddleclas": "paddleclas_legendary", "paddle_vision": "paddle_vision"}
    assert REGISTRY.get(NAME).input_size == (3, 299, 299)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, "paddleclas")
    # Two 1x7 convs of one C block (same shape) swapped in the file: it loads, the logits differ.
    swapped = swapped_copy(
        res.path,
        cleanup / "swapped.pdparams",
        "inception_block_list.4.branch7x7_2.conv.weight",
        "inception_block_list.4.branch7x7dbl_3.conv.weight",
    )
    model = load_as_variant(NAME, "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)
    # The right file, with one branch's ReLU replaced by GELU.
    model = load_as_variant(NAME, "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.blocks[5].branch1x1.act = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles(NAME, "paddleclas")
    # At 224 the unpadded maps are 109, 52, 25, 12 and 5: nearest powers of two 2 ... 32.
    assert_load_options_work(
        NAME,
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X224,
        maps=[[1, 64, 109, 109], [1, 192, 52, 52], [1, 288, 25, 25], [1, 768, 12, 12], [1, 2048, 5, 5]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, "paddleclas")
    model = load_as_variant(NAME, "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export", side=X.shape[-1])
