"""Xception 41/65/71 (PaddleClas ``model_zoo/xception.py``): graph, names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``xception`` family, PaddleClas
2.6.0's own builder runs in a subprocess with random weights, writes them with ``paddle.save``
and reports eval logits on a 96x96 input (its last map is then 3x3); ``load_model`` must
restore that file, served at the variant's real URL, and give the same logits. Expected
shapes below are those of PaddleClas's state_dict of ``Xception41()`` and ``Xception71()``.
The checks every architecture shares are in ``test_models_common.py``.
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

FAMILY = "xception"
LAYOUT = "paddleclas_model_zoo"
VARIANTS = [(n, "paddleclas") for n in ("Xception41", "Xception65", "Xception71")]  # ZOO_FACTS rows 367-369
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_flows_and_widths_follow_paddleclas():
    sd = lazy("xception41").state_dict()
    assert len(sd) == 356  # PaddleClas Xception41's state_dict
    assert sd["stem.0.conv.weight"].shape == [32, 3, 3, 3]
    # pointwise first, then depthwise
    assert sd["blocks.0.convs.0.pw.conv.weight"].shape == [128, 64, 1, 1]
    assert sd["blocks.0.convs.0.dw.conv.weight"].shape == [128, 1, 3, 3]
    assert sd["blocks.0.shortcut.weight"].shape == [128, 64, 1, 1]
    assert not any(k.startswith("blocks.0.shortcut.") and "bn" in k for k in sd)
    assert sd["blocks.3.convs.2.dw.bn._mean"].shape == [728]
    assert "blocks.3.shortcut.weight" not in sd
    assert sd["blocks.11.convs.1.pw.conv.weight"].shape == [1024, 728, 1, 1]
    assert sd["head_convs.2.pw.conv.weight"].shape == [2048, 1536, 1, 1]
    assert len(lazy("xception65").blocks) == 3 + 16 + 1
    x71 = lazy("xception71")
    assert len(x71.state_dict()) == 638 and len(x71.blocks) == 5 + 16 + 1
    assert [b.pool.stride for b in x71.blocks[:5]] == [2, 1, 2, 1, 2]


def test_stride_1_entry_blocks_still_max_pool_and_shortcuts_have_no_bn():
    paddle.seed(3)
    block = get_builder("xception71")().blocks[1]  # 128 -> 256, stride 1
    block.eval()
    x = paddle.randn([1, 128, 6, 6])
    with paddle.no_grad():
        y = block.convs[1](paddle.nn.functional.relu(block.convs[0](paddle.nn.functional.relu(x))))
        want = block.shortcut(x) + paddle.nn.functional.max_pool2d(y, 3, stride=1, padding=1)
        np.testing.assert_allclose(block(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("xception41"))
    assert mapping["stem.1.bn.weight"] == "_entry_flow._conv2._batch_norm.weight"
    assert (
        mapping["blocks.1.convs.1.dw.conv.weight"]
        == "_entry_flow._conv_1._conv2._depthwise_conv._conv.weight"
    )
    assert mapping["blocks.1.shortcut.weight"] == "_entry_flow._conv_1._short.weight"
    assert (
        mapping["blocks.3.convs.0.pw.bn._variance"]
        == "_middle_flow._conv_0._conv_0._pointwise_conv._batch_norm._variance"
    )
    assert (
        mapping["blocks.10.convs.2.pw.conv.weight"]
        == "_middle_flow._conv_7._conv_2._pointwise_conv._conv.weight"
    )
    assert (
        mapping["blocks.11.convs.0.pw.conv.weight"]
        == "_exit_flow._conv_0._conv_1._pointwise_conv._conv.weight"
    )
    assert mapping["head_convs.2.dw.bn.bias"] == "_exit_flow._conv_2._depthwise_conv._batch_norm.bias"
    assert mapping["fc.weight"] == "_exit_flow._out.weight"


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
    res = shared_oracles("Xception41", "paddleclas")
    # Two middle blocks' pointwise convs (same shape) swapped in the file: it loads, the logits differ.
    swapped = swapped_copy(
        res.path,
        cleanup / "swapped.pdparams",
        "_middle_flow._conv_2._conv_1._pointwise_conv._conv.weight",
        "_middle_flow._conv_5._conv_1._pointwise_conv._conv.weight",
    )
    model = load_as_variant("Xception41", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)
    # The right file, with the ReLU after the first head conv replaced by GELU.
    model = load_as_variant("Xception41", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.head_convs[1] = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("Xception41", "paddleclas")
    assert_load_options_work(
        "Xception41",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X,
        maps=[[1, 64, 48, 48], [1, 128, 24, 24], [1, 256, 12, 12], [1, 728, 6, 6], [1, 2048, 3, 3]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("Xception41", "paddleclas")
    model = load_as_variant("Xception41", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export", side=X.shape[-1])
