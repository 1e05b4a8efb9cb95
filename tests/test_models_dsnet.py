"""DSNet tiny/small/base: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``dsnet`` family, PaddleClas
2.6.0's own ``model_zoo/dsnet.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on the 224x224 input (PaddleClas's patch
convs assert that size). Expected source names and shapes below are copied from
PaddleClas's state_dict of ``DSNet_tiny()``. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.dsnet import resize_bilinear
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
    assert_swap_is_caught,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "dsnet"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 50-52.
VARIANTS = [(n, "paddleclas") for n in ("DSNet_tiny", "DSNet_small", "DSNet_base")]


# --------------------------------------------------------------------------- graph


def test_stages_and_streams_follow_paddleclas():
    model = lazy("dsnet_tiny")
    sd = model.state_dict()
    assert len(sd) == 392  # PaddleClas DSNet_tiny's state_dict
    assert sd["patch_embed1.proj.weight"].shape == [64, 3, 4, 4]
    assert sd["patch_embed4.proj.weight"].shape == [512, 320, 2, 2]
    assert sd["blocks1.0.pos_embed.weight"].shape == [64, 1, 3, 3]
    # Stage 3 (320 wide): 160 channels per stream, each widened 3x for q, k, v.
    assert sd["blocks3.3.channel_up.weight"].shape == [160, 480]
    assert sd["blocks3.3.cross_channel_up_conv.weight"].shape == [480, 160, 1, 1]
    assert sd["blocks3.3.norm_sa2.weight"].shape == [160]
    assert sd["blocks4.0.mlp.fc1.weight"].shape == [2048, 512, 1, 1]
    assert sd["norm._variance"].shape == [512] and sd["head.weight"].shape == [512, 1000]
    assert [
        b.downsample for b in (model.blocks1[0], model.blocks2[0], model.blocks3[0], model.blocks4[0])
    ] == [8, 4, 2, 2]
    assert len(lazy("dsnet_base").blocks3) == 28


@pytest.mark.parametrize(
    "src,dst", [((56, 56), (7, 7)), ((7, 7), (3, 3)), ((3, 3), (7, 7)), ((10, 12), (5, 6)), ((1, 2), (4, 3))]
)
def test_matrix_bilinear_resize_equals_paddle_interpolate(src, dst):
    paddle.seed(2)
    x = paddle.randn([2, 3, *src])
    ref = paddle.nn.functional.interpolate(x, size=dst, mode="bilinear")
    np.testing.assert_allclose(resize_bilinear(x, dst).numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("dsnet_tiny"))
    assert mapping["blocks2.1.fuse_channel_sa.weight"] == "blocks2.1.fuse_channel_sa.weight"
    assert mapping["head.weight"] == "head.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DSNet_tiny", "paddleclas")
    # The two streams' fusing linears of one block swapped: same shapes, different logits.
    pair = ("blocks3.1.fuse_channel_conv.weight", "blocks3.1.fuse_channel_sa.weight")
    assert_swap_is_caught("dsnet_tiny", res, FAMILY, LAYOUT, pair, monkeypatch)
    # The right file, with one MLP's GELU replaced by ReLU.
    model = load_as_variant("DSNet_tiny", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model), res.logits)
    model.blocks2[1].mlp.act = make_act("relu")
    assert_logits_differ(model, res)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("DSNet_tiny", "paddleclas")
    # At 64 the attention streams are 2x2, 2x2, 2x2 and 1x1.
    assert_load_options_work(
        "DSNet_tiny",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X224[:, :, :64, :64],
        maps=[[1, 64, 16, 16], [1, 128, 8, 8], [1, 320, 4, 4], [1, 512, 2, 2]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DSNet_tiny", "paddleclas")
    model = load_as_variant("DSNet_tiny", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
