"""TNT small/base: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``tnt`` family, PaddleClas
2.6.0's own ``model_zoo/tnt.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on the 224x224 input (PaddleClas asserts
that size: its patch position table is for a 14x14 grid). Expected source names and shapes
below are copied from PaddleClas's state_dict of ``TNT_small()``. The checks every
architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.layers import make_act
from paddlehub_cls.models.tnt import PixelEmbed

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

FAMILY = "tnt"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 339-340.
VARIANTS = [("TNT_small", "paddleclas"), ("TNT_base", "paddleclas")]


# --------------------------------------------------------------------------- graph


def test_pixel_and_patch_tokens_follow_paddleclas():
    sd = lazy("tnt_small").state_dict()
    assert len(sd) == 363  # PaddleClas TNT_small's state_dict
    assert sd["pixel_embed.proj.weight"].shape == [24, 3, 7, 7]
    assert sd["pixel_pos"].shape == [1, 16, 24]
    assert sd["patch_pos"].shape == [1, 197, 384]
    assert sd["blocks.0.attn_in.qk.weight"].shape == [24, 48]
    assert "blocks.0.attn_in.qk.bias" not in sd and "blocks.0.proj.bias" not in sd
    assert sd["blocks.11.proj.weight"].shape == [384, 384]
    assert sd["blocks.11.mlp_in.fc1.weight"].shape == [24, 96]
    assert sd["head.weight"].shape == [384, 1000]
    assert lazy("tnt_base").state_dict()["blocks.0.attn_out.qk.weight"].shape == [640, 1280]


def test_pixel_embedding_cuts_patches_like_unfold():
    # PaddleClas cuts the patches with F.unfold(x, 16, 16); ours reshapes: same order and layout.
    paddle.seed(1)
    embed = PixelEmbed(3, 8)
    x = paddle.randn([2, 3, 48, 64])
    ours, grid = embed(x)
    patches = paddle.nn.functional.unfold(x, 16, 16).transpose([0, 2, 1]).reshape([-1, 3, 16, 16])
    ref = embed.proj(patches).reshape([-1, 8, 16]).transpose([0, 2, 1])
    assert grid == (3, 4)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("tnt_small"))
    assert mapping["pixel_pos"] == "pixel_pos"
    assert mapping["blocks.3.norm2_proj.weight"] == "blocks.3.norm2_proj.weight"
    assert mapping["head.bias"] == "head.bias"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert {tuple(REGISTRY.get(n).preprocess["mean"]) for n, _ in VARIANTS} == {(0.5, 0.5, 0.5)}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("TNT_small", "paddleclas")
    # The inner and outer projections' norms of two blocks swapped: same shapes, different logits.
    pair = ("blocks.2.norm1_proj.weight", "blocks.5.norm1_proj.weight")
    assert_swap_is_caught("tnt_small", res, FAMILY, LAYOUT, pair, monkeypatch)
    # The right file, with one inner MLP's GELU replaced by ReLU.
    model = load_as_variant("TNT_small", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model), res.logits)
    model.blocks[6].mlp_in.act = make_act("relu")
    assert_logits_differ(model, res)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("TNT_small", "paddleclas")
    # At 64 the patch position table is resized to the 4x4 grid.
    assert_load_options_work(
        "TNT_small", "paddleclas", res, cleanup, monkeypatch, X224[:, :, :64, :64], maps=[[1, 384, 4, 4]] * 4
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("TNT_small", "paddleclas")
    model = load_as_variant("TNT_small", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
