"""DPN68/92/98/107/131 (PaddleClas ``model_zoo/dpn.py``): graph, names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``dpn`` family, PaddleClas
2.6.0's own builder runs in a subprocess with random weights, writes them with ``paddle.save``
and reports eval logits on a 96x96 input (its last map is then 3x3); ``load_model`` must
restore that file, served at the variant's real URL, and give the same logits. Expected shapes
below are those of PaddleClas's state_dict of ``DPN68()``. The checks every architecture
shares are in ``test_models_common.py``.
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

FAMILY = "dpn"
LAYOUT = "paddleclas_model_zoo"
VARIANTS = [(f"DPN{d}", "paddleclas") for d in (68, 92, 98, 107, 131)]  # ZOO_FACTS rows 45-49
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_paths_and_widths_follow_paddleclas():
    sd = lazy("dpn68").state_dict()
    assert len(sd) == 361  # PaddleClas DPN68's state_dict
    assert sd["stem.conv.weight"].shape == [10, 3, 3, 3]
    # stage 1: R = 128 * 64 // 64 = 128; projection to 64 + 2 * 16
    assert sd["blocks.0.proj.conv.weight"].shape == [96, 10, 1, 1]
    assert sd["blocks.0.conv_b.conv.weight"].shape == [128, 4, 3, 3]  # 32 groups
    assert sd["blocks.0.conv_c.conv.weight"].shape == [80, 128, 1, 1]
    assert sd["blocks.1.conv_a.bn._mean"].shape == [64 + 3 * 16]  # pre-activation BN of the input
    assert "blocks.1.proj.conv.weight" not in sd
    assert sd["blocks.3.proj.conv.weight"].shape == [128 + 2 * 32, 64 + 5 * 16, 1, 1]
    assert sd["head_norm.0.weight"].shape == [832]
    assert sd["fc.weight"].shape == [832, 1000]
    assert lazy("dpn92").stem.conv.weight.shape == [64, 3, 7, 7]
    assert [len(lazy(f"dpn{d}").blocks) for d in (92, 98, 107, 131)] == [30, 32, 35, 43]


def test_a_block_adds_to_the_residual_path_and_appends_to_the_dense_path():
    paddle.seed(3)
    block = get_builder("dpn68")().blocks[1]  # a plain block: 64 residual + 48 dense channels
    block.eval()
    x = paddle.randn([1, 112, 5, 5])
    with paddle.no_grad():
        y = block.conv_c(block.conv_b(block.conv_a(x)))
        out = block(x)
    assert out.shape == [1, 128, 5, 5]
    np.testing.assert_allclose(out[:, :64].numpy(), (x[:, :64] + y[:, :64]).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[:, 64:112].numpy(), x[:, 64:].numpy())
    np.testing.assert_array_equal(out[:, 112:].numpy(), y[:, 64:].numpy())


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("dpn68"))
    assert mapping["stem.conv.weight"] == "conv1_x_1_func._conv.weight"
    assert mapping["stem.bn._variance"] == "conv1_x_1_func._batch_norm._variance"
    assert mapping["blocks.0.proj.bn.weight"] == "dpn1.c1x1_w_func._batch_norm.weight"
    assert mapping["blocks.3.proj.conv.weight"] == "dpn4.c1x1_w_func._conv.weight"
    assert mapping["blocks.21.conv_b.conv.weight"] == "dpn22.c3x3_b_func._conv.weight"
    assert mapping["blocks.7.conv_c.bn.bias"] == "dpn8.c1x1_c_func._batch_norm.bias"
    assert mapping["head_norm.0._mean"] == "conv5_x_x_bn._mean"
    assert mapping["fc.weight"] == "out.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DPN68", "paddleclas")
    # The grouped 3x3 convs of two stage-3 blocks (same shape) swapped in the file: it loads, the logits differ.
    swapped = swapped_copy(
        res.path,
        cleanup / "swapped.pdparams",
        "dpn10.c3x3_b_func._conv.weight",
        "dpn12.c3x3_b_func._conv.weight",
    )
    model = load_as_variant("DPN68", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)
    # The right file, with the final ReLU replaced by GELU.
    model = load_as_variant("DPN68", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.head_norm[1] = make_act("gelu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("DPN68", "paddleclas")
    assert_load_options_work(
        "DPN68",
        "paddleclas",
        res,
        cleanup,
        monkeypatch,
        X,
        maps=[[1, 10, 48, 48], [1, 144, 24, 24], [1, 320, 12, 12], [1, 704, 6, 6], [1, 832, 3, 3]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DPN68", "paddleclas")
    model = load_as_variant("DPN68", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


# After the DPN68 checks: the shared oracle runs keep 3 files, and DPN68 is the first variant.
@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
