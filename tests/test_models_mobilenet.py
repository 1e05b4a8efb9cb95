"""MobileNetV1 and MobileNetV2: graphs, layouts, and fidelity to the three weight sources.

Fidelity: each oracle (paddle.vision in-process, PaddleClas 2.6.0 and the 2019 fluid
program in subprocesses) gets random weights, writes them in its source's real format
with its own writer, and reports eval logits on a fixed input; ``load_model`` must
restore that file into our network and give the same logits.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import paddle
import pytest

from oracles.fluid import run_fluid_oracle
from oracles.paddleclas import paddleclas_model_info, run_paddleclas
from oracles.vision import vision_oracle
from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.registry import load_registry

X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")

V1_LAYOUTS = ("fluid2019", "paddleclas_legendary", "paddle_vision")
V2_LAYOUTS = ("fluid2019", "paddleclas_model_zoo", "paddle_vision")
# (builder, arch kwargs, family, layouts it must cover)
GRAPHS = [
    ("mobilenet_v1", {}, "mobilenet_v1", V1_LAYOUTS),
    ("mobilenet_v2", {"expand_first_block": True}, "mobilenet_v2", ("fluid2019", "paddleclas_model_zoo")),
    ("mobilenet_v2", {"expand_first_block": False}, "mobilenet_v2", ("paddle_vision",)),
]
GRAPH_IDS = ["v1", "v2-expand", "v2-vision"]

PADDLECLAS = {
    "MobileNetV1": ("ppcls.arch.backbone.legendary_models.mobilenet_v1", "MobileNetV1"),
    "MobileNetV2": ("ppcls.arch.backbone.model_zoo.mobilenet_v2", "MobileNetV2"),
}
FLUID = {"MobileNetV1": "oracles.fluid_mobilenet_v1", "MobileNetV2": "oracles.fluid_mobilenet_v2"}
VISION = {"MobileNetV1": "mobilenet_v1", "MobileNetV2": "mobilenet_v2"}


def numel(model) -> int:
    return sum(int(np.prod(t.shape)) for t in model.state_dict().values())


def trainable(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def logits_of(model, x: np.ndarray = X224) -> np.ndarray:
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def assert_logits_close(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| must be below 1e-4 of the logits' scale; returns it."""
    assert ours.shape == ref.shape
    assert float(ref.std()) > 1e-2, "reference logits are nearly constant: the oracle weights are degenerate"
    diff = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"
    return diff


def load_variant_file(name: str, tag: str, weights_file: Path, tmp_path: Path, monkeypatch):
    """``load_model`` on a file written by an oracle, as the named registry variant.

    Variants without a published checksum are fetched through a ``file://`` mirror
    holding the file at the variant's URL path (trust on first use); checksummed
    variants (paddle.vision) are loaded by path, which uses the default variant's graph.
    """
    info, variant = load_registry().resolve(name, tag)
    if variant.checksum is None:
        url = urlsplit(variant.urls[0])
        mirror = tmp_path / "mirror"
        dest = mirror / url.netloc / url.path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(weights_file, dest)  # a hard link: no copy of the bytes
        monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", mirror.as_uri())
        monkeypatch.delenv("PADDLEHUB_CLS_REQUIRE_CHECKSUM", raising=False)
        monkeypatch.delenv("PADDLEHUB_CLS_OFFLINE", raising=False)
        with pytest.warns(UserWarning, match="no published checksum"):
            model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    else:
        assert info.default_weights == tag, "loading by path builds the default variant's graph"
        model = load_model(name, weights=str(weights_file), cache_dir=tmp_path / "cache")
    assert model.load_report.layout == variant.layout
    return model


