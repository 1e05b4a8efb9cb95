"""features_only feature maps, num_classes=0 pooled features, forward_features, for every family."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls import load_model, model_info
from paddlehub_cls.features import FeatureListNet, resolve_out_indices
from paddlehub_cls.registry import load_registry


def _smallest_per_family():
    reg = load_registry()
    best = {}
    for name in reg.names():
        info = reg.get(name)
        size = info.num_params["value"] if info.num_params else float("inf")
        if info.family not in best or size < best[info.family][0]:
            best[info.family] = (size, name)
    return sorted(name for _, name in best.values())


FAMILY_MODELS = _smallest_per_family()
# The 2019 GoogLeNet graph max-pools 3x3/2 without padding (112 -> 55 -> 27 -> 13 -> 6), so its
# maps are one pixel short of 224 / stride; every other family's are exact.
UNPADDED_POOLS = {"googlenet"}
# alexnet, squeezenet: unpadded 3x3/2 max pools as well (AlexNet 55, 27, 13, 6; SqueezeNet1_1 55, 27, 13).
UNPADDED_POOLS |= {"alexnet", "squeezenet"}
# SqueezeNet has three pools after its stride-2 stem: its last map is at stride 16.
OUTPUT_STRIDE_16 = {"squeezenet"}
# HRNet's stages are its four parallel branches; its classification head (incre, downsamp, final)
# runs after them, so forward_features returns the head's 2048-channel map, not the last branch.
# EfficientNet's (and TinyNet's, EfficientNetV2's) forward_features ends with its widening 1x1 head conv, after its
# last stage. (MobileNetV3's widening conv_feature is its last feature_info stage, as MobileNetV2's conv_head is.)
# So do MobileViT v1's and the v1-style MobileViTV3's (their smallest models), after their five stages.
HEAD_AFTER_STAGES = {"efficientnet", "efficientnet_v2", "hrnet", "mobilevit", "mobilevit_v3", "tinynet"}
# Plain ViTs keep one token grid, so every stage has the patch stride (16 for the smallest of
# each family), and forward_features returns the tokens, class token first.
TOKEN_FAMILIES = {"vision_transformer", "distilled_vision_transformer"}
# Unpadded stems and grid reductions shrink the maps further (Inception v3 at 224: 109, 52, 25,
# 12, 5): a stage's stride is the power of two nearest to 224 / its side.
NEAREST_STRIDE = {
    "inception_v3",
    "inception_v4",
}
# CvT's forward_features returns its last stage's tokens, class token first, like ViT; that stage
# is at stride 16.
TOKEN_FAMILIES |= {"cvt"}
# TNT keeps one grid of patch tokens, like ViT.
TOKEN_FAMILIES |= {"tnt"}
# LeViT halves its token grid as (n - 1) // 2 + 1 (14, 7, 4 at 224: the last map is 224 / 56, rounded
# up), and its last stage is at the nominal stride 64.
CEIL_GRIDS = {"levit"}
LAST_STRIDE = {"levit": 64}


def test_every_family_is_covered():
    families = {model_info(n).family for n in FAMILY_MODELS}
    assert {"resnet", "vgg", "mobilenet_v1", "mobilenet_v2", "shufflenet_v2", "googlenet"} <= families


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_feature_maps_match_feature_info_at_224(name):
    paddle.seed(0)
    net = load_model(name, pretrained=False, features_only=True)
    assert isinstance(net, FeatureListNet)
    declared = net.model.feature_info
    assert net.feature_info.channels() == [d["num_chs"] for d in declared]
    x = paddle.rand([1, 3, 224, 224])
    with paddle.no_grad():
        maps = net(x)
        last = net.model.forward_features(x)
    assert len(maps) == len(declared) >= 4
    strides = net.feature_info.reduction()
    family = model_info(name).family
    last_stride = LAST_STRIDE.get(family, 16 if family in TOKEN_FAMILIES | OUTPUT_STRIDE_16 else 32)
    assert strides == sorted(strides) and strides[-1] == last_stride
    for fmap, ch, r in zip(maps, net.feature_info.channels(), strides):
        n, c, h, w = fmap.shape
        assert (n, c) == (1, ch)
        if family in NEAREST_STRIDE:
            assert 2 ** int(round(np.log2(224 / h))) == r and w == h, (name, fmap.shape, r)
            continue
        want = {224 // r, 224 // r - 1} if family in UNPADDED_POOLS else {224 // r}
        if family in CEIL_GRIDS:
            want = {-(-224 // r)}
        assert h in want and w == h, (name, fmap.shape, r)
    if model_info(name).family in HEAD_AFTER_STAGES:
        assert last.shape[2:] == maps[-1].shape[2:] and last.shape[1] != maps[-1].shape[1]
        return
    if family in TOKEN_FAMILIES:
        # the patch tokens (after the class token), laid out as a map
        last = last[:, net.model.num_prefix_tokens :].transpose([0, 2, 1]).reshape(maps[-1].shape)
    # The deepest stage is what forward_features returns.
    np.testing.assert_allclose(maps[-1].numpy(), last.numpy(), rtol=1e-5, atol=1e-6)


def test_out_indices_select_and_order_stages():
    net = load_model("ResNet18", pretrained=False, features_only=True, out_indices=(1, -1))
    assert net.feature_info.channels() == [128, 512] and net.feature_info.reduction() == [8, 32]
    assert net.feature_info.module_name() == ["stages.1", "stages.3"]
    maps = net(paddle.rand([2, 3, 64, 64]))
    assert [tuple(m.shape) for m in maps] == [(2, 128, 8, 8), (2, 512, 2, 2)]
    assert net.feature_info.channels(0) == 128 and net.feature_info[1]["index"] == 3


def test_features_carry_the_loaded_weights_and_train(tmp_path):
    paddle.seed(3)
    full = load_model("MobileNetV1", pretrained=False)
    path = tmp_path / "mnv1.pdparams"
    paddle.save(full.state_dict(), str(path))
    x = paddle.rand([2, 3, 96, 96])

    net = load_model("MobileNetV1", weights=path, features_only=True)
    assert net.load_report is not None and net.pretrained_cfg["name"] == "MobileNetV1"
    with paddle.no_grad():
        np.testing.assert_allclose(net(x)[-1].numpy(), full.forward_features(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not [k for k in net.state_dict() if k.startswith("model.fc.weight")]  # no classifier

    pooled = load_model("MobileNetV1", weights=path, num_classes=0)
    with paddle.no_grad():
        got = pooled(x).numpy()
        want = full.forward_head(full.forward_features(x), pre_logits=True).numpy()
    assert got.shape == (2, full.num_features)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    net.train()
    loss = sum(m.mean() for m in net(x))
    loss.backward()
    assert net.model.stem.conv.weight.grad is not None


def test_argument_errors():
    with pytest.raises(ValueError, match="leave num_classes unset"):
        load_model("ResNet18", pretrained=False, features_only=True, num_classes=10)
    with pytest.raises(ValueError, match="with features_only=True"):
        load_model("ResNet18", pretrained=False, out_indices=(0,))
    with pytest.raises(ValueError, match="has 4 stages"):
        load_model("ResNet18", pretrained=False, features_only=True, out_indices=(4,))
    with pytest.raises(ValueError, match="increasing depth"):
        resolve_out_indices((2, 1), 4)
    with pytest.raises(ValueError, match="increasing depth"):
        resolve_out_indices((1, -3), 4)
    with pytest.raises(ValueError, match="non-empty"):
        resolve_out_indices(3, 4)
