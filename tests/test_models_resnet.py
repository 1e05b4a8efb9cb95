"""ResNet18/34/50/101/152: graphs, layouts, and fidelity to the three weight sources.

Fidelity: for every (model, variant) registry.json lists for the ``resnet`` family, the
variant's oracle (paddle.vision in-process, PaddleClas 2.6.0 ``legendary_models`` or the
2019 fluid program in a subprocess) gets random weights, writes them in its source's real
format with its own writer, and reports eval logits on a fixed input; ``load_model`` must
restore that file into our network and give the same logits. Expected source names in the
layout tests are copied from the source code (models@dc1b032 ``models/resnet.py``,
PaddleClas 2.6.0 ``legendary_models/resnet.py``, paddle.vision ``resnet.py``).
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
from oracles.paddleclas import run_paddleclas
from oracles.vision import vision_oracle
from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.registry import load_registry

FAMILY = "resnet"
LAYOUTS = ("fluid2019", "paddleclas_legendary", "paddle_vision")
DEPTH = {"ResNet18": 18, "ResNet34": 34, "ResNet50": 50, "ResNet101": 101, "ResNet152": 152}
ARCHS = [f"resnet{d}" for d in DEPTH.values()]
PADDLECLAS_MODULE = "ppcls.arch.backbone.legendary_models.resnet"

X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")

# The 2019 and PaddleClas variants have no published checksum: load_model trusts them on first use and warns.
pytestmark = pytest.mark.filterwarnings("ignore:.*has no published checksum:UserWarning")

REGISTRY = load_registry()
VARIANTS = [
    (n, t) for n in REGISTRY.names() if REGISTRY.get(n).family == FAMILY for t in REGISTRY.get(n).weights
]
# PaddleClas-backed cases carry the ``paddleclas`` marker (they need the unpacked wheel).
VARIANT_PARAMS = [
    pytest.param(
        n,
        t,
        id=f"{n}.{t}",
        marks=[pytest.mark.paddleclas] if REGISTRY.resolve(n, t)[1].layout.startswith("paddleclas") else [],
    )
    for n, t in VARIANTS
]


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
    diff = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"
    return diff


def load_variant_file(
    name: str, tag: str, weights_file: Path, tmp_path: Path, monkeypatch
) -> paddle.nn.Layer:
    """``load_model`` on a file written by an oracle, as the named registry variant.

    Variants without a published checksum are fetched through a ``file://`` mirror
    holding the file at the variant's URL path (trust on first use); checksummed
    variants (paddle.vision) are loaded by path, which uses the default variant's graph.
    """
    info, variant = REGISTRY.resolve(name, tag)
    if variant.checksum is None:
        url = urlsplit(variant.urls[0])
        mirror = tmp_path / "mirror"
        dest = mirror / url.netloc / url.path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(weights_file, dest)  # a hard link: no copy of the bytes
        monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", mirror.as_uri())
        monkeypatch.delenv("PADDLEHUB_CLS_REQUIRE_CHECKSUM", raising=False)
        monkeypatch.delenv("PADDLEHUB_CLS_OFFLINE", raising=False)
        model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    else:
        assert info.default_weights == tag, "loading by path builds the default variant's graph"
        model = load_model(name, weights=str(weights_file), cache_dir=tmp_path / "cache")
    assert model.load_report.layout == variant.layout
    return model


def run_oracle(name: str, layout: str, out_dir: Path):
    """The oracle of a layout: its weight file and logits on X224."""
    if layout == "paddle_vision":
        return vision_oracle(f"resnet{DEPTH[name]}", {}, out_dir, X224, name=name)
    if layout == "paddleclas_legendary":
        return run_paddleclas(PADDLECLAS_MODULE, name, {}, out_dir, X224)
    if layout == "fluid2019":
        # The tar's top folder must be the registry's archive_root, "<name>_pretrained".
        return run_fluid_oracle(
            "oracles.fluid_resnet", "build", {"layers": DEPTH[name]}, name=name, out_dir=out_dir, x=X224
        )
    raise AssertionError(f"no oracle for layout {layout!r} of {name}; add one to this test")


@pytest.fixture
def cleanup(tmp_path):
    """Remove the (large) weight files a test wrote once it is done."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


