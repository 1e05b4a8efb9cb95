"""ViT and DeiT (incl. distilled): graphs, layouts and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``vision_transformer`` and
``distilled_vision_transformer`` families, PaddleClas's own class gets random weights, saves
them with ``paddle.save`` and reports eval logits at the model's native size (a fixed
position table takes no other); ``load_model`` must restore that file, served at the
variant's URL, and give the same logits. One oracle run per architecture.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (shared_oracles is a fixture)
    REGISTRY,
    assert_fidelity,
    assert_new_head_keeps_the_rest,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    oracle_input,
    shared_oracles,
    variant_params,
)

FAMILIES = ("vision_transformer", "distilled_vision_transformer")
LAYOUT = "paddleclas_model_zoo"
VIT = (
    "ViT_small_patch16_224",
    "ViT_base_patch16_224",
    "ViT_base_patch16_384",
    "ViT_base_patch32_384",
    "ViT_large_patch16_224",
    "ViT_large_patch16_384",
    "ViT_large_patch32_384",
)
DEIT = (
    "DeiT_tiny_patch16_224",
    "DeiT_small_patch16_224",
    "DeiT_base_patch16_224",
    "DeiT_base_patch16_384",
    "DeiT_tiny_distilled_patch16_224",
    "DeiT_small_distilled_patch16_224",
    "DeiT_base_distilled_patch16_224",
    "DeiT_base_distilled_patch16_384",
)


# --------------------------------------------------------------------------- graphs


def test_vit_small_keeps_paddleclas_settings():
    model = lazy("vit_small_patch16_224")
    block = model.blocks[0]
    assert len(model.blocks) == 8 and block.attn.num_heads == 8
    assert block.attn.qkv.bias is None  # no qkv bias
    assert block.attn.scale == pytest.approx(768**-0.5)  # not head_dim ** -0.5
    assert block.mlp.fc1.weight.shape == [768, 2304]  # MLP ratio 3
    assert block.norm1._epsilon == 1e-5
    base = lazy("vit_base_patch16_224")
    assert base.blocks[0].attn.qkv.bias.shape == [2304] and base.blocks[0].norm1._epsilon == 1e-6
    assert base.blocks[0].attn.scale == pytest.approx(64**-0.5)


@pytest.mark.parametrize(
    "builder,tokens,width",
    [
        ("vit_base_patch32_384", 1 + 12 * 12, 768),
        ("vit_large_patch16_384", 1 + 24 * 24, 1024),
        ("deit_base_distilled_patch16_384", 2 + 24 * 24, 768),
        ("deit_tiny_distilled_patch16_224", 2 + 14 * 14, 192),
    ],
)
def test_position_table_fits_the_native_grid(builder, tokens, width):
    assert lazy(builder).pos_embed.shape == [1, tokens, width]


def test_distilled_logits_are_the_mean_of_both_heads_and_reset_replaces_both():
    paddle.seed(0)
    model = get_builder("deit_tiny_distilled_patch16_224")()
    model.eval()
    x = paddle.to_tensor(oracle_input("DeiT_tiny_distilled_patch16_224"))
    with paddle.no_grad():
        tokens = model.forward_features(x)
        want = (model.head(tokens[:, 0]) + model.head_dist(tokens[:, 1])) / 2
        np.testing.assert_allclose(model(x).numpy(), want.numpy(), rtol=1e-6)
        pooled = model.forward_head(tokens, pre_logits=True)
        np.testing.assert_allclose(pooled.numpy(), ((tokens[:, 0] + tokens[:, 1]) / 2).numpy(), rtol=1e-6)
        model.reset_classifier(7)
        assert model.head.weight.shape == [192, 7] and model.head_dist.weight.shape == [192, 7]
        assert model.classifier_keys() == ["head.weight", "head.bias", "head_dist.weight", "head_dist.bias"]
        model.reset_classifier(0)
        np.testing.assert_allclose(model(x).numpy(), pooled.numpy(), rtol=1e-6)


def test_other_input_sizes_resize_the_position_table():
    paddle.seed(1)
    model = get_builder("deit_tiny_patch16_224")(num_classes=0)
    model.eval()
    with paddle.no_grad():
        native = model.position_embedding((14, 14))
        assert native is model.pos_embed
        small = model.position_embedding((6, 8))
        assert small.shape == [1, 1 + 48, 192]
        # the class token's row is kept as it is
        np.testing.assert_array_equal(small[:, 0].numpy(), model.pos_embed[:, 0].numpy())
        assert model(paddle.randn([2, 3, 96, 128])).shape == [2, 192]


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_paddleclas():
    mapping = get_layout("distilled_vision_transformer", LAYOUT)(lazy("deit_tiny_distilled_patch16_224"))
    for key in (
        "pos_embed",
        "cls_token",
        "dist_token",
        "patch_embed.proj.weight",
        "blocks.11.attn.qkv.bias",
        "blocks.0.mlp.fc2.weight",
        "norm.bias",
        "head.weight",
        "head_dist.bias",
    ):
        assert mapping[key] == key
    small = get_layout("vision_transformer", LAYOUT)(lazy("vit_small_patch16_224"))
    assert "blocks.0.attn.qkv.bias" not in small and len(small) == 4 + 2 + 8 * 11 + 2


def test_a_deit_file_does_not_fit_the_distilled_graph():
    plain, distilled = lazy("deit_tiny_patch16_224"), lazy("deit_tiny_distilled_patch16_224")
    tensors = {k: np.zeros(v.shape, "float32") for k, v in plain.state_dict().items()}
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(distilled, tensors, LAYOUT, "distilled_vision_transformer", origin="DeiT_tiny.pdparams")
    msg = str(err.value)
    assert "dist_token (for dist_token)" in msg and "head_dist.weight" in msg
    assert "pos_embed: source [1, 197, 192] vs network [1, 198, 192]" in msg


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_families_is_covered():
    variants = family_variants(FAMILIES[0]) + family_variants(FAMILIES[1])
    assert sorted(variants) == sorted((n, "paddleclas") for n in VIT + DEIT)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == {LAYOUT}
    for n in VIT + DEIT:
        side = REGISTRY.get(n).input_size[-1]
        assert oracle_input(n).shape == (1, 3, side, side)


@pytest.mark.parametrize("name,tag", variant_params(FAMILIES[0]) + variant_params(FAMILIES[1]))
def test_fidelity(name, tag, shared_oracles, tmp_path, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, tmp_path, monkeypatch)
    assert_fidelity(model, res, record_property, x=oracle_input(name))


@pytest.mark.parametrize("name", ["ViT_small_patch16_224", "DeiT_tiny_distilled_patch16_224"])
def test_a_swapped_tensor_or_a_wrong_activation_changes_the_logits(
    name, shared_oracles, tmp_path, monkeypatch
):
    res = shared_oracles(name, "paddleclas")
    x = oracle_input(name)
    model = load_as_variant(name, "paddleclas", res.path, tmp_path, monkeypatch)
    scale = 1e-2 * max(1.0, float(np.abs(res.logits).max()))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    swapped = dict(state)
    if "head_dist.weight" in state:
        swapped["head.weight"], swapped["head_dist.weight"] = state["head_dist.weight"], state["head.weight"]
    else:
        swapped["blocks.0.attn.qkv.weight"] = state["blocks.1.attn.qkv.weight"]
        swapped["blocks.1.attn.qkv.weight"] = state["blocks.0.attn.qkv.weight"]
    path = Path(tmp_path) / "swapped.pdparams"
    paddle.save(swapped, str(path))
    wrong = get_builder(REGISTRY.get(name).architecture)()
    wrong.set_state_dict(paddle.load(str(path)))
    assert float(np.abs(logits_of(wrong, x) - res.logits).max()) > scale
    # The MLPs use exact GELU: the tanh approximation is close, ReLU is not.
    for block in model.blocks:
        block.mlp.act = paddle.nn.ReLU()
    assert float(np.abs(logits_of(model, x) - res.logits).max()) > scale


def test_ten_classes_reset_both_distilled_heads_and_keep_every_other_weight(
    shared_oracles, tmp_path, monkeypatch
):
    name = "DeiT_tiny_distilled_patch16_224"
    res = shared_oracles(name, "paddleclas")
    full = load_as_variant(name, "paddleclas", res.path, tmp_path, monkeypatch)
    ten = load_model(name, weights="paddleclas", num_classes=10, cache_dir=tmp_path / "cache")
    assert_new_head_keeps_the_rest(
        full, ten, ["head.weight", "head.bias", "head_dist.weight", "head_dist.bias"]
    )
