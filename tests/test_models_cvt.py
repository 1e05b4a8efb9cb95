"""CvT-13/21/W24: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``cvt`` family, PaddleClas
2.6.0's own ``model_zoo/cvt.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on a 64x64 input (no position embedding:
the last stage is a 4x4 grid whose keys and values are 2x2). The 224 and 384 builders are
one network and share an oracle run, as do CvT_W24_384's plain and 22k->1k files. Expected
source names and shapes below are copied from PaddleClas's state_dict of ``CvT_13_224()``.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.layers import QuickGELU, make_act

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

FAMILY = "cvt"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 15-20.
VARIANTS = [
    (n, "paddleclas") for n in ("CvT_13_224", "CvT_13_384", "CvT_21_224", "CvT_21_384", "CvT_W24_384")
] + [("CvT_W24_384", "paddleclas_22kto1k")]
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_stages_and_projections_follow_paddleclas():
    sd = lazy("cvt_13").state_dict()
    assert len(sd) == 420  # PaddleClas CvT_13_224's state_dict
    assert sd["stage0.patch_embed.proj.weight"].shape == [64, 3, 7, 7]
    assert sd["stage1.patch_embed.proj.weight"].shape == [192, 64, 3, 3]
    assert sd["stage2.cls_token"].shape == [1, 1, 384]
    assert "stage1.cls_token" not in sd
    assert sd["stage2.blocks.9.attn.conv_proj_k.conv.weight"].shape == [384, 1, 3, 3]
    assert sd["stage2.blocks.9.attn.conv_proj_k.bn._variance"].shape == [384]
    assert sd["stage2.blocks.9.attn.proj_q.bias"].shape == [384]
    assert sd["stage2.blocks.9.mlp.fc1.weight"].shape == [384, 1536]
    assert sd["head.weight"].shape == [384, 1000]
    assert len(lazy("cvt_21").stage2.blocks) == 16
    assert lazy("cvt_w24").num_features == 1024


def test_quick_gelu_and_whole_width_attention_scale():
    x = paddle.linspace(-4, 4, 17)
    np.testing.assert_allclose(
        QuickGELU()(x).numpy(), (x * paddle.nn.functional.sigmoid(1.702 * x)).numpy(), rtol=1e-6
    )
    attn = lazy("cvt_13").stage2.blocks[0].attn
    assert attn.heads == 6 and attn.scale == pytest.approx(384**-0.5)  # not the head width's 64 ** -0.5


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("cvt_13"))
    assert mapping["stage2.cls_token"] == "stage2.cls_token"
    assert mapping["stage0.blocks.0.attn.conv_proj_q.bn._mean"] == "stage0.blocks.0.attn.conv_proj_q.bn._mean"
    assert mapping["head.weight"] == "head.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert REGISTRY.get("CvT_W24_384").default_weights == "paddleclas_22kto1k"
    squash = {n for n, _ in VARIANTS if REGISTRY.get(n).preprocess["resize"] == "squash"}
    assert squash == {"CvT_13_384", "CvT_21_384", "CvT_W24_384"}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("CvT_13_224", "paddleclas")
    # Key and value projections of one block swapped: same shapes, different logits.
    pair = ("stage2.blocks.3.attn.proj_k.weight", "stage2.blocks.3.attn.proj_v.weight")
    assert_swap_is_caught("cvt_13", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with one block's QuickGELU replaced by the exact GELU.
    model = load_as_variant("CvT_13_224", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stage2.blocks[4].mlp.act = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("CvT_13_224", "paddleclas")
    assert_load_options_work(
        "CvT_13_224",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X,
        maps=[[1, 64, 16, 16], [1, 64, 16, 16], [1, 192, 8, 8], [1, 384, 4, 4]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("CvT_13_224", "paddleclas")
    model = load_as_variant("CvT_13_224", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
