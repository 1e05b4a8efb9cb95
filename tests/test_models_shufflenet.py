"""ShuffleNetV2 x1.0 (ReLU and swish): graph, layouts, and fidelity to the three weight sources.

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
from paddlehub_cls.models.shufflenet_v2 import channel_shuffle
from paddlehub_cls.registry import load_registry

FAMILY = "shufflenet_v2"
LAYOUTS = ("fluid2019", "paddleclas_model_zoo", "paddle_vision")
TAGS = ("fluid2019", "paddleclas", "paddle_vision")
# registry name -> (our builder, activation, paddle.vision builder, PaddleClas builder)
MODELS = {
    "ShuffleNetV2": ("shufflenet_v2_x1_0", "relu", "shufflenet_v2_x1_0", "ShuffleNetV2_x1_0"),
    "ShuffleNetV2_swish": ("shufflenet_v2_swish", "swish", "shufflenet_v2_swish", "ShuffleNetV2_swish"),
}
BUILDERS = [m[0] for m in MODELS.values()]
X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")


def numel(model) -> int:
    return sum(int(np.prod(t.shape)) for t in model.state_dict().values())


def trainable(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def logits_of(model, x: np.ndarray = X224) -> np.ndarray:
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def assert_close(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| must be below 1e-4 of the reference's scale; returns it."""
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"
    return diff


def run_oracle(name: str, tag: str, out_dir: Path):
    """The oracle of ``name``'s weight variant ``tag``: ``(weights file, logits)``."""
    _, act, vision_fn, clas_fn = MODELS[name]
    if tag == "paddle_vision":
        return vision_oracle(vision_fn, {}, out_dir, X224)
    if tag == "paddleclas":
        return run_paddleclas("ppcls.arch.backbone.model_zoo.shufflenet_v2", clas_fn, {}, out_dir, X224)
    return run_fluid_oracle("oracles.fluid_shufflenet_v2", "build", {"act": act}, name, out_dir, X224)


def load_as_variant(name: str, tag: str, weights_file: Path, server, tmp_path: Path, monkeypatch):
    """``load_model(name, weights=tag)`` with ``weights_file`` served at the variant's URL.

    The server is a ``PADDLEHUB_CLS_MIRROR`` holding the file at ``HOST/PATH`` of the
    variant's URL. A variant with a published checksum gets it pinned to our file's
    sha256 through a ``PADDLEHUB_CLS_REGISTRY`` override (the random file is not the
    release); the others are trusted on first use, as for the real release.
    """
    variant = load_registry().resolve(name, tag)[1]
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
            {"schema_version": 1, "models": {name: {"weights": {tag: {"checksum": f"sha256:{sha}"}}}}}
        ))
        monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(override))
        model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    else:
        with pytest.warns(UserWarning, match="trusting it on first use"):
            model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    assert server.requests_for(url.netloc + url.path), "the weights were not fetched from the mirror"
    assert model.load_report.layout == variant.layout
    assert not model.load_report.filled
    return model


@pytest.fixture(scope="module")
def oracles(tmp_path_factory):
    """Each oracle runs once per module; its files are removed at the end."""
    root = tmp_path_factory.mktemp("shufflenet_oracles")
    cache = {}

    def get(name: str, tag: str):
        if (name, tag) not in cache:
            cache[name, tag] = run_oracle(name, tag, root / f"{name}-{tag}")
        return cache[name, tag]

    yield get
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("builder", BUILDERS)
def test_forward_shapes_224_and_non_square(builder):
    model = get_builder(builder)()
    model.eval()
    with paddle.no_grad():
        assert model(paddle.to_tensor(X224)).shape == [1, 1000]
        feats = model.forward_features(paddle.randn([2, 3, 160, 192]))
        assert feats.shape == [2, 1024, 5, 6]
        assert model.forward_head(feats).shape == [2, 1000]
        assert model.forward_head(feats, pre_logits=True).shape == [2, 1024]


def test_feature_info_matches_the_stage_outputs():
    model = get_builder("shufflenet_v2_x1_0")()
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
        model(paddle.randn([1, 3, 128, 128]))
    for h in hooks:
        h.remove()
    got = [(seen[i["module"]][1], 128 // seen[i["module"]][2]) for i in model.feature_info]
    assert got == [(i["num_chs"], i["reduction"]) for i in model.feature_info]
    assert got == [(24, 2), (116, 8), (232, 16), (464, 32), (1024, 32)]


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
    # Freshly initialised logits are tiny (~1e-5): compare relative to their scale.
    assert np.abs(a_logits - b_logits).max() > 0.1 * np.abs(a_logits).max()
    with pytest.raises(TypeError):
        get_builder("shufflenet_v2_x1_0")(act="swish")  # the builder fixes the activation


@pytest.mark.parametrize("builder", BUILDERS)
def test_num_classes_zero_and_reset_classifier(builder):
    paddle.seed(1)
    model = get_builder(builder)(num_classes=0)
    assert "fc.weight" not in model.state_dict()
    model.eval()
    x = paddle.randn([1, 3, 96, 128])
    with paddle.no_grad():
        pooled = model(x)
        assert pooled.shape == [1, 1024]
        model.reset_classifier(10)
        model.eval()
        assert model.num_classes == 10 and model.classifier_keys() == ["fc.weight", "fc.bias"]
        assert model.get_classifier().weight.shape == [1024, 10]
        assert model(x).shape == [1, 10]
        np.testing.assert_allclose(model.forward_head(model.forward_features(x), pre_logits=True).numpy(),
                                   pooled.numpy(), rtol=1e-6)
        model.reset_classifier(0)
        assert model(x).shape == [1, 1024]


def test_in_chans_and_invalid_arguments():
    model = get_builder("shufflenet_v2_swish")(num_classes=5, in_chans=1)
    assert model.state_dict()[f"{model.first_conv}.weight"].shape == [24, 1, 3, 3]
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 1, 64, 64])).shape == [1, 5]
    with pytest.raises(ValueError, match="num_classes"):
        get_builder("shufflenet_v2_x1_0")(num_classes=-1)
    from paddlehub_cls.models.shufflenet_v2 import ShuffleNetV2

    with pytest.raises(ValueError, match="act must be one of .* got 'gelu'"):
        ShuffleNetV2(act="gelu")


