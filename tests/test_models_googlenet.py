"""GoogLeNet: graph, auxiliary heads, layouts, and fidelity to the three weight sources.

Fidelity: each oracle (paddle.vision in-process, PaddleClas 2.6.0 and the 2019 fluid
program in subprocesses) gets random weights, writes them in its source's real format
with its own writer, and reports eval logits on a fixed input. The file is served from
a 127.0.0.1 HTTP server as a mirror of the variant's URL and ``load_model`` restores it
as that registry variant; our logits must match.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import paddle
import pytest

from oracles.fluid import run_fluid_oracle
from oracles.paddleclas import run_paddleclas
from oracles.vision import vision_oracle
from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.googlenet import GoogLeNetOutputs
from paddlehub_cls.registry import load_registry

NAME = "GoogLeNet"
FAMILY = "googlenet"
LAYOUTS = ("fluid2019", "paddleclas_model_zoo", "paddle_vision")
TAGS = ("fluid2019", "paddleclas", "paddle_vision")
X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")
AUX_KEYS = ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias"]


def numel(model) -> int:
    return sum(int(np.prod(t.shape)) for t in model.state_dict().values())


def trainable(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def assert_close(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| must be below 1e-4 of the reference's scale; returns it."""
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"
    return diff


def run_oracle(tag: str, out_dir: Path):
    """The oracle of weight variant ``tag``: ``(weights file, main logits)`` plus ``outputs_path``."""
    if tag == "paddle_vision":
        return vision_oracle("googlenet", {}, out_dir, X224)
    if tag == "paddleclas":
        return run_paddleclas("ppcls.arch.backbone.model_zoo.googlenet", "GoogLeNet", {}, out_dir, X224)
    # The 2019 release is named "GoogleNet" (GoogleNet_pretrained.tar).
    return run_fluid_oracle("oracles.fluid_googlenet", "build", {}, "GoogleNet", out_dir, X224)


def load_as_variant(tag: str, weights_file: Path, server, tmp_path: Path, monkeypatch) -> paddle.nn.Layer:
    """``load_model(NAME, weights=tag)`` with ``weights_file`` served at the variant's URL.

    The server is a ``PADDLEHUB_CLS_MIRROR`` holding the file at ``HOST/PATH`` of the
    variant's URL. A variant with a published checksum gets it pinned to our file's
    sha256 through a ``PADDLEHUB_CLS_REGISTRY`` override (the random file is not the
    release); the others are trusted on first use, as for the real release.
    """
    variant = load_registry().resolve(NAME, tag)[1]
    url = urlsplit(variant.urls[0])
    mirror = tmp_path / "mirror"
    dest = mirror / url.netloc / url.path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.link(weights_file, dest)  # a hard link: no copy of the bytes
    server.directory = mirror
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", server.base_url)
    if variant.checksum is not None:
        sha = hashlib.sha256(Path(weights_file).read_bytes()).hexdigest()
        override = tmp_path / "pin.json"
        override.write_text(json.dumps(
            {"schema_version": 1, "models": {NAME: {"weights": {tag: {"checksum": f"sha256:{sha}"}}}}}
        ))
        monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(override))
        model = load_model(NAME, weights=tag, cache_dir=tmp_path / "cache")
    else:
        with pytest.warns(UserWarning, match="trusting it on first use"):
            model = load_model(NAME, weights=tag, cache_dir=tmp_path / "cache")
    assert server.requests_for(url.netloc + url.path), "the weights were not fetched from the mirror"
    assert model.load_report.layout == variant.layout
    assert not model.load_report.filled
    return model


@pytest.fixture(scope="module")
def oracles(tmp_path_factory):
    """Each oracle runs once per module; its files are removed at the end."""
    root = tmp_path_factory.mktemp("googlenet_oracles")
    cache = {}

    def get(tag: str):
        if tag not in cache:
            cache[tag] = run_oracle(tag, root / tag)
        return cache[tag]

    yield get
    shutil.rmtree(root, ignore_errors=True)


def eval_outputs(model, x: np.ndarray = X224) -> GoogLeNetOutputs:
    model.eval()
    with paddle.no_grad():
        out = model.forward_with_aux(paddle.to_tensor(x))
    return GoogLeNetOutputs(*(t.numpy() for t in out))


# --------------------------------------------------------------------------- graph


