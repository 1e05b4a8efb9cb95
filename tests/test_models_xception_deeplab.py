"""Xception41/65_deeplab (PaddleClas ``model_zoo/xception_deeplab.py``): graph, names and fidelity.

Fidelity: for every (model, variant) registry.json lists for the ``xception_deeplab`` family,
PaddleClas 2.6.0's own builder runs in a subprocess with random weights, writes them with
``paddle.save`` and reports eval logits on a 96x96 input (its last map is then 3x3);
``load_model`` must restore that file, served at the variant's real URL, and give the same
logits. Expected names and shapes below are those of PaddleClas's state_dict of
``Xception41_deeplab()``. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import make_act

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

FAMILY = "xception_deeplab"
LAYOUT = "paddleclas_model_zoo"
VARIANTS = [(n, "paddleclas") for n in ("Xception41_deeplab", "Xception65_deeplab")]  # ZOO_FACTS rows 370-371
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_flows_and_widths_follow_paddleclas():
    model = lazy("xception41_deeplab")
    sd = model.state_dict()
    assert len(sd) == 422  # PaddleClas Xception41_deeplab's state_dict
    # depthwise first, then pointwise; the last conv of an entry block is strided
    assert sd["blocks.0.convs.0.dw.conv.weight"].shape == [64, 1, 3, 3]
    assert sd["blocks.0.convs.0.pw.conv.weight"].shape == [128, 64, 1, 1]
    assert model.blocks[0].convs[2].dw.conv._stride == [2, 2]
    assert sd["blocks.0.shortcut.bn._variance"].shape == [128]
    assert "blocks.3.shortcut.conv.weight" not in sd
    assert sd["blocks.11.shortcut.conv.weight"].shape == [1024, 728, 1, 1]
    last = model.blocks[12]
    assert last.shortcut is None and last.convs[0].dw.conv._dilation == [2, 2]
    assert sd["blocks.12.convs.2.pw.conv.weight"].shape == [2048, 1536, 1, 1]
    assert all(
        layer._epsilon == 1e-3 for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)
    )
    assert len(lazy("xception65_deeplab").blocks) == 3 + 16 + 2


def test_the_classifier_sees_half_the_pooled_features():
    paddle.seed(2)
    model = get_builder("xception41_deeplab")()
    model.eval()
    with paddle.no_grad():
        fmap = model.forward_features(paddle.randn([1, 3, 96, 96]))
        pre = model.forward_head(fmap, pre_logits=True)
        np.testing.assert_allclose(pre.numpy(), fmap.mean([2, 3]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model.forward_head(fmap).numpy(), model.fc(0.5 * pre).numpy(), rtol=1e-5, atol=1e-5
        )


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("xception65_deeplab"))
    assert mapping["stem.0.conv.weight"] == "_conv1._conv.weight"
    assert mapping["stem.1.bn._mean"] == "_conv2._bn._mean"
    assert mapping["blocks.0.convs.0.dw.conv.weight"] == "xception_65/entry_flow/block1._conv1._conv1.weight"
    assert mapping["blocks.2.convs.2.pw.bn.bias"] == "xception_65/entry_flow/block3._conv3._bn2.bias"
    assert mapping["blocks.1.shortcut.bn.weight"] == "xception_65/entry_flow/block2._short._bn.weight"
    assert (
        mapping["blocks.18.convs.1.dw.bn._variance"]
        == "xception_65/middle_flow/block16._conv2._bn1._variance"
    )
    assert mapping["blocks.19.shortcut.conv.weight"] == "_exit_flow_1._short._conv.weight"
    assert mapping["blocks.20.convs.2.pw.conv.weight"] == "_exit_flow_2._conv3._conv2.weight"
    assert mapping["fc.weight"] == "_fc.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == VARIANTS
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert {REGISTRY.get(n).input_size for n, _ in VARIANTS} == {(3, 299, 299)}


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("Xception41_deeplab", "paddleclas")
    # Two middle blocks' pointwise convs (same shape) swapped in the file: it loads, the logits differ.
    swapped = swapped_copy(
        res.path,
        cleanup / "swapped.pdparams",
        "xception_41/middle_flow/block2._conv1._conv2.weight",
        "xception_41/middle_flow/block5._conv1._conv2.weight",
    )
    model = load_as_variant("Xception41_deeplab", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)
    # The right file, with the ReLU after one depthwise BN of the last block replaced by GELU.
    model = load_as_variant("Xception41_deeplab", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.blocks[12].convs[1].dw.act = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("Xception41_deeplab", "paddleclas")
    assert_load_options_work(
        "Xception41_deeplab",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X,
        maps=[[1, 64, 48, 48], [1, 128, 24, 24], [1, 256, 12, 12], [1, 728, 6, 6], [1, 2048, 3, 3]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("Xception41_deeplab", "paddleclas")
    model = load_as_variant("Xception41_deeplab", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export", side=X.shape[-1])
