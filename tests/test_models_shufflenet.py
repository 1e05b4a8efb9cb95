"""ShuffleNetV2 x1.0 (ReLU and swish) and x0.25-x2.0: graph, layouts, and fidelity to the weight sources.

Fidelity (``tests/_modelcheck.py``): each variant's oracle file is served from a
127.0.0.1 HTTP server as a mirror of the variant's URL; the two releases share every
name, so the activation the builder fixes is what the fidelity tests tell apart. The other
widths (PaddleClas only) run on a 64x64 input.
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
from paddlehub_cls.models.shufflenet_v2 import ShuffleNetV2, channel_shuffle

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (oracles is a fixture)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_published_count_near,
    assert_logits_close,
    assert_new_head_keeps_the_rest,
    lazy,
    load_as_variant,
    load_via_layout,
    logits_of,
    numel,
    oracles,
    source_tensors,
    swap_sources,
    trainable,
    variant_params,
)

FAMILY = "shufflenet_v2"
TAGS = ("fluid2019", "paddleclas", "paddle_vision")
# registry name -> (our builder, activation)
MODELS = {
    "ShuffleNetV2": ("shufflenet_v2_x1_0", "relu"),
    "ShuffleNetV2_swish": ("shufflenet_v2_swish", "swish"),
}
# registry name -> (stage channels, head channels), PaddleClas model_zoo/shufflenet_v2.py
WIDTHS = {
    "ShuffleNetV2_x0_25": ((24, 48, 96), 512),
    "ShuffleNetV2_x0_33": ((32, 64, 128), 512),
    "ShuffleNetV2_x0_5": ((48, 96, 192), 1024),
    "ShuffleNetV2_x1_5": ((176, 352, 704), 1024),
    "ShuffleNetV2_x2_0": ((244, 488, 976), 2048),
}
X64 = np.ascontiguousarray(X224[:, :, :64, :64])


# --------------------------------------------------------------------------- graph


def test_channel_shuffle_interleaves_the_two_halves():
    x = paddle.arange(8, dtype="float32").reshape([1, 8, 1, 1]).tile([2, 1, 3, 2])
    out = channel_shuffle(x, 2)
    assert out.shape == [2, 8, 3, 2]
    np.testing.assert_array_equal(out.numpy()[1, :, 2, 1], [0, 4, 1, 5, 2, 6, 3, 7])


def test_units_split_keep_the_first_half_and_downsample_with_two_branches():
    model = get_builder("shufflenet_v2_x1_0")()
    assert [len(s) for s in model.stages] == [4, 8, 4]
    first, second = model.stages[0][0], model.stages[0][1]
    assert first.stride == 2 and hasattr(first, "branch1_dw") and not hasattr(second, "branch1_dw")
    assert list(first.branch1_dw.conv.weight.shape) == [24, 1, 3, 3]  # depthwise on the unit's input
    assert list(second.branch2_pw1.conv.weight.shape) == [58, 58, 1, 1]  # on the second half only
    second.eval()
    x = paddle.randn([1, 116, 8, 8])
    with paddle.no_grad():
        out = second(x).numpy()
        passed = second.branch2_pw2(second.branch2_dw(second.branch2_pw1(x[:, 58:]))).numpy()
    # After the shuffle, even channels are the kept half and odd channels the branch output.
    np.testing.assert_array_equal(out[:, 0::2], x.numpy()[:, :58])
    np.testing.assert_allclose(out[:, 1::2], passed, rtol=1e-6)


def test_relu_and_swish_graphs_differ_only_by_the_activation():
    paddle.seed(0)
    relu = get_builder("shufflenet_v2_x1_0")()
    swish = get_builder("shufflenet_v2_swish")()
    a, b = relu.state_dict(), swish.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert isinstance(relu.stem.act, paddle.nn.ReLU) and isinstance(swish.stem.act, paddle.nn.Swish)
    swish.set_state_dict(a)
    x = X224[:, :, :96, :96]
    a_logits, b_logits = logits_of(relu, x), logits_of(swish, x)
    # Compare relative to the logits' scale, whatever the initialisation gives.
    assert np.abs(a_logits - b_logits).max() > 0.1 * np.abs(a_logits).max()
    with pytest.raises(TypeError):
        get_builder("shufflenet_v2_x1_0")(act="swish")  # the builder fixes the activation


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="act must be one of .* got 'gelu'"):
        ShuffleNetV2(act="gelu")


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_the_sources():
    model = lazy("shufflenet_v2_swish")
    fluid = get_layout(FAMILY, "fluid2019")(model)
    assert fluid["stem.conv.weight"] == "stage1_conv_weights"
    assert fluid["stem.bn.weight"] == "stage1_conv_bn_scale"
    assert fluid["stages.0.0.branch1_dw.conv.weight"] == "stage_2_1_conv4_weights"
    assert fluid["stages.0.0.branch1_pw.bn.bias"] == "stage_2_1_conv5_bn_offset"
    assert fluid["stages.1.7.branch2_pw1.bn._mean"] == "stage_3_8_conv1_bn_mean"
    assert fluid["stages.2.3.branch2_pw2.bn._variance"] == "stage_4_4_conv3_bn_variance"
    assert fluid["conv_last.conv.weight"] == "conv5_weights"
    assert (fluid["fc.weight"], fluid["fc.bias"]) == ("fc6_weights", "fc6_offset")
    clas = get_layout(FAMILY, "paddleclas_model_zoo")(model)
    assert clas["stem.bn._mean"] == "_conv1._batch_norm._mean"
    assert clas["stages.0.0.branch1_dw.conv.weight"] == "2_1._conv_dw_1._conv.weight"
    assert clas["stages.0.0.branch2_pw2.bn.weight"] == "2_1._conv_linear_2._batch_norm.weight"
    assert clas["stages.0.1.branch2_pw1.bn.weight"] == "2_2._conv_pw._batch_norm.weight"
    assert clas["stages.2.2.branch2_dw.conv.weight"] == "4_3._conv_dw._conv.weight"
    assert clas["conv_last.conv.weight"] == "_last_conv._conv.weight"
    assert clas["fc.weight"] == "_fc.weight"
    vision = get_layout(FAMILY, "paddle_vision")(model)
    assert vision["stem.conv.weight"] == "_conv1.0.weight"
    assert vision["stages.1.0.branch1_pw.bn._variance"] == "3_1._conv_linear_1.1._variance"
    assert vision["stages.1.3.branch2_pw2.conv.weight"] == "3_4._conv_linear.0.weight"
    assert vision["conv_last.bn.bias"] == "_last_conv.1.bias"


def test_layout_mismatch_lists_missing_unexpected_and_misshaped():
    model = lazy("shufflenet_v2_x1_0")
    ours = model.state_dict()
    mapping = get_layout(FAMILY, "fluid2019")(model)
    tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in mapping.items()}
    del tensors["stage_3_1_conv4_bn_variance"]
    tensors["stage_4_5_conv1_weights"] = np.zeros([232, 232, 1, 1], "float32")  # no 5th unit in stage 4
    tensors["fc6_weights"] = np.zeros([1024, 10], "float32")
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(model, tensors, "fluid2019", FAMILY, origin="ShuffleNetV2_pretrained")
    msg = str(err.value)
    assert "missing (1): stage_3_1_conv4_bn_variance" in msg
    assert "unexpected (1): stage_4_5_conv1_weights" in msg
    assert "fc6_weights: source [1024, 10] vs network [1024, 1000]" in msg


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_count_is_the_measured_figure(name):
    ours = lazy(MODELS[name][0])
    assert numel(ours) == 2_294_784
    assert trainable(ours) == 2_278_604


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fidelity(name, tag, oracles, http_server, cache_env, tmp_path, monkeypatch, record_property):
    res = oracles(name, tag)
    model = load_as_variant(name, tag, res.path, tmp_path, monkeypatch, server=http_server)
    assert model.act == MODELS[name][1]
    assert_fidelity(model, res, record_property)


def test_fidelity_needs_the_right_activation(oracles, tmp_path):
    # The swish release loaded into the ReLU graph loads cleanly (same names) but
    # gives other logits: the activation, fixed by the builder, is what tells them apart.
    res = oracles("ShuffleNetV2_swish", "paddle_vision")
    wrong = load_model("ShuffleNetV2", weights=str(res.path), cache_dir=tmp_path / "cache")
    assert not np.allclose(logits_of(wrong), res.logits, rtol=1e-3, atol=1e-3)


def test_new_head_keeps_every_other_weight_of_the_source(oracles, tmp_path):
    res = oracles("ShuffleNetV2", "paddle_vision")
    full = load_model("ShuffleNetV2", weights=str(res.path), cache_dir=tmp_path / "cache")
    ten = load_model("ShuffleNetV2", weights=str(res.path), num_classes=10, cache_dir=tmp_path / "cache")
    assert_new_head_keeps_the_rest(full, ten, ["fc.weight", "fc.bias"])


# --------------------------------------------------------------------------- widths


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_widths_follow_the_paddleclas_table(name):
    stages, head = WIDTHS[name]
    info = REGISTRY.get(name)
    assert info.family == FAMILY and list(info.weights) == ["paddleclas"]
    model = lazy(info.architecture)
    sd = model.state_dict()
    assert sd["stem.conv.weight"].shape == [24, 3, 3, 3]
    for i, c in enumerate(stages):
        assert sd[f"stages.{i}.0.branch1_pw.conv.weight"].shape[0] == c // 2
        assert sd[f"stages.{i}.1.branch2_pw1.conv.weight"].shape == [c // 2, c // 2, 1, 1]
    assert sd["conv_last.conv.weight"].shape == [head, stages[-1], 1, 1]
    assert model.num_features == head and model.act == "relu"


def test_x2_0_is_paddleclas_graph_not_paddle_vision_s():
    import paddle.vision.models as pvm

    with paddle.LazyGuard():
        vision = pvm.shufflenet_v2_x2_0().state_dict()
    ours = lazy("shufflenet_v2_x2_0").state_dict()
    assert vision["2_1._conv_linear_1.0.weight"].shape[0] == 224 // 2
    assert ours["stages.0.0.branch1_pw.conv.weight"].shape[0] == 244 // 2


def test_unknown_width_is_refused():
    with pytest.raises(ValueError, match="scale must be one of .*got 0.75"):
        ShuffleNetV2(scale=0.75)


WIDTH_VARIANTS = [p for p in variant_params(FAMILY) if p.values[0] not in MODELS]


@pytest.mark.parametrize("name,tag", WIDTH_VARIANTS)
def test_width_fidelity(name, tag, oracles, tmp_path, monkeypatch, record_property):
    res = oracles(name, tag, X64)
    model = load_as_variant(name, tag, res.path, tmp_path, monkeypatch)
    assert_fidelity(model, res, record_property, x=X64)
    assert_published_count_near(name, res)


def test_width_variants_cover_the_registry():
    assert sorted(p.values[0] for p in WIDTH_VARIANTS) == sorted(WIDTHS)


def test_wrong_width_mapping_or_activation_fails(oracles):
    res = oracles("ShuffleNetV2_x0_5", "paddleclas", X64)
    tensors = source_tensors(res.path)

    def loaded(builder, t):
        return load_via_layout(lazy(builder), t, "paddleclas_model_zoo", FAMILY)

    assert_logits_close(logits_of(loaded("shufflenet_v2_x0_5", tensors), X64), res.logits)
    wrong_width = r"2_1._conv_linear_1._conv.weight: source \[24, 24, 1, 1\] vs network \[12, 24, 1, 1\]"
    with pytest.raises(WeightsMismatchError, match=wrong_width):
        loaded("shufflenet_v2_x0_25", tensors)
    swapped = swap_sources(
        tensors, "2_1._conv_dw_1._batch_norm.weight", "2_1._conv_linear_1._batch_norm.weight"
    )
    wrong_act = loaded("shufflenet_v2_x0_5", tensors)
    wrong_act.stem.act = paddle.nn.Swish()
    for model in (loaded("shufflenet_v2_x0_5", swapped), wrong_act):
        with pytest.raises(AssertionError, match="max abs diff"):
            assert_logits_close(logits_of(model, X64), res.logits)