def test_two_models_in_one_process_do_not_share_parameters():
    paddle.seed(4)
    m1 = get_builder("shufflenet_v2_x1_0")()
    m2 = get_builder("shufflenet_v2_x1_0")()
    m3 = get_builder("shufflenet_v2_swish")()
    names = [p.name for m in (m1, m2, m3) for p in m.parameters()]
    assert len(names) == len(set(names))
    x = X224[:, :, :96, :96]
    before = logits_of(m2, x)
    m1.set_state_dict({k: paddle.zeros_like(v) for k, v in m1.state_dict().items()})
    np.testing.assert_array_equal(logits_of(m2, x), before)
    assert logits_of(m3, x).shape == (1, 1000)


@pytest.mark.filterwarnings("ignore:When training, we now always track global mean and variance")
@pytest.mark.parametrize("builder", BUILDERS)
def test_a_few_sgd_steps_lower_the_loss(builder):
    paddle.seed(5)
    model = get_builder(builder)(num_classes=4)
    x = paddle.randn([4, 3, 64, 64])
    y = paddle.to_tensor([[1], [3], [0], [2]], dtype="int64")
    loss_fn = paddle.nn.CrossEntropyLoss()
    opt = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=model.parameters())
    model.train()
    losses = []
    for _ in range(6):
        loss = loss_fn(model(x), y)
        losses.append(float(loss))
        loss.backward()
        opt.step()
        opt.clear_grad()
    # Training-mode loss: with 4 images the BN running statistics are far from the
    # batch statistics after a few steps, so the eval-mode loss says nothing yet.
    assert losses[-1] < losses[0], losses


# --------------------------------------------------------------------------- layouts


def test_every_layout_covers_every_key_one_to_one():
    with paddle.LazyGuard():
        model = get_builder("shufflenet_v2_x1_0")()
    ours = model.state_dict()
    for layout in LAYOUTS:
        mapping = get_layout(FAMILY, layout)(model)
        assert set(mapping) == set(ours), layout
        sources = list(mapping.values())
        assert all(isinstance(s, str) for s in sources), "no ShuffleNetV2 tensor is optional"
        assert len(set(sources)) == len(sources), f"{layout} maps two keys to one source name"
        tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in mapping.items()}
        match = match_layout(model, tensors, layout, FAMILY)
        assert set(match.arrays) == set(ours) and not match.filled


def test_layout_names_follow_the_sources():
    with paddle.LazyGuard():
        model = get_builder("shufflenet_v2_swish")()
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
    with paddle.LazyGuard():
        model = get_builder("shufflenet_v2_x1_0")()
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
def test_param_count_equals_paddle_vision_and_is_near_the_published_figure(name):
    import paddle.vision.models as pvm

    builder, _, vision_fn, _ = MODELS[name]
    with paddle.LazyGuard():
        ours = get_builder(builder)()
        ref = getattr(pvm, vision_fn)()
    assert numel(ours) == numel(ref) == 2_294_784
    assert trainable(ours) == trainable(ref) == 2_278_604
    shapes = [list(t.shape) for t in ref.state_dict().values()]
    assert [list(t.shape) for t in ours.state_dict().values()] == shapes
    # Published figures count trainable parameters (BN running statistics excluded).
    published = load_registry().get(name).num_params["value"]
    assert abs(trainable(ours) - published) / published < 0.02, (trainable(ours), published)


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fidelity(name, tag, oracles, http_server, cache_env, tmp_path, monkeypatch, record_property):
    res = oracles(name, tag)
    model = load_as_variant(name, tag, res.path, http_server, tmp_path, monkeypatch)
    assert model.act == MODELS[name][1]
    assert numel(model) == res.num_params
    if "num_trainable" in res.extra:
        assert trainable(model) == res.extra["num_trainable"]
    record_property("max_abs_diff", assert_close(logits_of(model), res.logits))


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
    assert ten.num_classes == 10 and ten.load_report.reset == ["fc.weight", "fc.bias"]
    a, b = full.state_dict(), ten.state_dict()
    assert list(b["fc.weight"].shape) == [1024, 10]
    for k in a:
        if not k.startswith("fc."):
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    x = paddle.to_tensor(X224)
    with paddle.no_grad():
        np.testing.assert_allclose(ten.forward_head(ten.forward_features(x), pre_logits=True).numpy(),
                                   full.forward_head(full.forward_features(x), pre_logits=True).numpy(),
                                   rtol=1e-6)
        assert ten(x).shape == [1, 10]