# --------------------------------------------------------------------------- graphs


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_224_and_non_square(arch):
    paddle.seed(0)
    model = get_builder(arch)()
    model.eval()
    width = 512 if arch in ("resnet18", "resnet34") else 2048
    assert model.num_features == width and model.num_classes == 1000
    with paddle.no_grad():
        out = model(paddle.to_tensor(X224))
        assert out.shape == [1, 1000] and bool(paddle.isfinite(out).all())
        feats = model.forward_features(paddle.randn([1, 3, 160, 192]))
        assert feats.shape == [1, width, 5, 6]
        assert model.forward_head(feats).shape == [1, 1000]
        assert model.forward_head(feats, pre_logits=True).shape == [1, width]


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_feature_info_matches_the_stage_outputs(arch):
    model = get_builder(arch)()
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
    expand = 1 if arch == "resnet18" else 4
    assert got == [(64 * expand, 4), (128 * expand, 8), (256 * expand, 16), (512 * expand, 32)]


def test_num_classes_zero_and_reset_classifier():
    paddle.seed(1)
    model = get_builder("resnet18")(num_classes=0)
    model.eval()
    assert model.state_dict().keys().isdisjoint({"fc.weight", "fc.bias"})
    x = paddle.randn([1, 3, 96, 128])
    with paddle.no_grad():
        pooled = model(x)
        assert pooled.shape == [1, 512]
        np.testing.assert_allclose(
            pooled.numpy(), model.forward_features(x).mean(axis=[2, 3]).numpy(), rtol=1e-5, atol=1e-6
        )
        model.reset_classifier(10)
        model.eval()
        assert model.num_classes == 10
        assert model.get_classifier().weight.shape == [512, 10]
        out = model(x)
        assert out.shape == [1, 10]
        np.testing.assert_allclose(
            out.numpy(), (pooled @ model.fc.weight + model.fc.bias).numpy(), rtol=1e-5, atol=1e-5
        )
        model.reset_classifier(0)
        assert model(x).shape == [1, 512]


def test_in_chans_and_invalid_arguments():
    model = get_builder("resnet18")(num_classes=5, in_chans=1)
    assert model.state_dict()["stem.conv.weight"].shape == [64, 1, 7, 7]
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 1, 64, 64])).shape == [1, 5]
    with pytest.raises(ValueError, match="num_classes"):
        get_builder("resnet50")(num_classes=-1)
    with pytest.raises(ValueError, match="first_block_projection.*'yes'"):
        get_builder("resnet18")(first_block_projection="yes")
    with pytest.raises(ValueError, match="in_chans"):
        get_builder("resnet18")(in_chans=0)
    with pytest.raises(TypeError, match="expand_first_block"):
        get_builder("resnet50")(expand_first_block=True)


def test_first_block_projection_adds_only_the_first_shortcut_of_basic_networks():
    for arch in ("resnet18", "resnet34"):
        with paddle.LazyGuard():
            plain = get_builder(arch)().state_dict()
            proj = get_builder(arch)(first_block_projection=True).state_dict()
        extra = sorted(set(proj) - set(plain))
        assert set(plain) <= set(proj)
        assert extra == sorted(
            f"stages.0.0.shortcut.{k}"
            for k in ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance")
        )
        assert proj["stages.0.0.shortcut.conv.weight"].shape == [64, 64, 1, 1]
    # Bottlenecks project there anyway (64 -> 256 channels).
    with paddle.LazyGuard():
        a = get_builder("resnet50")().state_dict()
        b = get_builder("resnet50")(first_block_projection=True).state_dict()
    assert list(a) == list(b)
    assert [k for k in a if ".shortcut.conv" in k] == [f"stages.{s}.0.shortcut.conv.weight" for s in range(4)]


def test_bottleneck_stride_is_on_the_3x3_conv():
    model = get_builder("resnet50")()
    block = model.stages[1][0]
    assert block.conv1.conv._stride == [1, 1]
    assert block.conv2.conv._stride == [2, 2]
    assert block.shortcut.conv._stride == [2, 2]


