"""VGG11/13/16/19: graph, layouts, and fidelity to the three weight sources.

VGG is large (VGG19: 144 M parameters, 575 MB in float32), so every test keeps at
most one full network alive besides the loader's arrays, uses batch 1, and removes
the weight files it wrote when it ends. Oracles: paddle.vision (VGG16/19, in-process),
PaddleClas 2.6.0 legendary ``VGGNet`` and the 2019 fluid program (subprocesses).
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from oracles.fluid import run_fluid_oracle
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup is a fixture)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_logits_close,
    cleanup,
    lazy,
    load_as_variant,
    logits_of,
    numel,
    run_variant_oracle,
    variant_params,
)

FAMILY = "vgg"
NAMES = ["VGG11", "VGG13", "VGG16", "VGG19"]
CONVS = {"VGG11": 8, "VGG13": 10, "VGG16": 13, "VGG19": 16}
# arch kwargs each layout's graph needs (the registry must give the same; checked below)
LAYOUT_KWARGS = {
    "fluid2019": {"conv_bias": True, "dropout_mode": "downscale_in_infer"},
    "paddleclas_legendary": {"conv_bias": False, "dropout_mode": "downscale_in_infer"},
    "paddle_vision": {"conv_bias": True, "dropout_mode": "upscale_in_train"},
}


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("name", NAMES)
def test_five_stages_with_the_configured_convs(name):
    model = lazy(name.lower())
    assert len(model.stages) == 5 and sum(len(s.convs) for s in model.stages) == CONVS[name]


def test_adaptive_pool_is_the_identity_on_a_7x7_map():
    paddle.seed(0)
    model = get_builder("vgg11")()
    model.eval()
    fmap = paddle.randn([1, 512, 7, 7])
    np.testing.assert_array_equal(model.pool(fmap).numpy(), fmap.numpy())
    with paddle.no_grad():
        # A 224x224 image gives the 7x7 map fc6 was trained on.
        assert model.forward_features(paddle.to_tensor(X224)).shape == [1, 512, 7, 7]


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


# --------------------------------------------------------------------------- layouts


def test_registry_variants_use_the_graph_of_their_layout():
    for name in NAMES:
        info = REGISTRY.get(name)
        assert info.architecture == name.lower() and info.family == FAMILY
        for tag, variant in info.weights.items():
            assert info.build_kwargs(tag) == LAYOUT_KWARGS[variant.layout], (name, tag)


def test_layout_names_follow_the_sources():
    model = lazy("vgg19")
    fluid = get_layout(FAMILY, "fluid2019")(model)
    assert fluid["stages.4.convs.3.weight"] == "conv5_4_weights"
    assert fluid["stages.4.convs.3.bias"].key == "conv5_4_offset"
    assert (fluid["fc1.weight"], fluid["fc2.bias"], fluid["fc.weight"]) == (
        "fc6_weights",
        "fc7_offset",
        "fc8_weights",
    )
    vision = get_layout(FAMILY, "paddle_vision")(model)
    # features: conv/ReLU pairs, a max pool after each stage -> stage 2 starts at index 5.
    assert vision["stages.1.convs.0.weight"] == "features.5.weight"
    assert vision["stages.4.convs.3.bias"] == "features.34.bias"
    assert (vision["fc1.weight"], vision["fc2.weight"], vision["fc.bias"]) == (
        "classifier.0.weight",
        "classifier.3.weight",
        "classifier.6.bias",
    )
    clas = get_layout(FAMILY, "paddleclas_legendary")(lazy("vgg19", conv_bias=False))
    assert clas["stages.2.convs.3.weight"] == "conv_block_3.conv4.weight"
    assert (clas["fc1.bias"], clas["fc.weight"]) == ("fc1.bias", "fc3.weight")


def test_fluid_archive_without_conv_biases_is_filled_and_reported():
    model = lazy("vgg11")
    ours = model.state_dict()
    mapping = get_layout(FAMILY, "fluid2019")(model)
    tensors = {
        getattr(s, "key", s): np.broadcast_to(np.float32(1), ours[k].shape) for k, s in mapping.items()
    }
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


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_holds_only_parameters(name):
    # No buffers (no batch norm): the published counts and the state_dict agree.
    model = lazy(name.lower())
    assert numel(model) == sum(int(np.prod(p.shape)) for p in model.parameters())


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("name,tag", variant_params(FAMILY, marks=[pytest.mark.slow]))
def test_fidelity(name, tag, cleanup, monkeypatch, record_property):
    # The file:// mirror, not the test HTTP server: that one would hold the file in memory.
    res = run_variant_oracle(name, tag, cleanup / "oracle")
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property)
    if tag == "fluid2019":
        # The dropout mode belongs to the graph: with paddle.vision's (identity at inference)
        # the same weights give other logits.
        model.drop1, model.drop2 = paddle.nn.Identity(), paddle.nn.Identity()
        scale = max(1.0, float(np.abs(res.logits).max()))
        assert float(np.abs(logits_of(model) - res.logits).max()) > 1e-2 * scale


@pytest.mark.slow
def test_fidelity_fluid2019_archive_without_conv_biases(cleanup, monkeypatch, record_property):
    # The graph after 2019-09-05 (models@d6c6511): same names, no convX_Y_offset files.
    res = run_fluid_oracle(
        "oracles.fluid_vgg", "build", {"depth": 11, "conv_bias": False}, "VGG11", cleanup / "oracle", X224
    )
    model = load_as_variant("VGG11", "fluid2019", res.path, cleanup, monkeypatch)
    filled = model.load_report.filled
    assert len(filled) == CONVS["VGG11"] and all("filled with 0.0" in why for why in filled.values())
    record_property("max_abs_diff", assert_logits_close(logits_of(model), res.logits))
