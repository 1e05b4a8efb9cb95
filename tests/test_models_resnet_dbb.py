"""ResNet18_dbb: Diverse Branch Blocks in the ResNet family, PaddleClas names, deploy-time fusion.

Fidelity of the registry variant (family ``"resnet"``, layout ``paddleclas_legendary``) runs with
the other ResNets in ``test_models_resnet.py``: PaddleClas 2.6.0's ``ResNet18(layer_type=
"DiverseBranchBlock")`` (``tests/oracles/paddleclas_fixes.py``: the name, and its float64
identity kernels cast for Paddle 3) gets random weights, writes them with ``paddle.save`` and
reports eval logits on a 64x64 input; ``load_model`` must restore the file and give the same
logits. Here: the block's math and its fusion, the source names (copied from PaddleClas's
state_dict), a wrong mapping, the load options and the export.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models._dbb import DiverseBranchBlock, reparameterize

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    X224,
    assert_load_options_work,
    assert_logits_close,
    assert_predictor_matches,
    assert_swap_is_caught,
    cleanup,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    trainable,
)

FAMILY = "resnet"
NAME, TAG, LAYOUT = "ResNet18_dbb", "paddleclas", "paddleclas_legendary"
X = np.ascontiguousarray(X224[:, :, :64, :64])


def _random_block(stride: int) -> DiverseBranchBlock:
    """A block in eval mode whose BN layers have random statistics and affine terms."""
    paddle.seed(11 + stride)
    block = DiverseBranchBlock(8, 12, 3, stride=stride, act="relu")
    for name, tensor in block.state_dict().items():
        if name.endswith("_variance"):
            tensor.set_value(paddle.rand(tensor.shape) + 0.5)
        elif name.endswith(("_mean", "bn.bias", "bn.weight", "id_conv")):
            tensor.set_value(paddle.randn(tensor.shape) * 0.5)
    block.eval()
    return block


@pytest.mark.parametrize("stride", [1, 2])
def test_the_fused_conv_equals_the_four_branches(stride):
    block = _random_block(stride)
    x = paddle.randn([2, 8, 9, 9])
    with paddle.no_grad():
        branches = block(x)
        block.reparameterize()
        fused = block(x)
    assert sorted(block.state_dict()) == ["fused.bias", "fused.weight"]
    scale = float(np.abs(branches.numpy()).max())
    np.testing.assert_allclose(fused.numpy(), branches.numpy(), rtol=0, atol=1e-4 * scale)


def test_the_pad_value_is_what_the_bn_gives_a_zero_input():
    # The avg branch's border: without the BN-valued padding, pooling would average zeros in.
    block = _random_block(1)
    x = paddle.zeros([1, 8, 5, 5])
    with paddle.no_grad():
        conv = block.avg.bn(block.avg.conv(x))
        padded = paddle.nn.functional.pad(conv, [1, 1, 1, 1], value=0.0)
        wrong = block.avg.out_bn(block.avg.pool(padded))
        # A zero input gives a constant map: every pooled value, border included, is the same.
        got = block.avg(x).numpy()
    np.testing.assert_allclose(got, np.broadcast_to(got[:, :, :1, :1], got.shape), rtol=1e-5, atol=1e-6)
    assert float(np.abs(wrong.numpy() - got).max()) > 1e-3


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("resnet18_dbb"))
    assert mapping["stem.conv.weight"] == "stem.0.conv.weight"
    assert mapping["stages.0.0.conv1.origin.conv.weight"] == "blocks.0.conv0.dbb_origin.conv.weight"
    assert mapping["stages.0.0.conv1.conv_1x1.bn._mean"] == "blocks.0.conv0.dbb_1x1.bn._mean"
    assert mapping["stages.1.1.conv2.avg.conv.weight"] == "blocks.3.conv1.dbb_avg.conv.weight"
    assert mapping["stages.1.1.conv2.avg.bn.weight"] == "blocks.3.conv1.dbb_avg.bn.bn.weight"
    assert mapping["stages.1.1.conv2.avg.out_bn._variance"] == "blocks.3.conv1.dbb_avg.avgbn._variance"
    assert mapping["stages.3.1.conv1.kxk.id_conv"] == "blocks.7.conv0.dbb_1x1_kxk.idconv1.weight"
    assert mapping["stages.3.1.conv1.kxk.bn.bias"] == "blocks.7.conv0.dbb_1x1_kxk.bn1.bn.bias"
    assert mapping["stages.3.1.conv1.kxk.conv.weight"] == "blocks.7.conv0.dbb_1x1_kxk.conv2.weight"
    assert mapping["stages.3.1.conv1.kxk.out_bn.weight"] == "blocks.7.conv0.dbb_1x1_kxk.bn2.weight"
    # The shortcuts, including the first block's projection, are plain conv-BN.
    assert mapping["stages.0.0.shortcut.conv.weight"] == "blocks.0.short.conv.weight"
    assert mapping["fc.weight"] == "fc.weight"


def test_a_wrong_mapping_changes_the_logits_or_is_refused(shared_oracles, monkeypatch):
    res = shared_oracles(NAME, TAG, X)
    # The two BNs that end the avg and the 1x1-kxk branches exchanged (same shapes).
    pair = ("stages.2.0.conv1.avg.out_bn.weight", "stages.2.0.conv1.kxk.out_bn.weight")
    assert_swap_is_caught("resnet18_dbb", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The main 3x3 and the identity-based 1x1 exchanged (different shapes): refused.
    pair = ("stages.1.1.conv1.origin.conv.weight", "stages.1.1.conv1.kxk.id_conv")
    assert_swap_is_caught("resnet18_dbb", res, FAMILY, LAYOUT, pair, monkeypatch, X)


def test_loaded_network_fuses_to_a_plain_resnet18_with_the_same_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, TAG, X)
    model = load_as_variant(NAME, TAG, res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    assert reparameterize(model) is model
    assert_logits_close(logits_of(model, X), res.logits)
    # PaddleClas's ResNet18, whose 16 block conv-BNs (BN scale and shift) became convs with a bias.
    plain = trainable(lazy("resnet18", first_block_projection=True))
    assert trainable(model) == plain - 4 * (64 + 128 + 256 + 512)
    assert not any(".origin." in k or ".kxk." in k for k in model.state_dict())


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, TAG, X)
    maps = [[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4], [1, 512, 2, 2]]
    assert_load_options_work(NAME, TAG, res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(NAME, TAG, X)
    model = load_as_variant(NAME, TAG, res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


def test_onnx_export_of_the_branches_and_of_the_fused_network(tmp_path):
    # The family's ONNX check (tests/test_deploy_onnx.py) exports its smallest model, a plain
    # ResNet18; the BN-valued padding and the identity kernel are exported here.
    from paddlehub_cls import Predictor, export
    from test_export import dygraph, random_net

    model = random_net(NAME, seed=1, size=64)
    for folder in ("branches", "fused"):
        if folder == "fused":
            reparameterize(model)
        predictor = Predictor(export(model, tmp_path / folder, input_size=64, format="onnx"), threads=1, use_gpu=False)
        assert predictor.backend == "onnxruntime"
        x = np.concatenate([X, X[:, :, ::-1, :]])  # a batch of 2: the borders follow the batch
        assert_logits_close(predictor.run(x), dygraph(model, x))
