"""Next-ViT small/base/large: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``nextvit`` family, PaddleClas
2.6.0's own ``model_zoo/nextvit.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on a 64x64 input: the smallest side at which
every strided attention still pools at least one key (stage 2: 8x8 tokens over runs of 64;
the last stage is 2x2). The 224 and 384 builders are one network; base and SSLD files share an
oracle run. Expected source names and shapes below are copied from PaddleClas's state_dict of
``NextViT_small_224()``. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import make_act
from paddlehub_cls.models.nextvit import EMHSA

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

FAMILY = "nextvit"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 156-167.
_NAMES = [f"NextViT_{s}_{r}" for s in ("small", "base", "large") for r in (224, 384)]
VARIANTS = [(n, t) for n in _NAMES for t in ("paddleclas", "paddleclas_ssld")]
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_blocks_widths_and_hybrid_pattern_follow_paddleclas():
    model = lazy("nextvit_small")
    sd = model.state_dict()
    assert len(sd) == 411  # PaddleClas NextViT_small_224's state_dict
    assert sd["stem.0.conv.weight"].shape == [64, 3, 3, 3]
    assert sd["features.0.patch_embed.conv.weight"].shape == [96, 64, 1, 1]
    assert sd["features.0.mhca.group_conv3x3.weight"].shape == [96, 32, 3, 3]  # 3 heads of 32
    assert sd["features.0.mlp.conv1.weight"].shape == [288, 96, 1, 1]
    # Block 6 is stage 2's NTB: 192 of its 256 channels attend, the other 64 go through MHCA.
    assert sd["features.6.e_mhsa.q.weight"].shape == [192, 192]
    assert sd["features.6.e_mhsa.norm._mean"].shape == [192]
    assert sd["features.6.projection.conv.weight"].shape == [64, 192, 1, 1]
    assert sd["features.6.mlp.conv1.weight"].shape == [512, 256, 1, 1]
    assert "features.19.e_mhsa.norm.weight" not in sd  # the last stage attends without pooling
    assert sd["fc.weight"].shape == [1024, 1000]
    kinds = [type(b).__name__ for b in model.features]
    assert kinds == ["NCB"] * 6 + ["NTB"] + (["NCB"] * 4 + ["NTB"]) * 2 + ["NCB"] * 2 + ["NTB"]
    for builder, blocks in (("nextvit_base", 30), ("nextvit_large", 40)):
        assert len(lazy(builder).features) == blocks


def test_strided_attention_pools_runs_of_flattened_tokens():
    # PaddleClas pools keys/values with AvgPool1D over the flattened grid, not 2-D windows:
    # on an 8-wide grid with sr 2 a run of 4 tokens is half a row.
    paddle.seed(2)
    attn = EMHSA(64, sr=2)
    attn.eval()
    x = paddle.randn([1, 32, 64])
    pooled = attn.norm(attn.pool(x.transpose([0, 2, 1])))
    runs = x.reshape([1, 8, 4, 64]).mean(2).transpose([0, 2, 1])
    np.testing.assert_allclose(pooled.numpy(), attn.norm(runs).numpy(), rtol=1e-5, atol=1e-6)
    # 2-D 2x2 windows of the 4x8 grid would give another result.
    windows = x.reshape([1, 2, 2, 4, 2, 64]).mean([2, 4]).reshape([1, 8, 64]).transpose([0, 2, 1])
    assert not np.allclose(pooled.numpy(), attn.norm(windows).numpy(), atol=1e-3)


@pytest.mark.parametrize("builder", ["nextvit_small", "levit_128s", "cvt_13", "tnt_small", "dsnet_tiny"])
def test_bad_in_chans_or_drop_path_rate_is_refused(builder):
    # The checks shared by the NextViT, LeViT, CvT, TNT and DSNet constructors (models/_base.py).
    with pytest.raises(ValueError, match=r"in_chans must be a positive int, got 0"):
        get_builder(builder)(in_chans=0)
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\), got 1.5"):
        get_builder(builder)(drop_path_rate=1.5)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("nextvit_small"))
    assert mapping["stem.0.conv.weight"] == "stem.0.conv.weight"
    assert mapping["stem.3.bn._variance"] == "stem.3.norm._variance"
    assert mapping["features.6.e_mhsa.k.weight"] == "features.6.e_mhsa.k.weight"
    assert mapping["norm._mean"] == "norm._mean"
    assert mapping["fc.weight"] == "proj_head.0.weight"
    assert mapping["fc.bias"] == "proj_head.0.bias"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    sizes = {n: REGISTRY.get(n).input_size for n in _NAMES}
    assert {n for n, s in sizes.items() if s == (3, 384, 384)} == {n for n in _NAMES if n.endswith("384")}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("NextViT_small_224", "paddleclas")
    # Key and value projections of one attention swapped: same shapes, different logits.
    assert_swap_is_caught(
        "nextvit_small",
        res,
        FAMILY,
        LAYOUT,
        ("features.6.e_mhsa.k.weight", "features.6.e_mhsa.v.weight"),
        monkeypatch,
        X,
    )
    # The right file, with one MLP's ReLU replaced by GELU.
    model = load_as_variant("NextViT_small_224", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.features[3].mlp.act = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("NextViT_small_224", "paddleclas")
    assert_load_options_work(
        "NextViT_small_224",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X,
        maps=[[1, 96, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("NextViT_small_224", "paddleclas")
    model = load_as_variant("NextViT_small_224", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
