"""Res2Net-50 26w_4s/14w_8s and Res2Net-vd 50/101/200: graph, PaddleClas names and fidelity.

Fidelity: for every (model, variant) registry.json lists for the ``res2net`` and ``res2net_vd``
families, PaddleClas 2.6.0's own ``model_zoo/res2net.py`` / ``res2net_vd.py`` builder runs in a
subprocess with random weights (BN statistics included), writes them with ``paddle.save``, and
reports eval logits on a 64x64 input (a 2x2 last map); ``load_model`` must restore that file,
served at the variant's real URL, and give the same logits. A model's base and SSLD files share
one oracle run. Expected source names are copied from PaddleClas's state_dict of
``Res2Net50_26w_4s()`` and ``Res2Net200_vd_26w_4s()``. The checks every architecture shares are
in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.res2net import Res2NetBottleneck

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

FAMILY = "res2net"
FAMILY_VD = "res2net_vd"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 240-247.
VARIANTS = {
    FAMILY: [("Res2Net50_26w_4s", "paddleclas"), ("Res2Net50_14w_8s", "paddleclas")],
    FAMILY_VD: [
        (n, t)
        for n in ("Res2Net50_vd_26w_4s", "Res2Net101_vd_26w_4s", "Res2Net200_vd_26w_4s")
        for t in ("paddleclas", "paddleclas_ssld")
    ],
}
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("builder,split,scales", [("res2net50_26w_4s", 26, 4), ("res2net50_14w_8s", 14, 8)])
def test_split_widths_and_stage_outputs(builder, split, scales):
    model = lazy(builder)
    sd = model.state_dict()
    for s in range(4):
        block = model.stages[s][0]
        width = split * scales * 2**s
        assert len(block.convs) == scales - 1
        assert sd[f"stages.{s}.0.conv1.conv.weight"].shape[0] == width
        assert sd[f"stages.{s}.0.convs.0.conv.weight"].shape == [width // scales] * 2 + [3, 3]
        assert sd[f"stages.{s}.0.conv3.conv.weight"].shape == [256 * 2**s, width, 1, 1]
        # The stride is on the split convs and on the pool of the last group, only in stages 2-4.
        stride = 1 if s == 0 else 2
        assert all(c.conv._stride == [stride, stride] for c in block.convs)
        assert (block.pool is None) == (s == 0)
        assert all(b.pool is None for b in model.stages[s][1:])
    assert sd["stem.conv.weight"].shape == [64, 3, 7, 7]
    assert model.num_features == 2048


def test_stride_decides_between_the_hierarchical_and_the_independent_split():
    paddle.seed(7)
    for stride in (1, 2):
        block = Res2NetBottleneck(16, 16, 32, stride, project=True, scales=4)
        block.eval()
        x = paddle.randn([1, 16, 6, 6])
        with paddle.no_grad():
            parts = paddle.split(block.conv1(x), 4, axis=1)
            outs = []
            for i, conv in enumerate(block.convs):
                outs.append(conv(parts[i] if stride == 2 or i == 0 else parts[i] + outs[-1]))
            last = parts[3] if stride == 1 else paddle.nn.functional.avg_pool2d(parts[3], 3, 2, 1, exclusive=True)
            want = paddle.nn.functional.relu(block.conv3(paddle.concat(outs + [last], 1)) + block.shortcut(x))
            np.testing.assert_allclose(block(x).numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="scales must be an int >= 2 that divides the block width 16, got 3"):
        Res2NetBottleneck(16, 16, 32, 1, project=True, scales=3)


def test_vd_adds_the_deep_stem_and_average_pool_shortcuts_only():
    plain, vd = lazy("res2net50_26w_4s"), lazy("res2net50_vd_26w_4s")
    a, b = plain.state_dict(), vd.state_dict()
    assert sorted(set(a) - set(b)) == sorted(f"stem.{k}" for k in ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance"))
    assert [b[f"stem.{i}.conv.weight"].shape[0] for i in range(3)] == [32, 32, 64]
    assert not hasattr(vd.stages[0][0].shortcut, "pool")
    assert all(isinstance(vd.stages[s][0].shortcut.pool, paddle.nn.AvgPool2D) for s in (1, 2, 3))
    assert [len(s) for s in lazy("res2net200_vd_26w_4s").stages] == [3, 12, 48, 3]


def test_layout_names_follow_paddleclas():
    plain = get_layout(FAMILY, LAYOUT)(lazy("res2net50_26w_4s"))
    assert plain["stem.conv.weight"] == "conv1._conv.weight"
    assert plain["stem.bn._mean"] == "conv1._batch_norm._mean"
    assert plain["stages.0.0.conv1.conv.weight"] == "bb_0_0.conv0._conv.weight"
    assert plain["stages.0.0.convs.2.bn.weight"] == "bb_0_0.res2a_branch2b_3._batch_norm.weight"
    assert plain["stages.2.5.convs.0.conv.weight"] == "bb_2_5.res4f_branch2b_1._conv.weight"
    assert plain["stages.3.0.shortcut.bn._variance"] == "bb_3_0.short._batch_norm._variance"
    assert plain["stages.3.2.conv3.conv.weight"] == "bb_3_2.conv2._conv.weight"
    assert plain["fc.weight"] == "out.weight"
    vd = get_layout(FAMILY_VD, LAYOUT)(lazy("res2net200_vd_26w_4s"))
    assert vd["stem.2.conv.weight"] == "conv1_3._conv.weight"
    # res2net_vd.py numbers the third stage of depth 200 too (res2net.py only at 101/152).
    assert vd["stages.2.47.convs.1.conv.weight"] == "bb_2_47.res4b47_branch2b_2._conv.weight"
    assert vd["stages.1.11.convs.0.bn.bias"] == "bb_1_11.res3l_branch2b_1._batch_norm.bias"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_families_is_covered():
    for family, want in VARIANTS.items():
        assert sorted(family_variants(family)) == sorted(want)
        assert {REGISTRY.resolve(n, t)[1].layout for n, t in want} == {LAYOUT}
        assert {REGISTRY.get(n).default_weights for n, _ in want} == {"paddleclas"}


def test_a_wrong_mapping_or_rule_changes_the_logits(shared_oracles, monkeypatch):
    res = shared_oracles("Res2Net50_26w_4s", "paddleclas")
    # Two split convs of one block exchanged (same shapes): logits far from the oracle's.
    pair = ("stages.1.1.convs.0.conv.weight", "stages.1.1.convs.1.conv.weight")
    assert_swap_is_caught("res2net50_26w_4s", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # A stage's first conv and its shortcut exchanged (different shapes): refused.
    pair = ("stages.2.0.conv1.conv.weight", "stages.2.0.shortcut.conv.weight")
    assert_swap_is_caught("res2net50_26w_4s", res, FAMILY, LAYOUT, pair, monkeypatch, X)


def test_the_stride_one_first_block_adds_its_groups_hierarchically(shared_oracles, cleanup, monkeypatch):
    # PaddleClas decides by stride, not by position: the projected first block of stage 1 chains its groups.
    res = shared_oracles("Res2Net50_26w_4s", "paddleclas")
    model = load_as_variant("Res2Net50_26w_4s", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[0][0].pool = paddle.nn.AvgPool2D(3, 1, 1)  # the "stage" rule of the Res2Net paper
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("Res2Net50_vd_26w_4s", "paddleclas")
    maps = [[1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 2048, 2, 2]]
    assert_load_options_work("Res2Net50_vd_26w_4s", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("Res2Net50_vd_26w_4s", "paddleclas_ssld")
    model = load_as_variant("Res2Net50_vd_26w_4s", "paddleclas_ssld", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


# Last: the runs above leave the 50-layer oracles cached for these (shared_oracles keeps 3).
@pytest.mark.parametrize("name,tag", variant_params(FAMILY) + variant_params(FAMILY_VD))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