def test_two_models_in_one_process_do_not_share_parameters():
    paddle.seed(4)
    m1 = get_builder("resnet18")()
    m2 = get_builder("resnet18")()
    m3 = get_builder("resnet34")(first_block_projection=True)
    names = [p.name for m in (m1, m2, m3) for p in m.parameters()]
    assert len(names) == len(set(names))
    x = X224[:, :, :96, :96]
    before = logits_of(m2, x)
    m1.set_state_dict({k: paddle.zeros_like(v) for k, v in m1.state_dict().items()})
    np.testing.assert_array_equal(logits_of(m2, x), before)
    assert logits_of(m3, x).shape == (1, 1000)


def test_a_few_sgd_steps_lower_the_loss():
    paddle.seed(5)
    model = get_builder("resnet18")(num_classes=4)
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


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("first_block_projection", [False, True])
def test_every_layout_covers_every_key_one_to_one(arch, first_block_projection):
    with paddle.LazyGuard():
        model = get_builder(arch)(first_block_projection=first_block_projection)
    ours = model.state_dict()
    for layout in LAYOUTS:
        mapping = get_layout(FAMILY, layout)(model)
        assert set(mapping) == set(ours), layout
        sources = [getattr(s, "key", s) for s in mapping.values()]
        assert len(set(sources)) == len(sources), f"{layout} maps two keys to one source name"
        tensors = {src: np.zeros(ours[k].shape, "float32") for k, src in zip(mapping, sources)}
        match = match_layout(model, tensors, layout, FAMILY)
        assert set(match.arrays) == set(ours) and not match.filled


def test_layout_names_follow_the_sources():
    with paddle.LazyGuard():
        r18 = get_builder("resnet18")(first_block_projection=True)
        r50 = get_builder("resnet50")()
        r101 = get_builder("resnet101")()
        r152 = get_builder("resnet152")()
    f18 = get_layout(FAMILY, "fluid2019")(r18)
    assert f18["stem.conv.weight"] == "conv1_weights"
    assert f18["stem.bn._mean"] == "bn_conv1_mean"
    assert f18["stages.0.0.shortcut.conv.weight"] == "res2a_branch1_weights"
    assert f18["stages.0.0.shortcut.bn.bias"] == "bn2a_branch1_offset"
    assert f18["stages.3.1.conv2.bn.weight"] == "bn5b_branch2b_scale"
    assert f18["fc.weight"] == "fc_0.w_0" and f18["fc.bias"] == "fc_0.b_0"
    f101 = get_layout(FAMILY, "fluid2019")(r101)
    assert f101["stages.2.0.conv1.conv.weight"] == "res4a_branch2a_weights"
    assert f101["stages.2.22.conv3.conv.weight"] == "res4b22_branch2c_weights"
    assert f101["stages.1.3.conv2.bn._variance"] == "bn3d_branch2b_variance"
    assert f101["stages.3.2.conv3.conv.weight"] == "res5c_branch2c_weights"
    f152 = get_layout(FAMILY, "fluid2019")(r152)
    assert f152["stages.1.7.conv1.bn._mean"] == "bn3h_branch2a_mean"
    assert f152["stages.2.35.conv2.conv.weight"] == "res4b35_branch2b_weights"
    f50 = get_layout(FAMILY, "fluid2019")(r50)
    assert f50["stages.2.5.conv1.conv.weight"] == "res4f_branch2a_weights"
    leg = get_layout(FAMILY, "paddleclas_legendary")(r50)
    assert leg["stem.bn._variance"] == "stem.0.bn._variance"
    assert leg["stages.1.0.shortcut.bn._variance"] == "blocks.3.short.bn._variance"
    assert leg["stages.3.2.conv3.conv.weight"] == "blocks.15.conv2.conv.weight"
    assert (
        get_layout(FAMILY, "paddleclas_legendary")(r18)["stages.0.0.shortcut.conv.weight"]
        == "blocks.0.short.conv.weight"
    )
    vis = get_layout(FAMILY, "paddle_vision")(r50)
    assert vis["stem.bn.weight"] == "bn1.weight"
    assert vis["stages.3.0.shortcut.bn.weight"] == "layer4.0.downsample.1.weight"
    assert vis["stages.3.0.shortcut.conv.weight"] == "layer4.0.downsample.0.weight"
    assert vis["stages.2.5.conv3.bn._mean"] == "layer3.5.bn3._mean"


