"""Swin Transformer: windows, masks, relative position bias, layout and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``swin_transformer`` family,
PaddleClas's ``legendary_models`` class gets random weights, saves them with ``paddle.save``
(its ``relative_position_index`` buffers included) and reports eval logits on the 224 input;
``load_model`` must restore that file, served at the variant's URL, and give the same logits.
The base and 22k->1k files of a model share one architecture and so one oracle run. Swin has
no absolute position table, so the window-12 (384) models run at 224 too: their grids (56, 28,
14, 7) are then padded to multiples of 12 and shifted-window masks built on the padded grid,
the path PaddleClas takes for any size that is not a multiple of 32 x window.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.swin_transformer import MASK_VALUE, relative_position_index, shifted_window_mask

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (shared_oracles is a fixture)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_new_head_keeps_the_rest,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "swin_transformer"
LAYOUT = "paddleclas_legendary"
SIZES = (
    "tiny_patch4_window7_224",
    "small_patch4_window7_224",
    "base_patch4_window7_224",
    "base_patch4_window12_384",
    "large_patch4_window7_224",
    "large_patch4_window12_384",
)
NAMES = tuple(f"SwinTransformer_{s}" for s in SIZES)
WITH_22K = {n for n in NAMES if "_base_" in n or "_large_" in n}


# --------------------------------------------------------------------------- windows and masks


def test_relative_position_index_pairs_every_offset_once_per_row():
    idx = relative_position_index(3)
    assert idx.shape == (9, 9) and idx.dtype == np.int64
    # (0,0) to itself is the centre of the 5x5 table; to (2,2) is offset (-2,-2) -> row 0.
    assert idx[0, 0] == 12 and idx[0, 8] == 0 and idx[8, 0] == 24
    for row in idx:
        assert len(set(row.tolist())) == 9
    # the offset from i to j mirrors the offset from j to i around the centre
    np.testing.assert_array_equal(idx + idx.T, np.full((9, 9), 24))


def test_shifted_window_mask_separates_the_wrapped_regions():
    mask = shifted_window_mask(4, 4, window=2, shift=1)
    assert mask.shape == (4, 4, 4) and set(np.unique(mask)) == {0.0, MASK_VALUE}
    # Window 0 (top-left) lies in one region: nothing masked.
    assert not mask[0].any()
    # The bottom-right window holds one token of each of the four wrapped regions.
    np.testing.assert_array_equal(mask[3] == 0, np.eye(4, dtype=bool))
    # The top-right window mixes two columns' regions: tokens 0, 2 (left) vs 1, 3 (right).
    np.testing.assert_array_equal(mask[1] == 0, np.array([[1, 0, 1, 0], [0, 1, 0, 1]] * 2, dtype=bool))


def test_blocks_alternate_shift_and_stages_keep_paddleclas_widths():
    model = lazy("swin_base_patch4_window12_384")
    assert [len(s.blocks) for s in model.layers] == [2, 2, 18, 2]
    assert [s.blocks[0].attn.num_heads for s in model.layers] == [4, 8, 16, 32]
    # PaddleClas keeps the shift in stage 4 too (7x7 grid at 224, 12x12 at 384).
    assert [b.shift for b in model.layers[3].blocks] == [0, 6]
    assert model.layers[0].blocks[0].attn.relative_position_bias_table.shape == [23 * 23, 4]
    assert [s.downsample is None for s in model.layers] == [False, False, False, True]
    assert model.layers[2].downsample.reduction.weight.shape == [4 * 512, 2 * 512]
    assert model.num_features == 1024


@pytest.mark.parametrize("side", [224, 100])
def test_any_input_size_pads_to_whole_windows(side):
    paddle.seed(0)
    model = get_builder("swin_tiny_patch4_window7_224")(num_classes=0)
    model.eval()
    with paddle.no_grad():
        fmap = model.forward_features(paddle.randn([1, 3, side, side]))
    # 224 -> 56, 28, 14, 7; 100 -> 25, 13, 7, 4 (each patch merging rounds up)
    assert fmap.shape == [1, 768, 7, 7] if side == 224 else [1, 768, 4, 4]


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("swin_tiny_patch4_window7_224"))
    for key in (
        "patch_embed.norm.weight",
        "layers.0.blocks.1.attn.relative_position_index",
        "layers.2.blocks.5.attn.relative_position_bias_table",
        "layers.2.downsample.reduction.weight",
        "layers.3.blocks.1.mlp.fc2.bias",
        "norm.weight",
        "head.bias",
    ):
        assert mapping[key] == key
    assert "layers.3.downsample.norm.weight" not in mapping


def test_a_window7_file_does_not_fit_a_window12_graph():
    w7, w12 = lazy("swin_base_patch4_window7_224"), lazy("swin_base_patch4_window12_384")
    tensors = {
        k: np.zeros(v.shape, v.numpy().dtype if k.endswith("_index") else "float32")
        for k, v in w7.state_dict().items()
    }
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(
            w12, tensors, LAYOUT, FAMILY, origin="SwinTransformer_base_patch4_window7_224_pretrained.pdparams"
        )
    msg = str(err.value)
    assert "layers.0.blocks.0.attn.relative_position_bias_table: source [169, 4] vs network [529, 4]" in msg
    assert "layers.0.blocks.0.attn.relative_position_index: source [49, 49] vs network [144, 144]" in msg


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    want = [(n, "paddleclas") for n in NAMES] + [(n, "paddleclas_22kto1k") for n in WITH_22K]
    assert sorted(variants) == sorted(want)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == {LAYOUT}
    # PaddleClas's large builders default to use_imagenet22kto1k_pretrained=True.
    assert {n: REGISTRY.get(n).default_weights for n in NAMES if "_large_" in n} == {
        n: "paddleclas_22kto1k" for n in NAMES if "_large_" in n
    }


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, tmp_path, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, tmp_path, monkeypatch)
    assert_fidelity(model, res, record_property)
    assert model.load_report is not None


def test_a_swapped_tensor_a_lost_shift_or_a_wrong_activation_changes_the_logits(
    shared_oracles, tmp_path, monkeypatch
):
    name = "SwinTransformer_tiny_patch4_window7_224"
    res = shared_oracles(name, "paddleclas")
    model = load_as_variant(name, "paddleclas", res.path, tmp_path, monkeypatch)
    # The fidelity tolerance, and ten times it: a change past that would fail a fidelity test.
    # (With random weights a swapped bias table moves the logits by ~0.5 % of their scale.)
    tol = 1e-4 * max(1.0, float(np.abs(res.logits).max()))
    detectable = 10 * tol

    def off(m) -> float:
        return float(np.abs(logits_of(m, X224) - res.logits).max())

    state = {k: v.numpy() for k, v in model.state_dict().items()}
    table = "layers.1.blocks.{}.attn.relative_position_bias_table"
    state[table.format(0)], state[table.format(1)] = state[table.format(1)], state[table.format(0)]
    wrong = get_builder("swin_tiny_patch4_window7_224")()
    wrong.set_state_dict(state)
    assert off(wrong) > detectable
    # Undo the swap, then drop stage 3's shifts: the masks and rolls matter.
    wrong.set_state_dict(model.state_dict())
    assert off(wrong) < tol
    for block in wrong.layers[2].blocks:
        block.shift = 0
    assert off(wrong) > detectable
    for stage in model.layers:
        for block in stage.blocks:
            block.mlp.act = paddle.nn.ReLU()
    assert off(model) > detectable


def test_ten_classes_reset_the_head_and_keep_every_other_weight(shared_oracles, tmp_path, monkeypatch):
    name = "SwinTransformer_tiny_patch4_window7_224"
    res = shared_oracles(name, "paddleclas")
    full = load_as_variant(name, "paddleclas", res.path, tmp_path, monkeypatch)
    ten = load_model(name, weights="paddleclas", num_classes=10, cache_dir=tmp_path / "cache")
    assert_new_head_keeps_the_rest(full, ten, ["head.weight", "head.bias"])
