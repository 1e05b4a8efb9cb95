"""MobileNetV1 (x0.25-x1.0) and MobileNetV2 (x0.25-x2.0): graphs, layouts, fidelity to the weight sources.

Fidelity (``tests/_modelcheck.py``): each variant's oracle (paddle.vision, PaddleClas 2.6.0,
the 2019 fluid program) writes random weights in its source's format; ``load_model`` must
restore the file as that registry variant and give the oracle's logits. MobileNetV2 has two
graphs: the 2019 / PaddleClas one with an expand conv in its first block, and paddle.vision's.
PaddleClas variants (every width, base and SSLD) run on a 64x64 input, and a model's base and
SSLD weights share one oracle run (the ``oracles`` fixture).
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
from _modelcheck import (  # noqa: E402, F401  (cleanup and oracles are fixtures)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_published_count_near,
    assert_logits_close,
    assert_new_head_keeps_the_rest,
    cleanup,
    lazy,
    load_as_variant,
    load_via_layout,
    logits_of,
    numel,
    oracles,
    run_variant_oracle,
    source_tensors,
    swap_sources,
    trainable,
    variant_params,
)

PADDLECLAS = {
    "MobileNetV1": ("ppcls.arch.backbone.legendary_models.mobilenet_v1", "MobileNetV1"),
    "MobileNetV2": ("ppcls.arch.backbone.model_zoo.mobilenet_v2", "MobileNetV2"),
}
X64 = np.ascontiguousarray(X224[:, :, :64, :64])
V1_WIDTHS = {"MobileNetV1_x0_25": 0.25, "MobileNetV1_x0_5": 0.5, "MobileNetV1_x0_75": 0.75}
V2_WIDTHS = {
    "MobileNetV2_x0_25": 0.25,
    "MobileNetV2_x0_5": 0.5,
    "MobileNetV2_x0_75": 0.75,
    "MobileNetV2_x1_5": 1.5,
    "MobileNetV2_x2_0": 2.0,
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


def test_mobilenet_v1_width_scales_every_channel_rounding_down():
    sd = lazy("mobilenet_v1_x0_75").state_dict()
    assert sd["stem.conv.weight"].shape == [24, 3, 3, 3]
    assert sd["blocks.0.dw.conv.weight"].shape == [24, 1, 3, 3]
    assert sd["blocks.0.pw.conv.weight"].shape == [48, 24, 1, 1]
    assert sd["blocks.12.pw.conv.weight"].shape == [768, 768, 1, 1]
    assert sd["fc.weight"].shape == [768, 1000]
    assert lazy("mobilenet_v1_x0_25").num_features == 256
    with pytest.raises(ValueError, match="scale.*0"):
        from paddlehub_cls.models.mobilenet_v1 import MobileNetV1

        MobileNetV1(scale=0)


def test_mobilenet_v2_width_keeps_the_1280_head_below_x1():
    small, large = lazy("mobilenet_v2_x0_25"), lazy("mobilenet_v2_x1_5")
    s, b = small.state_dict(), large.state_dict()
    assert s["stem.conv.weight"].shape == [8, 3, 3, 3]
    assert s["blocks.0.expand.conv.weight"].shape == [8, 8, 1, 1]  # the expand conv of the PaddleClas graph
    assert s["blocks.1.expand.conv.weight"].shape == [24, 4, 1, 1]  # round(4 * 6)
    assert s["conv_head.conv.weight"].shape == [1280, 80, 1, 1] and small.num_features == 1280
    assert b["blocks.16.project.conv.weight"].shape == [480, 1440, 1, 1]  # 6 * int(160 * 1.5)
    assert b["conv_head.conv.weight"].shape == [1920, 480, 1, 1] and large.num_features == 1920
    x1 = lazy("mobilenet_v2")
    assert [blk.use_residual for blk in small.blocks] == [blk.use_residual for blk in x1.blocks]


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
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    if REGISTRY.resolve(name, tag)[1].layout.startswith("paddleclas"):
        x, res = X64, oracles(name, tag, X64)
    else:
        x, res = X224, run_variant_oracle(name, tag, cleanup / "oracle")
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=x)


def test_every_width_and_ssld_file_is_registered():
    for names, family in ((V1_WIDTHS, "mobilenet_v1"), (V2_WIDTHS, "mobilenet_v2")):
        for name in names:
            info = REGISTRY.get(name)
            assert info.family == family and list(info.weights) == ["paddleclas"]
            assert info.architecture == name.lower().replace("mobilenetv", "mobilenet_v")
    for name in ("MobileNetV1", "MobileNetV2"):
        base, ssld = (REGISTRY.resolve(name, t)[1] for t in ("paddleclas", "paddleclas_ssld"))
        assert ssld.urls[0] == base.urls[0].replace("_pretrained.pdparams", "_ssld_pretrained.pdparams")
        assert ssld.layout == base.layout and ssld.arch_kwargs == base.arch_kwargs


@pytest.mark.parametrize("name", sorted(V1_WIDTHS) + sorted(V2_WIDTHS))
def test_published_param_count_is_near_paddleclas_or_explained(name, oracles):
    res = oracles(name, "paddleclas", X64)
    assert_published_count_near(name, res)


def test_wrong_width_mapping_or_activation_fails(oracles):
    res = oracles("MobileNetV2_x0_5", "paddleclas", X64)
    tensors = source_tensors(res.path)

    def v2(builder, t):
        return load_via_layout(lazy(builder), t, "paddleclas_model_zoo", "mobilenet_v2")

    assert_logits_close(logits_of(v2("mobilenet_v2_x0_5", tensors), X64), res.logits)
    wrong_width = r"conv1._conv.weight: source \[16, 3, 3, 3\] vs network \[8, 3, 3, 3\]"
    with pytest.raises(WeightsMismatchError, match=wrong_width):
        v2("mobilenet_v2_x0_25", tensors)
    swapped = v2(
        "mobilenet_v2_x0_5", swap_sources(tensors, "conv9._batch_norm.weight", "conv9._batch_norm.bias")
    )
    wrong_act = v2("mobilenet_v2_x0_5", tensors)
    wrong_act.conv_head.act = paddle.nn.ReLU()  # ReLU6 in every source
    res1 = oracles("MobileNetV1_x0_25", "paddleclas", X64)
    v1_act = load_via_layout(
        lazy("mobilenet_v1_x0_25"), source_tensors(res1.path), "paddleclas_legendary", "mobilenet_v1"
    )
    assert_logits_close(logits_of(v1_act, X64), res1.logits)
    v1_act.blocks[3].dw.act = paddle.nn.Swish()
    for model, ref in ((swapped, res), (wrong_act, res), (v1_act, res1)):
        with pytest.raises(AssertionError, match="max abs diff"):
            assert_logits_close(logits_of(model, X64), ref.logits)


def test_new_head_keeps_every_other_weight_of_the_source(cleanup, monkeypatch):
    res = run_variant_oracle("MobileNetV2", "paddleclas", cleanup / "oracle")
    full = load_as_variant("MobileNetV2", "paddleclas", res.path, cleanup, monkeypatch)
    # Same cache: the file is now known (its sha256 was recorded on first use).
    ten = load_model("MobileNetV2", weights="paddleclas", num_classes=10, cache_dir=cleanup / "cache")
    assert_new_head_keeps_the_rest(full, ten, ["fc.weight", "fc.bias"])
