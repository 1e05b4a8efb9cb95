"""VGG11/13/16/19: graph, layouts, and fidelity to the three weight sources.

VGG is large (VGG19: 144 M parameters, 575 MB in float32), so every test keeps at
most one full network alive besides the loader's arrays, uses batch 1, and removes
the weight files it wrote when it ends. Oracles: paddle.vision (VGG16/19, in-process),
PaddleClas 2.6.0 legendary ``VGGNet`` and the 2019 fluid program (subprocesses).
"""

from __future__ import annotations

import gc
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
from paddlehub_cls.registry import load_registry

X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")

FAMILY = "vgg"
NAMES = ["VGG11", "VGG13", "VGG16", "VGG19"]
DEPTH = {"VGG11": 11, "VGG13": 13, "VGG16": 16, "VGG19": 19}
CONVS = {"VGG11": 8, "VGG13": 10, "VGG16": 13, "VGG19": 16}
PADDLECLAS_MODULE = "ppcls.arch.backbone.legendary_models.vgg"
# arch kwargs each layout's graph needs (the registry must give the same; checked below)
LAYOUT_KWARGS = {
    "fluid2019": {"conv_bias": True, "dropout_mode": "downscale_in_infer"},
    "paddleclas_legendary": {"conv_bias": False, "dropout_mode": "downscale_in_infer"},
    "paddle_vision": {"conv_bias": True, "dropout_mode": "upscale_in_train"},
}