def test_eval_forward_returns_one_logits_tensor_at_224_and_non_square():
    model = get_builder("googlenet")()
    model.eval()
    with paddle.no_grad():
        out = model(paddle.to_tensor(X224))
        assert isinstance(out, paddle.Tensor) and out.shape == [1, 1000]
        feats = model.forward_features(paddle.randn([2, 3, 160, 192]))
        # The four 3x3/2 max pools have no padding and round down: 160 -> 4, 192 -> 5.
        assert feats.shape == [2, 1024, 4, 5]
        assert model.forward_head(feats).shape == [2, 1000]
        assert model.forward_head(feats, pre_logits=True).shape == [2, 1024]


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
        np.testing.assert_allclose(model(paddle.to_tensor(X224)).numpy(), expected.numpy(),
                                   rtol=1e-5, atol=1e-5)
        upscale = get_builder("googlenet")(dropout_mode="upscale_in_train")
        upscale.set_state_dict(model.state_dict())
        upscale.eval()
        unscaled = paddle.matmul(feats, model.fc.weight) + model.fc.bias
        np.testing.assert_allclose(upscale(paddle.to_tensor(X224)).numpy(), unscaled.numpy(),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dropout_mode"):
        get_builder("googlenet")(dropout_mode="sometimes")


def test_feature_info_matches_the_stage_outputs():
    model = get_builder("googlenet")()
    model.eval()
    layers = dict(model.named_sublayers())
    seen = {}
    hooks = [
        layers[info["module"]].register_forward_post_hook(
            lambda layer, inp, out, key=info["module"]: seen.__setitem__(key, out.shape)
        )
        for info in model.feature_info
    ]
    with paddle.no_grad():
        model(paddle.randn([1, 3, 192, 192]))
    for h in hooks:
        h.remove()
    # The unpadded 3x3/2 pools round down (192 -> 96, 47, 23, 11, 5): the reduction is
    # the power of two nearest to input / map.
    got = [(seen[i["module"]][1], 2 ** round(np.log2(192 / seen[i["module"]][2])))
           for i in model.feature_info]
    assert got == [(i["num_chs"], i["reduction"]) for i in model.feature_info]
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]


def test_reset_classifier_resets_the_main_and_both_aux_heads():
    paddle.seed(2)
    model = get_builder("googlenet")()
    assert model.classifier_keys() == ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias",
                                       "fc.weight", "fc.bias"]
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


def test_in_chans_and_invalid_num_classes():
    model = get_builder("googlenet")(num_classes=5, in_chans=1)
    assert model.state_dict()[f"{model.first_conv}.weight"].shape == [64, 1, 7, 7]
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 1, 64, 64])).shape == [1, 5]
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="num_classes"):
            get_builder("googlenet")(num_classes=bad)


def test_two_models_in_one_process_do_not_share_parameters():
    paddle.seed(4)
    m1, m2 = get_builder("googlenet")(), get_builder("googlenet")()
    names = [p.name for m in (m1, m2) for p in m.parameters()]
    assert len(names) == len(set(names))
    x = paddle.to_tensor(X224[:, :, :96, :96])
    m2.eval()
    with paddle.no_grad():
        before = m2(x).numpy()
        m1.set_state_dict({k: paddle.zeros_like(v) for k, v in m1.state_dict().items()})
        np.testing.assert_array_equal(m2(x).numpy(), before)


def test_a_few_sgd_steps_with_aux_losses_lower_the_loss():
    paddle.seed(5)
    model = get_builder("googlenet")(num_classes=4)
    x = paddle.randn([2, 3, 224, 224])
    y = paddle.to_tensor([[1], [3]], dtype="int64")
    loss_fn = paddle.nn.CrossEntropyLoss()
    opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=model.parameters())

    def eval_loss():
        model.eval()
        with paddle.no_grad():
            return float(loss_fn(model(x), y))

    start = eval_loss()
    model.train()
    for _ in range(3):
        out = model(x)
        loss = loss_fn(out.logits, y) + 0.3 * (loss_fn(out.aux_logits1, y) + loss_fn(out.aux_logits2, y))
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert eval_loss() < start


# --------------------------------------------------------------------------- layouts


def test_every_layout_covers_every_key_one_to_one():
    with paddle.LazyGuard():
        model = get_builder("googlenet")()
    ours = model.state_dict()
    for layout in LAYOUTS:
        mapping = get_layout(FAMILY, layout)(model)
        assert set(mapping) == set(ours), layout
        sources = list(mapping.values())
        assert all(isinstance(s, str) for s in sources), "no GoogLeNet tensor is optional"
        assert len(set(sources)) == len(sources), f"{layout} maps two keys to one source name"
        tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in mapping.items()}
        match = match_layout(model, tensors, layout, FAMILY)
        assert set(match.arrays) == set(ours) and not match.filled


def test_layout_names_follow_the_sources():
    with paddle.LazyGuard():
        model = get_builder("googlenet")()
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
    with paddle.LazyGuard():
        model = get_builder("googlenet")()
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


