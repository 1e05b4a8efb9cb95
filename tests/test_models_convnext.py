"""ConvNeXt tiny/small/base/large: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``convnext`` family, PaddleClas
2.6.0's own ``model_zoo/convnext.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on a 64x64 input (the network has no fixed
position embedding; its last stage is then 2x2); ``load_model`` must restore that file, served
at the variant's real URL, and give the same logits. PaddleClas's constructor scales its head
with ``set_value``, which a network built under ``paddle.LazyGuard`` cannot do, so its oracle
builds eagerly (``PADDLECLAS_EAGER`` in ``_modelcheck``). Expected source names and shapes
below are copied from PaddleClas's state_dict of ``ConvNeXt_tiny()``. The checks every
architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import LayerNorm2d, make_act

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_logits_close,
    assert_logits_differ,
    assert_load_options_work,
    assert_predictor_matches,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    family_input,
    shared_oracles,
    swapped_copy,
    variant_params,
)

FAMILY = "convnext"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 2-7.
VARIANTS = [
    (n, "paddleclas")
    for n in (
        "ConvNeXt_tiny",
        "ConvNeXt_small",
        "ConvNeXt_base_224",
        "ConvNeXt_base_384",
        "ConvNeXt_large_224",
        "ConvNeXt_large_384",
    )
]
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_stages_blocks_and_widths_follow_paddleclas():
    sd = lazy("convnext_tiny").state_dict()
    assert len(sd) == 182  # PaddleClas ConvNeXt_tiny's state_dict
    assert sd["stem.0.weight"].shape == [96, 3, 4, 4]
    assert sd["stages.1.downsample.1.weight"].shape == [192, 96, 2, 2]
    assert sd["stages.0.blocks.0.dwconv.weight"].shape == [96, 1, 7, 7]
    assert sd["stages.0.blocks.0.pwconv1.weight"].shape == [96, 384]
    assert sd["stages.3.blocks.2.gamma"].shape == [768]
    assert not any(k.startswith("stages.0.downsample") for k in sd)
    for builder, depths, width in (
        ("convnext_small", 27, 768),
        ("convnext_base", 27, 1024),
        ("convnext_large", 27, 1536),
    ):
        model = lazy(builder)
        assert len(model.stages[2].blocks) == depths and model.num_features == width


def test_channels_first_norm_equals_layer_norm_over_channels():
    paddle.seed(3)
    norm = LayerNorm2d(8, epsilon=1e-6)
    norm.weight.set_value(paddle.rand([8]) + 0.5)
    norm.bias.set_value(paddle.rand([8]))
    x = paddle.randn([2, 8, 5, 3]) * 3 + 1
    ref = paddle.nn.functional.layer_norm(x.transpose([0, 2, 3, 1]), [8], norm.weight, norm.bias, 1e-6)
    np.testing.assert_allclose(norm(x).numpy(), ref.transpose([0, 3, 1, 2]).numpy(), rtol=1e-5, atol=1e-5)


def test_drop_path_is_identity_at_inference_and_drops_samples_in_training():
    paddle.seed(4)
    model = get_builder("convnext_tiny")(drop_path_rate=0.5)
    block = model.stages[3].blocks[2]  # the last block: rate 0.5
    assert block.drop_path.p == pytest.approx(0.5) and model.stages[0].blocks[0].drop_path.p == 0.0
    x = paddle.randn([64, 768, 2, 2])
    block.eval()
    with paddle.no_grad():
        kept = block(x)
        branch = kept - x
        block.train()
        dropped = block(x) - x
    per_sample = dropped.abs().sum(axis=[1, 2, 3]).numpy()
    zeroed = per_sample == 0
    assert 0 < zeroed.sum() < 64
    np.testing.assert_allclose(dropped.numpy()[~zeroed], 2 * branch.numpy()[~zeroed], rtol=1e-4, atol=1e-6)


def test_pre_logits_are_the_normalised_pooled_features():
    paddle.seed(5)
    model = get_builder("convnext_tiny")()
    model.eval()
    with paddle.no_grad():
        fmap = model.forward_features(paddle.randn([1, 3, 64, 64]))
        pre = model.forward_head(fmap, pre_logits=True)
        np.testing.assert_allclose(pre.numpy(), model.norm(fmap.mean([2, 3])).numpy(), rtol=1e-6)
        np.testing.assert_allclose(model.forward_head(fmap).numpy(), model.fc(pre).numpy(), rtol=1e-6)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("convnext_tiny"))
    assert mapping["stem.0.weight"] == "downsample_layers.0.0.weight"
    assert mapping["stem.1.bias"] == "downsample_layers.0.1.bias"
    assert mapping["stages.2.downsample.0.weight"] == "downsample_layers.2.0.weight"
    assert mapping["stages.3.downsample.1.bias"] == "downsample_layers.3.1.bias"
    assert mapping["stages.2.blocks.8.gamma"] == "stages.2.8.gamma"
    assert mapping["stages.1.blocks.0.pwconv2.weight"] == "stages.1.0.pwconv2.weight"
    assert mapping["norm.weight"] == "norm.weight"
    assert mapping["fc.weight"] == "head.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    sizes = {n: REGISTRY.get(n).input_size for n, _ in VARIANTS}
    assert {n for n, s in sizes.items() if s == (3, 384, 384)} == {"ConvNeXt_base_384", "ConvNeXt_large_384"}


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("ConvNeXt_tiny", "paddleclas")
    # The layer scales of two blocks swapped in the file: it still loads, but the logits differ.
    swapped = swapped_copy(res.path, cleanup / "swapped.pdparams", "stages.2.3.gamma", "stages.2.4.gamma")
    model = load_as_variant("ConvNeXt_tiny", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more
    # The right file, with one block's GELU replaced by ReLU.
    model = load_as_variant("ConvNeXt_tiny", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[1].blocks[1].act = make_act("relu")
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    # Published parameter counts are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("ConvNeXt_tiny", "paddleclas")
    assert_load_options_work(
        "ConvNeXt_tiny", "paddleclas", res, cleanup, monkeypatch, X, maps=[[1, 96, 16, 16], [1, 192, 8, 8], [1, 384, 4, 4], [1, 768, 2, 2]]
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    # Guards its channels-first layer norm (oneDNN got PaddleClas's mean(1) form wrong).
    res = shared_oracles("ConvNeXt_tiny", "paddleclas")
    model = load_as_variant("ConvNeXt_tiny", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
