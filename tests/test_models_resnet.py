"""ResNet18/34/50/101/152 and ResNet18-200_vd: graphs, layouts, and fidelity to the three weight sources.

Fidelity: for every (model, variant) registry.json lists for the ``resnet`` family, the
variant's oracle (paddle.vision in-process, PaddleClas 2.6.0 ``legendary_models`` or the
2019 fluid program in a subprocess) gets random weights, writes them in its source's real
format with its own writer, and reports eval logits on a fixed input; ``load_model`` must
restore that file into our network and give the same logits. Expected source names in the
layout tests are copied from the source code (models@dc1b032 ``models/resnet.py``,
PaddleClas 2.6.0 ``legendary_models/resnet.py``, paddle.vision ``resnet.py``).
PaddleClas variants run on a 64x64 input (the smallest that keeps a 2x2 last map), and the
base and SSLD weights of one model share one oracle run (the ``oracles`` fixture).
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls import load_model
from paddlehub_cls.errors import PaddleHubClsError, WeightsMismatchError
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
    check_layout_covers,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    load_via_layout,
    logits_of,
    oracles,
    run_variant_oracle,
    source_tensors,
    swap_sources,
    variant_params,
)

FAMILY = "resnet"
LAYOUTS = ("fluid2019", "paddleclas_legendary", "paddle_vision")
DEPTH = {"ResNet18": 18, "ResNet34": 34, "ResNet50": 50, "ResNet101": 101, "ResNet152": 152}
ARCHS = [f"resnet{d}" for d in DEPTH.values()]
VD = {
    "ResNet18_vd": 18,
    "ResNet34_vd": 34,
    "ResNet50_vd": 50,
    "ResNet101_vd": 101,
    "ResNet152_vd": 152,
    "ResNet200_vd": 200,
}
VD_SSLD = ("ResNet34_vd", "ResNet50_vd", "ResNet101_vd")
#: the PaddleClas oracles' input: 64 -> a 2x2 last map, every vd average pool on an even map
X64 = np.ascontiguousarray(X224[:, :, :64, :64])


# --------------------------------------------------------------------------- graphs


def test_invalid_arguments():
    with pytest.raises(ValueError, match="first_block_projection.*'yes'"):
        get_builder("resnet18")(first_block_projection="yes")
    with pytest.raises(ValueError, match="in_chans"):
        get_builder("resnet18")(in_chans=0)
    with pytest.raises(TypeError, match="expand_first_block"):
        get_builder("resnet50")(expand_first_block=True)


def test_first_block_projection_adds_only_the_first_shortcut_of_basic_networks():
    for arch in ("resnet18", "resnet34"):
        plain = lazy(arch).state_dict()
        proj = lazy(arch, first_block_projection=True).state_dict()
        extra = sorted(set(proj) - set(plain))
        assert set(plain) <= set(proj)
        assert extra == sorted(
            f"stages.0.0.shortcut.{k}"
            for k in ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance")
        )
        assert proj["stages.0.0.shortcut.conv.weight"].shape == [64, 64, 1, 1]
    # Bottlenecks project there anyway (64 -> 256 channels).
    a = lazy("resnet50").state_dict()
    b = lazy("resnet50", first_block_projection=True).state_dict()
    assert list(a) == list(b)
    assert [k for k in a if ".shortcut.conv" in k] == [f"stages.{s}.0.shortcut.conv.weight" for s in range(4)]


def test_bottleneck_stride_is_on_the_3x3_conv():
    model = get_builder("resnet50")()
    block = model.stages[1][0]
    assert block.conv1.conv._stride == [1, 1]
    assert block.conv2.conv._stride == [2, 2]
    assert block.shortcut.conv._stride == [2, 2]


def test_vd_has_a_deep_stem_and_average_pools_every_strided_projection():
    for arch, first in (("resnet18_vd", 64), ("resnet50_vd", 256)):
        model = lazy(arch)
        sd = model.state_dict()
        assert model.first_conv == "stem.0.conv"
        assert [list(sd[f"stem.{i}.conv.weight"].shape) for i in range(3)] == [
            [32, 3, 3, 3],
            [32, 32, 3, 3],
            [64, 32, 3, 3],
        ]
        assert model.stem[0].conv._stride == [2, 2] and model.stem[1].conv._stride == [1, 1]
        # The first block projects at stride 1 (PaddleClas if_first): a plain 1x1 conv, no pool.
        short = model.stages[0][0].shortcut
        assert not hasattr(short, "pool") and list(short.conv.weight.shape) == [first, 64, 1, 1]
        for s in (1, 2, 3):
            short = model.stages[s][0].shortcut
            assert isinstance(short.pool, paddle.nn.AvgPool2D)
            assert short.conv._stride == [1, 1]
        assert [len(stage) for stage in model.stages] == list(
            {"resnet18_vd": (2, 2, 2, 2), "resnet50_vd": (3, 4, 6, 3)}[arch]
        )
    assert [len(stage) for stage in lazy("resnet200_vd").stages] == [3, 12, 48, 3]


def test_vd_projection_averages_before_the_1x1_conv():
    paddle.seed(1)
    block = get_builder("resnet50_vd")().stages[1][0]
    block.eval()
    x = paddle.randn([1, 256, 7, 9])  # odd: ceil mode keeps the last row and column
    with paddle.no_grad():
        out = block.shortcut(x).numpy()
        pooled = paddle.nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True)
        ref = block.shortcut.bn(block.shortcut.conv(pooled)).numpy()
    assert out.shape == (1, 512, 4, 5)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # The last column averages the one column that exists, not a zero pad.
    np.testing.assert_allclose(
        pooled.numpy()[0, :, 0, 4], x.numpy()[0, :, 0:2, 8].mean(axis=1), rtol=1e-6, atol=1e-6
    )


def test_invalid_vd_arguments():
    with pytest.raises(ValueError, match="stem_widths.*\\[32, 0\\]"):
        get_builder("resnet50")(stem_widths=[32, 0])
    with pytest.raises(ValueError, match="avg_down.*'yes'"):
        get_builder("resnet50")(avg_down="yes")


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("first_block_projection", [False, True])
def test_every_layout_covers_every_key_of_either_graph(arch, first_block_projection):
    # Every layout, not only the one the registry pairs with this graph.
    model = lazy(arch, first_block_projection=first_block_projection)
    for layout in LAYOUTS:
        mapping = check_layout_covers(model, FAMILY, layout)
        assert set(mapping) == set(model.state_dict()), layout


def test_layout_names_follow_the_sources():
    r18 = lazy("resnet18", first_block_projection=True)
    r50, r101, r152 = lazy("resnet50"), lazy("resnet101"), lazy("resnet152")
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


def test_vd_layout_names_follow_paddleclas():
    leg = get_layout(FAMILY, "paddleclas_legendary")(lazy("resnet50_vd"))
    assert leg["stem.0.conv.weight"] == "stem.0.conv.weight"
    assert leg["stem.2.bn._variance"] == "stem.2.bn._variance"
    assert leg["stages.1.0.shortcut.conv.weight"] == "blocks.3.short.conv.weight"
    assert leg["stages.3.2.conv3.bn._mean"] == "blocks.15.conv2.bn._mean"
    r200 = get_layout(FAMILY, "paddleclas_legendary")(lazy("resnet200_vd"))
    assert r200["stages.2.47.conv2.conv.weight"] == "blocks.62.conv1.conv.weight"
    assert r200["stages.3.0.shortcut.bn.weight"] == "blocks.63.short.bn.weight"
    for layout in ("fluid2019", "paddle_vision"):
        with pytest.raises(PaddleHubClsError, match=f"'{layout}' has no deep 3x3 stem.*paddleclas_legendary"):
            get_layout(FAMILY, layout)(lazy("resnet18_vd"))


def test_layout_mismatch_names_the_first_block_shortcut():
    # PaddleClas ResNet18 weights into the paddle.vision graph (no first shortcut).
    proj = lazy("resnet18", first_block_projection=True)
    plain = lazy("resnet18")
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


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    want = [(n, t) for n in DEPTH for t in ("fluid2019", "paddleclas", "paddle_vision")]
    want += [(n, "paddleclas") for n in VD] + [(n, "paddleclas_ssld") for n in VD_SSLD]
    want += [("ResNet18_dbb", "paddleclas")]  # its own checks: tests/test_models_resnet_dbb.py
    assert sorted(variants) == sorted(want)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == set(LAYOUTS)
    for name in VD:
        assert REGISTRY.get(name).architecture == f"resnet{VD[name]}_vd"
        assert REGISTRY.get(name).default_weights == "paddleclas"


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    if REGISTRY.resolve(name, tag)[1].layout == "paddleclas_legendary":
        # Shared by a model's base and SSLD variants; kept until the module ends.
        x, res = X64, oracles(name, tag, X64)
    else:
        x, res = X224, run_variant_oracle(name, tag, cleanup / "oracle")
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=x)
    assert_published_count_near(name, res)


def test_vd_wrong_mapping_or_graph_changes_the_logits(oracles):
    res = oracles("ResNet18_vd", "paddleclas", X64)
    tensors = source_tensors(res.path)

    def loaded(t, **kwargs):
        return load_via_layout(lazy("resnet18_vd", **kwargs), t, "paddleclas_legendary", FAMILY)

    assert_logits_close(logits_of(loaded(tensors), X64), res.logits)
    # Two same-shaped BN scales swapped: the file still loads, the logits do not match.
    same = loaded(swap_sources(tensors, "stem.0.bn.weight", "stem.1.bn.weight"))
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_logits_close(logits_of(same, X64), res.logits)
    with pytest.raises(WeightsMismatchError, match="stem.1.conv.weight: source \\[64, 32, 3, 3\\]"):
        loaded(swap_sources(tensors, "stem.1.conv.weight", "stem.2.conv.weight"))
    # A wrong activation in the stem, or a strided 1x1 projection instead of the average pool.
    wrong_act = loaded(tensors)
    wrong_act.stem[1].act = paddle.nn.Swish()
    for model in (wrong_act, loaded(tensors, avg_down=False)):
        with pytest.raises(AssertionError, match="max abs diff"):
            assert_logits_close(logits_of(model, X64), res.logits)


def test_new_head_keeps_every_other_weight_of_the_source(cleanup, monkeypatch):
    res = run_variant_oracle("ResNet18", "fluid2019", cleanup / "oracle")
    full = load_as_variant("ResNet18", "fluid2019", res.path, cleanup, monkeypatch)
    # Same cache: the file is now known (its sha256 was recorded on first use).
    ten = load_model("ResNet18", weights="fluid2019", num_classes=10, cache_dir=cleanup / "cache")
    assert "stages.0.0.shortcut.conv.weight" in ten.state_dict()
    assert_new_head_keeps_the_rest(full, ten, ["fc.weight", "fc.bias"])


def test_vd_weights_with_a_new_head_and_one_input_channel(oracles, cleanup, monkeypatch):
    res = oracles("ResNet18_vd", "paddleclas", X64)
    full = load_as_variant("ResNet18_vd", "paddleclas", res.path, cleanup, monkeypatch)
    # Same cache: the file is now known (its sha256 was recorded on first use).
    ten = load_model("ResNet18_vd", num_classes=10, cache_dir=cleanup / "cache")
    assert_new_head_keeps_the_rest(full, ten, ["fc.weight", "fc.bias"])
    gray = load_model("ResNet18_vd", in_chans=1, cache_dir=cleanup / "cache")
    assert list(gray.load_report.adapted) == ["stem.0.conv.weight"]
    np.testing.assert_allclose(
        gray.state_dict()["stem.0.conv.weight"].numpy(),
        full.state_dict()["stem.0.conv.weight"].numpy().sum(axis=1, keepdims=True),
        rtol=1e-5,
        atol=1e-6,
    )
    feats = load_model("ResNet18_vd", features_only=True, cache_dir=cleanup / "cache")
    with paddle.no_grad():
        maps = feats(paddle.to_tensor(X64))
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512]