def test_param_count_equals_paddle_vision_and_the_registry_explains_the_published_figure():
    import paddle.vision.models as pvm

    with paddle.LazyGuard():
        ours = get_builder("googlenet")()
        ref = pvm.googlenet()
    assert numel(ours) == numel(ref) == trainable(ours) == trainable(ref) == 11_535_736
    assert sorted(list(t.shape) for t in ours.state_dict().values()) == \
        sorted(list(t.shape) for t in ref.state_dict().values())
    aux = sum(int(np.prod(v.shape)) for k, v in ours.state_dict().items() if k.startswith("aux"))
    assert numel(ours) - aux == 6_991_272
    # Published 8.46 M (PaddleClas docs) is neither count, so the registry must say so.
    num_params = load_registry().get(NAME).num_params
    published = num_params["value"]
    if abs(numel(ours) - published) / published >= 0.02:
        assert f"{numel(ours):,}" in (num_params.get("note") or ""), num_params


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("tag", TAGS)
def test_fidelity(tag, oracles, http_server, cache_env, tmp_path, monkeypatch, record_property):
    res = oracles(tag)
    model = load_as_variant(tag, res.path, http_server, tmp_path, monkeypatch)
    assert numel(model) == res.num_params
    if "num_trainable" in res.extra:
        assert trainable(model) == res.extra["num_trainable"]
    model.eval()
    with paddle.no_grad():
        logits = model(paddle.to_tensor(X224)).numpy()
    record_property("max_abs_diff", assert_close(logits, res.logits))
    ours = eval_outputs(model)
    ref = np.load(res.outputs_path)
    # The first auxiliary head is the same graph in every source.
    assert_close(ours.aux_logits1, ref["aux1" if tag == "fluid2019" else "out1"])
    if tag == "fluid2019":
        assert_close(ours.aux_logits2, ref["aux2"])
        # The 2019 graph ends each fc in softmax: its probabilities, not only its logits, match.
        for ours_logits, key in ((ours.logits, "softmax"), (ours.aux_logits1, "softmax1"),
                                 (ours.aux_logits2, "softmax2")):
            probs = paddle.nn.functional.softmax(paddle.to_tensor(ours_logits)).numpy()
            np.testing.assert_allclose(probs, ref[key], rtol=0, atol=1e-5, err_msg=key)
    else:
        # PaddleClas (and paddle.vision, derived from it) drop the ReLU after _fc_o2;
        # we keep the 2019 graph's, so only this auxiliary output differs.
        assert not np.allclose(ours.aux_logits2, ref["out2"], rtol=1e-3, atol=1e-3)


def test_new_head_keeps_every_other_weight_of_the_source(oracles, http_server, cache_env, tmp_path,
                                                         monkeypatch):
    res = oracles("paddle_vision")
    full = load_as_variant("paddle_vision", res.path, http_server, tmp_path, monkeypatch)
    ten = load_model(NAME, weights="paddle_vision", num_classes=10, cache_dir=tmp_path / "cache")
    assert ten.num_classes == 10
    assert sorted(ten.load_report.reset) == sorted(["fc.weight", "fc.bias"] + AUX_KEYS)
    a, b = full.state_dict(), ten.state_dict()
    for key in ("fc.weight", "aux1.fc2.weight", "aux2.fc2.weight"):
        assert list(b[key].shape) == [1024, 10]
    for key in a:
        if key not in ten.load_report.reset:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    x = paddle.to_tensor(X224)
    with paddle.no_grad():
        np.testing.assert_allclose(ten.forward_head(ten.forward_features(x), pre_logits=True).numpy(),
                                   full.forward_head(full.forward_features(x), pre_logits=True).numpy(),
                                   rtol=1e-6)
        assert ten(x).shape == [1, 10]


def test_one_input_channel_sums_the_first_conv_over_rgb(oracles, tmp_path):
    res = oracles("paddle_vision")
    rgb = load_model(NAME, weights=str(res.path), cache_dir=tmp_path / "cache")
    gray = load_model(NAME, weights=str(res.path), in_chans=1, cache_dir=tmp_path / "cache")
    assert list(gray.load_report.adapted) == ["conv1.weight"]
    np.testing.assert_allclose(gray.conv1.weight.numpy(), rgb.conv1.weight.numpy().sum(axis=1, keepdims=True),
                               rtol=1e-6)
    x = X224[:, :1]
    with paddle.no_grad():
        # A grey image repeated over RGB gives the same logits as the summed filter on one channel.
        np.testing.assert_allclose(gray(paddle.to_tensor(x)).numpy(),
                                   rgb(paddle.to_tensor(np.repeat(x, 3, axis=1))).numpy(),
                                   rtol=1e-4, atol=1e-4)
