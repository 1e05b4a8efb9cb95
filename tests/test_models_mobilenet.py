"""MobileNetV1 and MobileNetV2: graphs, layouts, and fidelity to the three weight sources.

Fidelity (``tests/_modelcheck.py``): each variant's oracle (paddle.vision, PaddleClas 2.6.0,
the 2019 fluid program) writes random weights in its source's format; ``load_model`` must
restore the file as that registry variant and give the oracle's logits. MobileNetV2 has two
graphs: the 2019 / PaddleClas one with an expand conv in its first block, and paddle.vision's.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from oracles.paddleclas import paddleclas_model_info
from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup is a fixture)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_new_head_keeps_the_rest,
    cleanup,
    lazy,
    load_as_variant,
    logits_of,
    numel,
    run_variant_oracle,
    trainable,
    variant_params,
)

PADDLECLAS = {
    "MobileNetV1": ("ppcls.arch.backbone.legendary_models.mobilenet_v1", "MobileNetV1"),
    "MobileNetV2": ("ppcls.arch.backbone.model_zoo.mobilenet_v2", "MobileNetV2"),
}


# --------------------------------------------------------------------------- graphs


def test_unknown_arch_kwarg_is_refused():
    with pytest.raises(TypeError, match="conv_bias"):
        get_builder("mobilenet_v2")(conv_bias=True)
    with pytest.raises(ValueError, match="dropout_mode"):
        get_builder("mobilenet_v2")(dropout=0.2, dropout_mode="sometimes")


def test_mobilenet_v2_graphs_differ_only_by_the_first_expand_conv():
    with_expand = lazy("mobilenet_v2", expand_first_block=True).state_dict()
    without = lazy("mobilenet_v2", expand_first_block=False).state_dict()
    extra = sorted(set(with_expand) - set(without))
    assert set(without) <= set(with_expand)
    assert extra == sorted(
        f"blocks.0.expand.{k}" for k in ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance")
    )
    assert list(with_expand["blocks.0.expand.conv.weight"].shape) == [32, 32, 1, 1]


def test_mobilenet_v2_residuals_follow_the_2019_shortcut_rule():
    # 2019: every unit but the first of its group adds its input.
    model = lazy("mobilenet_v2")
    firsts = {0, 1, 3, 6, 10, 13, 16}
    assert [b.use_residual for b in model.blocks] == [i not in firsts for i in range(17)]


def test_mobilenet_v2_dropout_is_identity_at_inference():
    paddle.seed(3)
    a = get_builder("mobilenet_v2")(expand_first_block=False, dropout=0.2)
    b = get_builder("mobilenet_v2")(expand_first_block=False, dropout=0.0)
    b.set_state_dict(a.state_dict())
    np.testing.assert_array_equal(logits_of(a, X224[:, :, :64, :64]), logits_of(b, X224[:, :, :64, :64]))


# --------------------------------------------------------------------------- layouts


def test_layout_mismatch_lists_missing_unexpected_and_misshaped():
    model = lazy("mobilenet_v2", expand_first_block=False)
    tensors = {
        src: np.zeros(model.state_dict()[k].shape, "float32")
        for k, src in get_layout("mobilenet_v2", "fluid2019")(model).items()
    }
    del tensors["conv9_bn_mean"]
    tensors["conv2_1_expand_weights"] = np.zeros([32, 32, 1, 1], "float32")  # the 2019 graph's extra conv
    tensors["fc10_weights"] = np.zeros([1280, 10], "float32")
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(model, tensors, "fluid2019", "mobilenet_v2", origin="MobileNetV2_pretrained")
    msg = str(err.value)
    assert "missing (1): conv9_bn_mean" in msg
    assert "unexpected (1): conv2_1_expand_weights" in msg
    assert "fc10_weights: source [1280, 10] vs network [1280, 1000]" in msg


def test_layout_names_follow_the_sources():
    v1, v2 = lazy("mobilenet_v1"), lazy("mobilenet_v2")
    v2v = lazy("mobilenet_v2", expand_first_block=False)
    fl1 = get_layout("mobilenet_v1", "fluid2019")(v1)
    assert fl1["blocks.11.dw.conv.weight"] == "conv5_6_dw_weights"
    assert fl1["blocks.12.pw.bn._variance"] == "conv6_sep_bn_variance"
    vis1 = get_layout("mobilenet_v1", "paddle_vision")(v1)
    assert vis1["blocks.6.dw.bn.weight"] == "conv5_1._depthwise_conv.1.weight"
    fl2 = get_layout("mobilenet_v2", "fluid2019")(v2)
    assert fl2["blocks.2.dw.conv.weight"] == "conv3_2_dwise_weights"
    assert fl2["blocks.16.project.bn.bias"] == "conv8_1_linear_bn_offset"
    zoo = get_layout("mobilenet_v2", "paddleclas_model_zoo")(v2)
    assert zoo["blocks.0.expand.conv.weight"] == "conv2._first_block._expand_conv._conv.weight"
    assert zoo["blocks.5.project.bn._mean"] == "conv4.conv4_3._linear_conv._batch_norm._mean"
    vis = get_layout("mobilenet_v2", "paddle_vision")(v2v)
    assert vis["blocks.0.project.conv.weight"] == "features.1.conv.1.weight"
    assert vis["blocks.1.project.bn._variance"] == "features.2.conv.3._variance"
    assert vis["conv_head.bn.bias"] == "features.18.1.bias"


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", ["MobileNetV1", "MobileNetV2"])
def test_param_count_equals_paddleclas(name, tmp_path):
    info = REGISTRY.get(name)
    ours = lazy(info.architecture, **info.build_kwargs("paddleclas"))
    ref = paddleclas_model_info(*PADDLECLAS[name], {}, out_dir=tmp_path)
    assert numel(ours) == ref["num_params"]
    assert trainable(ours) == ref["num_trainable"]


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("name,tag", variant_params("mobilenet_v1") + variant_params("mobilenet_v2"))
def test_fidelity(name, tag, cleanup, monkeypatch, record_property):
    res = run_variant_oracle(name, tag, cleanup / "oracle")
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property)


def test_new_head_keeps_every_other_weight_of_the_source(cleanup, monkeypatch):
    res = run_variant_oracle("MobileNetV2", "paddleclas", cleanup / "oracle")
    full = load_as_variant("MobileNetV2", "paddleclas", res.path, cleanup, monkeypatch)
    # Same cache: the file is now known (its sha256 was recorded on first use).
    ten = load_model("MobileNetV2", weights="paddleclas", num_classes=10, cache_dir=cleanup / "cache")
    assert_new_head_keeps_the_rest(full, ten, ["fc.weight", "fc.bias"])