def numel(model) -> int:
    return sum(int(np.prod(t.shape)) for t in model.state_dict().values())


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
    """Remove the (large) weight files a test wrote once it is done, and free the networks."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
    gc.collect()


def lazy(builder: str, **kwargs):
    """A network whose parameters are declared but not initialised (cheap for shape checks)."""
    with paddle.LazyGuard():
        return get_builder(builder)(**kwargs)


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("name", NAMES)
def test_forward_224_and_non_square(name):
    paddle.seed(0)
    model = get_builder(name.lower())()
    model.eval()
    with paddle.no_grad():
        feats = model.forward_features(paddle.to_tensor(X224))
        assert feats.shape == [1, 512, 7, 7]
        assert model.forward_head(feats).shape == [1, 1000]
        # 160x192 gives a 5x6 map, pooled to the 7x7 that fc6 expects (as paddle.vision does).
        feats = model.forward_features(paddle.randn([1, 3, 160, 192]))
        assert feats.shape == [1, 512, 5, 6]
        assert model.forward_head(feats).shape == [1, 1000]
        assert model.forward_head(feats, pre_logits=True).shape == [1, model.num_features]
    assert len(model.stages) == 5 and sum(len(s.convs) for s in model.stages) == CONVS[name]


def test_adaptive_pool_is_the_identity_on_a_7x7_map():
    paddle.seed(0)
    model = get_builder("vgg11")()
    fmap = paddle.randn([1, 512, 7, 7])
    np.testing.assert_array_equal(model.pool(fmap).numpy(), fmap.numpy())


def test_feature_info_matches_the_stage_outputs():
    paddle.seed(0)
    model = get_builder("vgg11")(num_classes=0)
    layers = dict(model.named_sublayers())
    seen = {}
    hooks = [
        layers[i["module"]].register_forward_post_hook(
            lambda layer, inp, out, key=i["module"]: seen.__setitem__(key, out.shape)
        )
        for i in model.feature_info
    ]
    with paddle.no_grad():
        model.forward_features(paddle.randn([1, 3, 64, 64]))
    for h in hooks:
        h.remove()
    got = [(seen[i["module"]][1], 64 // seen[i["module"]][2]) for i in model.feature_info]
    assert got == [(i["num_chs"], i["reduction"]) for i in model.feature_info]
    assert got == [(64, 2), (128, 4), (256, 8), (512, 16), (512, 32)]


def test_num_classes_zero_and_reset_classifier():
    paddle.seed(1)
    model = get_builder("vgg11")(num_classes=0)
    model.eval()
    x = paddle.randn([1, 3, 32, 32])
    with paddle.no_grad():
        pooled = model(x)
        assert pooled.shape == [1, 4096] and model.num_features == 4096
        model.reset_classifier(10)
        model.eval()
        assert model.num_classes == 10 and model.get_classifier().weight.shape == [4096, 10]
        assert model(x).shape == [1, 10]
        np.testing.assert_allclose(model.forward_head(model.forward_features(x), pre_logits=True).numpy(),
                                   pooled.numpy(), rtol=1e-6)
    assert model.classifier_keys() == ["fc.weight", "fc.bias"]


def test_conv_bias_and_in_chans():
    with_bias = lazy("vgg13").state_dict()
    without = lazy("vgg13", conv_bias=False, in_chans=1).state_dict()
    biases = sorted(k for k in with_bias if k.startswith("stages.") and k.endswith(".bias"))
    assert len(biases) == 10
    assert set(with_bias) - set(without) == set(biases)
    assert list(without["stages.0.convs.0.weight"].shape) == [64, 1, 3, 3]


@pytest.mark.parametrize("mode,factor", [("downscale_in_infer", 0.5), ("upscale_in_train", 1.0)])
def test_dropout_mode_scales_at_inference(mode, factor):
    model = lazy("vgg11", dropout_mode=mode)
    model.eval()
    ones = paddle.ones([1, 8])
    for drop in (model.drop1, model.drop2):
        np.testing.assert_array_equal(drop(ones).numpy(), np.full([1, 8], factor, "float32"))
    with pytest.raises(ValueError, match="dropout_mode"):
        get_builder("vgg11")(dropout_mode="downgrade_in_infer")


def test_two_models_in_one_process_do_not_share_parameters():
    a, b = lazy("vgg16"), lazy("vgg16")
    names = [p.name for m in (a, b) for p in m.parameters()]
    assert len(names) == len(set(names))


def test_a_few_sgd_steps_lower_the_loss():
    paddle.seed(5)
    model = get_builder("vgg11")(num_classes=4)
    x = paddle.randn([2, 3, 32, 32])
    y = paddle.to_tensor([[1], [3]], dtype="int64")
    loss_fn = paddle.nn.CrossEntropyLoss()
    opt = paddle.optimizer.SGD(learning_rate=0.01, parameters=model.parameters())

    def eval_loss():
        model.eval()
        with paddle.no_grad():
            return float(loss_fn(model(x), y))

    start = eval_loss()
    model.train()
    for _ in range(3):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert eval_loss() < start


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", sorted(LAYOUT_KWARGS))
@pytest.mark.parametrize("name", NAMES)
def test_every_layout_covers_every_key_one_to_one(name, layout):
    model = lazy(name.lower(), **LAYOUT_KWARGS[layout])
    ours = model.state_dict()
    mapping = get_layout(FAMILY, layout)(model)
    assert set(mapping) == set(ours)
    sources = [getattr(s, "key", s) for s in mapping.values()]
    assert len(set(sources)) == len(sources)
    # Zero-size stand-ins would not do: match_layout checks shapes, so declare them.
    tensors = {src: np.broadcast_to(np.float32(0), ours[k].shape) for k, src in zip(mapping, sources)}
    match = match_layout(model, tensors, layout, FAMILY)
    assert set(match.arrays) == set(ours) and not match.filled


def test_registry_variants_use_the_graph_of_their_layout():
    reg = load_registry()
    for name in NAMES:
        info = reg.get(name)
        assert info.architecture == name.lower() and info.family == FAMILY
        for tag, variant in info.weights.items():
            assert info.build_kwargs(tag) == LAYOUT_KWARGS[variant.layout], (name, tag)


def test_layout_names_follow_the_sources():
    model = lazy("vgg19")
    fluid = get_layout(FAMILY, "fluid2019")(model)
    assert fluid["stages.4.convs.3.weight"] == "conv5_4_weights"
    assert fluid["stages.4.convs.3.bias"].key == "conv5_4_offset"
    assert (fluid["fc1.weight"], fluid["fc2.bias"], fluid["fc.weight"]) == (
        "fc6_weights", "fc7_offset", "fc8_weights")
    vision = get_layout(FAMILY, "paddle_vision")(model)
    # features: conv/ReLU pairs, a max pool after each stage -> stage 2 starts at index 5.
    assert vision["stages.1.convs.0.weight"] == "features.5.weight"
    assert vision["stages.4.convs.3.bias"] == "features.34.bias"
    assert (vision["fc1.weight"], vision["fc2.weight"], vision["fc.bias"]) == (
        "classifier.0.weight", "classifier.3.weight", "classifier.6.bias")
    clas = get_layout(FAMILY, "paddleclas_legendary")(lazy("vgg19", conv_bias=False))
    assert clas["stages.2.convs.3.weight"] == "conv_block_3.conv4.weight"
    assert (clas["fc1.bias"], clas["fc.weight"]) == ("fc1.bias", "fc3.weight")


def test_fluid_archive_without_conv_biases_is_filled_and_reported():
    model = lazy("vgg11")
    ours = model.state_dict()
    mapping = get_layout(FAMILY, "fluid2019")(model)
    tensors = {getattr(s, "key", s): np.broadcast_to(np.float32(1), ours[k].shape)
               for k, s in mapping.items()}
    for k in [k for k in tensors if k.startswith("conv") and k.endswith("_offset")]:
        del tensors[k]
    match = match_layout(model, tensors, "fluid2019", FAMILY)
    assert sorted(match.filled) == sorted(k for k in ours if k.startswith("stages.") and k.endswith(".bias"))
    assert "conv1_1_offset absent from the source; filled with 0.0" in match.filled["stages.0.convs.0.bias"]
    assert "2019-09-05" in match.filled["stages.0.convs.0.bias"]
    assert not match.arrays["stages.3.convs.1.bias"].any()


def test_paddleclas_file_does_not_fit_a_network_with_conv_biases():
    model = lazy("vgg11")  # conv_bias=True: the fluid / paddle.vision graph
    ours = lazy("vgg11", conv_bias=False).state_dict()
    mapping = get_layout(FAMILY, "paddleclas_legendary")(lazy("vgg11", conv_bias=False))
    tensors = {src: np.broadcast_to(np.float32(0), ours[k].shape) for k, src in mapping.items()}
    with pytest.raises(WeightsMismatchError, match=r"missing \(8\): conv_block_1\.conv1\.bias"):
        match_layout(model, tensors, "paddleclas_legendary", FAMILY, origin="VGG11_pretrained.pdparams")


def test_published_param_counts_are_within_two_percent():
    reg = load_registry()
    for name in NAMES:
        info = reg.get(name)
        for tag in info.weights:
            model = lazy(info.architecture, **info.build_kwargs(tag))
            count = sum(int(np.prod(p.shape)) for p in model.parameters())
            published = info.num_params["value"]
            assert abs(count - published) / published < 0.02, (name, tag, count, published)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_equals_paddle_vision(name):
    import paddle.vision.models as pvm

    ours = lazy(name.lower(), conv_bias=True)
    with paddle.LazyGuard():
        ref = getattr(pvm, name.lower())()
    assert numel(ours) == numel(ref) == sum(int(np.prod(p.shape)) for p in ref.parameters())
    shapes = [list(t.shape) for t in ours.state_dict().values()]
    assert shapes == [list(t.shape) for t in ref.state_dict().values()]


# --------------------------------------------------------------------------- fidelity


@pytest.mark.slow
@pytest.mark.parametrize("name", ["VGG16", "VGG19"])
def test_fidelity_paddle_vision(name, cleanup, monkeypatch, record_property):
    res = vision_oracle(name.lower(), {}, cleanup / "oracle", X224)
    model = load_variant_file(name, "paddle_vision", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    assert not model.load_report.filled
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fidelity_paddleclas(name, cleanup, monkeypatch, record_property):
    res = run_paddleclas(PADDLECLAS_MODULE, name, {}, cleanup / "oracle", X224)
    model = load_variant_file(name, "paddleclas", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fidelity_fluid2019(name, cleanup, monkeypatch, record_property):
    res = run_fluid_oracle("oracles.fluid_vgg", "build", {"depth": DEPTH[name]}, name, cleanup / "oracle",
                           X224)
    model = load_variant_file(name, "fluid2019", res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    assert not model.load_report.filled
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))
    # The dropout mode belongs to the graph: with paddle.vision's (identity at inference)
    # the same weights give other logits.
    model.drop1, model.drop2 = paddle.nn.Identity(), paddle.nn.Identity()
    scale = max(1.0, float(np.abs(res.logits).max()))
    assert float(np.abs(logits_of(model) - res.logits).max()) > 1e-2 * scale


@pytest.mark.slow
def test_fidelity_fluid2019_archive_without_conv_biases(cleanup, monkeypatch, record_property):
    # The graph after 2019-09-05 (models@d6c6511): same names, no convX_Y_offset files.
    res = run_fluid_oracle("oracles.fluid_vgg", "build", {"depth": 11, "conv_bias": False}, "VGG11",
                           cleanup / "oracle", X224)
    model = load_variant_file("VGG11", "fluid2019", res.path, cleanup, monkeypatch)
    filled = model.load_report.filled
    assert len(filled) == CONVS["VGG11"] and all("filled with 0.0" in why for why in filled.values())
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))
