"""GoogLeNet: graph, auxiliary heads, layouts, and fidelity to the three weight sources.

Fidelity (``tests/_modelcheck.py``): each variant's oracle file is served from a
127.0.0.1 HTTP server as a mirror of the variant's URL; besides the main logits, both
auxiliary outputs (and, for the 2019 graph, its softmax outputs) are compared.
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
from paddlehub_cls.models.googlenet import GoogLeNetOutputs

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (oracles is a fixture)
    X224,
    assert_fidelity,
    assert_logits_close,
    assert_new_head_keeps_the_rest,
    eval_loss,
    lazy,
    load_as_variant,
    numel,
    oracles,
    train_losses,
    trainable,
)

NAME = "GoogLeNet"
FAMILY = "googlenet"
TAGS = ("fluid2019", "paddleclas", "paddle_vision")
AUX_KEYS = ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias"]


def eval_outputs(model, x: np.ndarray = X224) -> GoogLeNetOutputs:
    model.eval()
    with paddle.no_grad():
        out = model.forward_with_aux(paddle.to_tensor(x))
    return GoogLeNetOutputs(*(t.numpy() for t in out))


# --------------------------------------------------------------------------- graph


def test_training_mode_returns_main_and_both_aux_logits():
    paddle.seed(0)
    model = get_builder("googlenet")(num_classes=7)
    model.train()
    out = model(paddle.to_tensor(X224))
    assert isinstance(out, GoogLeNetOutputs)
    assert [list(t.shape) for t in out] == [[1, 7]] * 3
    model.aux_logits = False
    single = model(paddle.to_tensor(X224))
    assert isinstance(single, paddle.Tensor) and single.shape == [1, 7]


def test_aux_heads_refuse_inputs_whose_pooled_map_is_not_3x3():
    model = get_builder("googlenet")()
    model.train()
    with pytest.raises(ValueError, match=r"3x3 pooled map .* got 1x1; call model.eval\(\)"):
        model(paddle.randn([1, 3, 128, 128]))
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, 128, 128])).shape == [1, 1000]


def test_main_dropout_scales_pooled_features_by_0_6_at_inference():
    # downscale_in_infer (every GoogLeNet release): logits = fc(0.6 * pooled features).
    paddle.seed(1)
    model = get_builder("googlenet")()
    model.eval()
    with paddle.no_grad():
        feats = model.forward_head(model.forward_features(paddle.to_tensor(X224)), pre_logits=True)
        expected = paddle.matmul(0.6 * feats, model.fc.weight) + model.fc.bias
        np.testing.assert_allclose(
            model(paddle.to_tensor(X224)).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5
        )
        upscale = get_builder("googlenet")(dropout_mode="upscale_in_train")
        upscale.set_state_dict(model.state_dict())
        upscale.eval()
        unscaled = paddle.matmul(feats, model.fc.weight) + model.fc.bias
        np.testing.assert_allclose(
            upscale(paddle.to_tensor(X224)).numpy(), unscaled.numpy(), rtol=1e-5, atol=1e-5
        )
    with pytest.raises(ValueError, match="dropout_mode"):
        get_builder("googlenet")(dropout_mode="sometimes")


def test_reset_classifier_resets_the_main_and_both_aux_heads():
    paddle.seed(2)
    model = get_builder("googlenet")()
    assert model.classifier_keys() == AUX_KEYS + ["fc.weight", "fc.bias"]
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.reset_classifier(10)
    assert model.num_classes == 10
    sd = model.state_dict()
    for key in ("fc.weight", "aux1.fc2.weight", "aux2.fc2.weight"):
        assert list(sd[key].shape) == [1024, 10]
    for key, value in before.items():
        if key not in model.classifier_keys():
            np.testing.assert_array_equal(sd[key].numpy(), value, err_msg=key)
    model.train()
    assert [list(t.shape) for t in model(paddle.to_tensor(X224))] == [[1, 10]] * 3


def test_num_classes_zero_gives_pooled_features_and_no_aux_logits():
    paddle.seed(3)
    model = get_builder("googlenet")(num_classes=0)
    assert all(k not in model.state_dict() for k in ["fc.weight"] + AUX_KEYS)
    model.eval()
    x = paddle.randn([1, 3, 96, 128])
    with paddle.no_grad():
        pooled = model(x)
        assert pooled.shape == [1, 1024]
    model.train()
    assert model(x).shape == [1, 1024]  # no aux tuple without a classifier
    with pytest.raises(ValueError, match="num_classes=0"):
        model.forward_with_aux(x)
    model.reset_classifier(4)
    model.eval()
    with paddle.no_grad():
        assert model(x).shape == [1, 4]
        model.reset_classifier(0)
        np.testing.assert_allclose(model(x).numpy(), pooled.numpy(), rtol=1e-6)


def test_a_few_sgd_steps_with_aux_losses_lower_the_loss():
    paddle.seed(5)
    model = get_builder("googlenet")(num_classes=4)
    x = paddle.randn([2, 3, 224, 224])
    y = paddle.to_tensor([[1], [3]], dtype="int64")
    opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=model.parameters())
    ce = paddle.nn.functional.cross_entropy

    def with_aux(out, label):
        return ce(out.logits, label) + 0.3 * (ce(out.aux_logits1, label) + ce(out.aux_logits2, label))

    start = eval_loss(model, x, y)
    train_losses(model, x, y, opt, 3, loss_of=with_aux)
    assert eval_loss(model, x, y) < start


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_the_sources():
    model = lazy("googlenet")
    fluid = get_layout(FAMILY, "fluid2019")(model)
    assert fluid["conv2_reduce.weight"] == "conv2_1x1_weights"
    assert fluid["inception3a.branch4_proj.weight"] == "inception_ince3a_3x3_proj_weights"
    assert fluid["inception5b.branch3_reduce.weight"] == "inception_ince5b_5x5_reduce_weights"
    assert (fluid["fc.weight"], fluid["fc.bias"]) == ("out_weights", "out_offset")
    assert fluid["aux1.fc1.weight"] == "fc_o1_weights" and fluid["aux2.fc2.bias"] == "out2_offset"
    assert fluid["aux2.conv.weight"] == "conv_o2_weights"
    for layout in ("paddleclas_model_zoo", "paddle_vision"):
        m = get_layout(FAMILY, layout)(model)
        assert m["conv1.weight"] == "_conv._conv.weight"
        assert m["conv2.weight"] == "_conv_2._conv.weight"
        assert m["inception4e.branch2_reduce.weight"] == "_ince4e._conv3r._conv.weight"
        assert m["fc.bias"] == "_fc_out.bias"
        assert m["aux1.fc1.weight"] == "_fc_o1.weight" and m["aux2.fc2.weight"] == "_out2.weight"


def test_layout_mismatch_lists_missing_unexpected_and_misshaped():
    model = lazy("googlenet")
    ours = model.state_dict()
    mapping = get_layout(FAMILY, "fluid2019")(model)
    tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in mapping.items()}
    del tensors["conv_o2_weights"]
    tensors["fc_0.w_0"] = np.zeros([1024, 1000], "float32")
    tensors["fc_o1_weights"] = np.zeros([2048, 1024], "float32")
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(model, tensors, "fluid2019", FAMILY, origin="GoogleNet_pretrained")
    msg = str(err.value)
    assert "missing (1): conv_o2_weights" in msg
    assert "unexpected (1): fc_0.w_0" in msg
    assert "fc_o1_weights: source [2048, 1024] vs network [1152, 1024]" in msg


# --------------------------------------------------------------------------- parameter counts


def test_param_count_with_and_without_the_aux_heads():
    # The figures the registry note cites: the published 8.46 M (PaddleClas docs) is neither.
    ours = lazy("googlenet")
    assert numel(ours) == trainable(ours) == 11_535_736
    aux = sum(int(np.prod(v.shape)) for k, v in ours.state_dict().items() if k.startswith("aux"))
    assert numel(ours) - aux == 6_991_272


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("tag", TAGS)
def test_fidelity(tag, oracles, http_server, cache_env, tmp_path, monkeypatch, record_property):
    res = oracles(NAME, tag)
    model = load_as_variant(NAME, tag, res.path, tmp_path, monkeypatch, server=http_server)
    assert_fidelity(model, res, record_property)
    ours = eval_outputs(model)
    ref = np.load(res.outputs_path)
    # The first auxiliary head is the same graph in every source.
    assert_logits_close(ours.aux_logits1, ref["aux1" if tag == "fluid2019" else "out1"])
    if tag == "fluid2019":
        assert_logits_close(ours.aux_logits2, ref["aux2"])
        # The 2019 graph ends each fc in softmax: its probabilities, not only its logits, match.
        for ours_logits, key in (
            (ours.logits, "softmax"),
            (ours.aux_logits1, "softmax1"),
            (ours.aux_logits2, "softmax2"),
        ):
            probs = paddle.nn.functional.softmax(paddle.to_tensor(ours_logits)).numpy()
            np.testing.assert_allclose(probs, ref[key], rtol=0, atol=1e-5, err_msg=key)
    else:
        # PaddleClas (and paddle.vision, derived from it) drop the ReLU after _fc_o2;
        # we keep the 2019 graph's, so only this auxiliary output differs.
        assert not np.allclose(ours.aux_logits2, ref["out2"], rtol=1e-3, atol=1e-3)


def test_new_head_keeps_every_other_weight_of_the_source(
    oracles, http_server, cache_env, tmp_path, monkeypatch
):
    res = oracles(NAME, "paddle_vision")
    full = load_as_variant(NAME, "paddle_vision", res.path, tmp_path, monkeypatch, server=http_server)
    ten = load_model(NAME, weights="paddle_vision", num_classes=10, cache_dir=tmp_path / "cache")
    assert_new_head_keeps_the_rest(full, ten, AUX_KEYS + ["fc.weight", "fc.bias"])


def test_one_input_channel_sums_the_first_conv_over_rgb(oracles, tmp_path):
    res = oracles(NAME, "paddle_vision")
    rgb = load_model(NAME, weights=str(res.path), cache_dir=tmp_path / "cache")
    gray = load_model(NAME, weights=str(res.path), in_chans=1, cache_dir=tmp_path / "cache")
    assert list(gray.load_report.adapted) == ["conv1.weight"]
    np.testing.assert_allclose(
        gray.conv1.weight.numpy(), rgb.conv1.weight.numpy().sum(axis=1, keepdims=True), rtol=1e-6
    )
    x = X224[:, :1]
    with paddle.no_grad():
        # A grey image repeated over RGB gives the same logits as the summed filter on one channel.
        np.testing.assert_allclose(
            gray(paddle.to_tensor(x)).numpy(),
            rgb(paddle.to_tensor(np.repeat(x, 3, axis=1))).numpy(),
            rtol=1e-4,
            atol=1e-4,
        )