def test_layout_mismatch_names_the_first_block_shortcut():
    # PaddleClas ResNet18 weights into the paddle.vision graph (no first shortcut).
    with paddle.LazyGuard():
        proj = get_builder("resnet18")(first_block_projection=True)
        plain = get_builder("resnet18")()
    tensors = {
        src: np.zeros(proj.state_dict()[k].shape, "float32")
        for k, src in get_layout(FAMILY, "paddleclas_legendary")(proj).items()
    }
    tensors["fc.weight"] = np.zeros([512, 10], "float32")
    with pytest.raises(WeightsMismatchError) as err:
        match_layout(plain, tensors, "paddleclas_legendary", FAMILY, origin="ResNet18_pretrained.pdparams")
    msg = str(err.value)
    assert "unexpected (5): blocks.0.short.bn._mean" in msg
    assert "fc.weight: source [512, 10] vs network [512, 1000]" in msg
    assert "ResNet18_pretrained.pdparams" in msg


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", list(DEPTH))
def test_param_count_equals_paddle_vision_and_is_near_the_published_figure(name):
    import paddle.vision.models as pvm

    info = REGISTRY.get(name)
    with paddle.LazyGuard():
        ours = get_builder(info.architecture)(**info.build_kwargs("paddle_vision"))
        ref = getattr(pvm, f"resnet{DEPTH[name]}")()
    assert numel(ours) == numel(ref)
    assert trainable(ours) == trainable(ref)
    assert [t.shape for t in ours.state_dict().values()] == [t.shape for t in ref.state_dict().values()]
    # Published figures count trainable parameters (BN running statistics excluded).
    published = info.num_params["value"]
    assert abs(trainable(ours) - published) / published < 0.02, (trainable(ours), published)


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(n for n, _ in VARIANTS) == sorted(n for n in DEPTH for _ in range(3))
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == set(LAYOUTS)


@pytest.mark.parametrize("name,tag", VARIANT_PARAMS)
def test_fidelity(name, tag, cleanup, monkeypatch, record_property):
    info, variant = REGISTRY.resolve(name, tag)
    res = run_oracle(name, variant.layout, cleanup / "oracle")
    model = load_variant_file(name, tag, res.path, cleanup, monkeypatch)
    assert numel(model) == res.num_params
    assert trainable(model) == res.extra["num_trainable"]
    assert len(model.state_dict()) == res.num_keys
    assert not model.load_report.filled
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))
    record_property("logits_scale", float(np.abs(res.logits).max()))


def test_new_head_keeps_every_other_weight_of_the_source(cleanup, monkeypatch):
    res = run_oracle("ResNet18", "fluid2019", cleanup / "oracle")
    full = load_variant_file("ResNet18", "fluid2019", res.path, cleanup, monkeypatch)
    ten = load_model("ResNet18", weights="fluid2019", num_classes=10, cache_dir=cleanup / "cache")
    assert ten.num_classes == 10 and ten.load_report.reset == ["fc.weight", "fc.bias"]
    a, b = full.state_dict(), ten.state_dict()
    assert b["fc.weight"].shape == [512, 10]
    assert "stages.0.0.shortcut.conv.weight" in b
    for k in a:
        if not k.startswith("fc."):
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    x = paddle.to_tensor(X224)
    with paddle.no_grad():
        np.testing.assert_allclose(
            ten.forward_head(ten.forward_features(x), pre_logits=True).numpy(),
            full.forward_head(full.forward_features(x), pre_logits=True).numpy(),
            rtol=1e-6,
        )
        assert ten(x).shape == [1, 10]