@pytest.fixture
def cleanup(tmp_path):
    """Remove the (large) weight files a test wrote once it is done."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


# --------------------------------------------------------------------------- graphs


@pytest.mark.parametrize("builder,kwargs,family,layouts", GRAPHS, ids=GRAPH_IDS)
def test_forward_shapes_224_and_non_square(builder, kwargs, family, layouts):
    model = get_builder(builder)(**kwargs)
    model.eval()
    with paddle.no_grad():
        assert model(paddle.to_tensor(X224)).shape == [1, 1000]
        x = paddle.randn([2, 3, 160, 192])
        feats = model.forward_features(x)
        assert feats.shape == [2, model.num_features, 5, 6]
        assert model.forward_head(feats).shape == [2, 1000]
        assert model.forward_head(feats, pre_logits=True).shape == [2, model.num_features]


@pytest.mark.parametrize("builder,kwargs,family,layouts", GRAPHS, ids=GRAPH_IDS)
def test_feature_info_matches_the_stage_outputs(builder, kwargs, family, layouts):
    model = get_builder(builder)(**kwargs)
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
        model(paddle.randn([1, 3, 224, 224]))
    for h in hooks:
        h.remove()
    got = [(seen[i["module"]][1], 224 // seen[i["module"]][2]) for i in model.feature_info]
    assert got == [(i["num_chs"], i["reduction"]) for i in model.feature_info]
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("builder,kwargs,family,layouts", GRAPHS, ids=GRAPH_IDS)
def test_num_classes_zero_and_reset_classifier(builder, kwargs, family, layouts):
    paddle.seed(1)
    model = get_builder(builder)(num_classes=0, **kwargs)
    model.eval()
    x = paddle.randn([1, 3, 96, 128])
    with paddle.no_grad():
        pooled = model(x)
        assert pooled.shape == [1, model.num_features]
        model.reset_classifier(10)
        model.eval()
        assert model.num_classes == 10
        assert model.get_classifier().weight.shape == [model.num_features, 10]
        out = model(x)
        assert out.shape == [1, 10]
        # The new head reads the same pooled features.
        np.testing.assert_allclose(model.forward_head(model.forward_features(x), pre_logits=True).numpy(),
                                   pooled.numpy(), rtol=1e-6)
        model.reset_classifier(0)
        assert model(x).shape == [1, model.num_features]


@pytest.mark.parametrize("builder,kwargs,family,layouts", GRAPHS, ids=GRAPH_IDS)
def test_in_chans_and_invalid_num_classes(builder, kwargs, family, layouts):
    model = get_builder(builder)(num_classes=5, in_chans=1, **kwargs)
    assert model.state_dict()[f"{model.first_conv}.weight"].shape[1] == 1
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 1, 64, 64])).shape == [1, 5]
    with pytest.raises(ValueError, match="num_classes"):
        get_builder(builder)(num_classes=-1, **kwargs)


def test_unknown_arch_kwarg_is_refused():
    with pytest.raises(TypeError, match="conv_bias"):
        get_builder("mobilenet_v2")(conv_bias=True)
    with pytest.raises(ValueError, match="dropout_mode"):
        get_builder("mobilenet_v2")(dropout=0.2, dropout_mode="sometimes")


def test_mobilenet_v2_graphs_differ_only_by_the_first_expand_conv():
    with_expand = get_builder("mobilenet_v2")(expand_first_block=True).state_dict()
    without = get_builder("mobilenet_v2")(expand_first_block=False).state_dict()
    extra = sorted(set(with_expand) - set(without))
    assert set(without) <= set(with_expand)
    assert extra == sorted(f"blocks.0.expand.{k}" for k in
                           ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance"))
    assert list(with_expand["blocks.0.expand.conv.weight"].shape) == [32, 32, 1, 1]


def test_mobilenet_v2_residuals_follow_the_2019_shortcut_rule():
    # 2019: every unit but the first of its group adds its input.
    model = get_builder("mobilenet_v2")()
    firsts = {0, 1, 3, 6, 10, 13, 16}
    assert [b.use_residual for b in model.blocks] == [i not in firsts for i in range(17)]


def test_mobilenet_v2_dropout_is_identity_at_inference():
    paddle.seed(3)
    a = get_builder("mobilenet_v2")(expand_first_block=False, dropout=0.2)
    b = get_builder("mobilenet_v2")(expand_first_block=False, dropout=0.0)
    b.set_state_dict(a.state_dict())
    np.testing.assert_array_equal(logits_of(a, X224[:, :, :64, :64]), logits_of(b, X224[:, :, :64, :64]))


def test_two_models_in_one_process_do_not_share_parameters():
    paddle.seed(4)
    m1 = get_builder("mobilenet_v1")()
    m2 = get_builder("mobilenet_v1")()
    m3 = get_builder("mobilenet_v2")()
    names = [p.name for m in (m1, m2, m3) for p in m.parameters()]
    assert len(names) == len(set(names))
    x = X224[:, :, :96, :96]
    before = logits_of(m2, x)
    m1.set_state_dict({k: paddle.zeros_like(v) for k, v in m1.state_dict().items()})
    np.testing.assert_array_equal(logits_of(m2, x), before)
    assert logits_of(m3, x).shape == (1, 1000)


def test_a_few_sgd_steps_lower_the_loss():
    paddle.seed(5)
    model = get_builder("mobilenet_v2")(num_classes=4)
    x = paddle.randn([2, 3, 64, 64])
    y = paddle.to_tensor([[1], [3]], dtype="int64")
    loss_fn = paddle.nn.CrossEntropyLoss()
    opt = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=model.parameters())

    def eval_loss():
        model.eval()
        with paddle.no_grad():
            return float(loss_fn(model(x), y))

    start = eval_loss()
    model.train()
    for _ in range(5):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert eval_loss() < start


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("builder,kwargs,family,layouts", GRAPHS, ids=GRAPH_IDS)
def test_every_layout_covers_every_key_one_to_one(builder, kwargs, family, layouts):
    with paddle.LazyGuard():
        model = get_builder(builder)(**kwargs)
    ours = model.state_dict()
    for layout in layouts:
        mapping = get_layout(family, layout)(model)
        assert set(mapping) == set(ours), layout
        sources = [getattr(s, "key", s) for s in mapping.values()]
        assert len(set(sources)) == len(sources), f"{layout} maps two keys to one source name"
        tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in zip(mapping, sources)}
        match = match_layout(model, tensors, layout, family)
        assert set(match.arrays) == set(ours) and not match.filled


def test_layout_mismatch_lists_missing_unexpected_and_misshaped():
    with paddle.LazyGuard():
        model = get_builder("mobilenet_v2")(expand_first_block=False)
    tensors = {src: np.zeros(model.state_dict()[k].shape, "float32")
               for k, src in get_layout("mobilenet_v2", "fluid2019")(model).items()}
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
    with paddle.LazyGuard():
        v1 = get_builder("mobilenet_v1")()
        v2 = get_builder("mobilenet_v2")()
        v2v = get_builder("mobilenet_v2")(expand_first_block=False)
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


@pytest.mark.parametrize("builder,kwargs,vision_fn", [
    ("mobilenet_v1", {}, "mobilenet_v1"),
    ("mobilenet_v2", {"expand_first_block": False}, "mobilenet_v2"),
])
def test_param_count_equals_paddle_vision(builder, kwargs, vision_fn):
    import paddle.vision.models as pvm

    with paddle.LazyGuard():
        ours = get_builder(builder)(**kwargs)
        ref = getattr(pvm, vision_fn)()
    assert numel(ours) == numel(ref)
    assert trainable(ours) == trainable(ref)
    shapes = [list(t.shape) for t in ours.state_dict().values()]
    assert shapes == [list(t.shape) for t in ref.state_dict().values()]


@pytest.mark.parametrize("name", ["MobileNetV1", "MobileNetV2"])
def test_param_count_equals_paddleclas_and_is_near_the_published_figure(name, tmp_path):
    info, variant = load_registry().resolve(name, "paddleclas")
    with paddle.LazyGuard():
        ours = get_builder(info.architecture)(**info.build_kwargs("paddleclas"))
    ref = paddleclas_model_info(*PADDLECLAS[name], {}, out_dir=tmp_path)
    assert numel(ours) == ref["num_params"]
    assert trainable(ours) == ref["num_trainable"]
    # Published figures count trainable parameters (BN running statistics excluded).
    published = info.num_params["value"]
    assert abs(trainable(ours) - published) / published < 0.02, (trainable(ours), published)


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("name", ["MobileNetV1", "MobileNetV2"])
def test_fidelity_paddle_vision(name, cleanup, monkeypatch, record_property):
    res = vision_oracle(VISION[name], {}, cleanup / "oracle", X224)
    model = load_variant_file(name, "paddle_vision", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    assert not model.load_report.filled
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))


@pytest.mark.parametrize("name", ["MobileNetV1", "MobileNetV2"])
def test_fidelity_paddleclas(name, cleanup, monkeypatch, record_property):
    res = run_paddleclas(*PADDLECLAS[name], {}, cleanup / "oracle", X224)
    model = load_variant_file(name, "paddleclas", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))


@pytest.mark.parametrize("name", ["MobileNetV1", "MobileNetV2"])
def test_fidelity_fluid2019(name, cleanup, monkeypatch, record_property):
    res = run_fluid_oracle(FLUID[name], "build", {}, name, cleanup / "oracle", X224)
    model = load_variant_file(name, "fluid2019", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    assert not model.load_report.filled
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))


def test_new_head_keeps_every_other_weight_of_the_source(cleanup, monkeypatch):
    res = run_paddleclas(*PADDLECLAS["MobileNetV2"], {}, cleanup / "oracle", X224)
    full = load_variant_file("MobileNetV2", "paddleclas", res.path, cleanup, monkeypatch)
    # Same cache: the file is now known (its sha256 was recorded on first use).
    ten = load_model("MobileNetV2", weights="paddleclas", num_classes=10, cache_dir=cleanup / "cache")
    assert ten.num_classes == 10 and ten.load_report.reset == ["fc.weight", "fc.bias"]
    a, b = full.state_dict(), ten.state_dict()
    assert list(b["fc.weight"].shape) == [1280, 10]
    for k in a:
        if not k.startswith("fc."):
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    x = paddle.to_tensor(X224)
    with paddle.no_grad():
        pooled_ten = ten.forward_head(ten.forward_features(x), pre_logits=True).numpy()
        pooled_full = full.forward_head(full.forward_features(x), pre_logits=True).numpy()
        np.testing.assert_allclose(pooled_ten, pooled_full, rtol=1e-6)
        assert ten(x).shape == [1, 10]
