"""EfficientNet B0-B7 and B0_small: scaling and padding rules, registry variants, fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``efficientnet`` family,
PaddleClas 2.6.0's own ``model_zoo/efficientnet.py`` class gets random weights (BN statistics
included), saves them with ``paddle.save`` and reports eval logits on a 64x64 input. The networks
are fully convolutional, and PaddleClas fixes every layer's padding from the native resolution
whatever the input, as we do, so a small input checks the same arithmetic as the native one.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.efficientnet import native_same_padding, round_filters

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_logits_close,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_from_file,
    oracle_input,
    oracles,
    variant_params,
)

FAMILY = "efficientnet"
NAMES = tuple(f"EfficientNetB{i}" for i in range(8)) + ("EfficientNetB0_small",)


def _far(ours: np.ndarray, ref: np.ndarray) -> bool:
    return float(np.abs(ours - ref).max()) > 1e-2 * max(1.0, float(np.abs(ref).max()))


# --------------------------------------------------------------------------- scaling and padding


@pytest.mark.parametrize(
    "size,stride,kernel,expected",
    [
        # SAME on an even map with stride 2 pads (0, 1) for k3 and (1, 2) for k5: asymmetric, so
        # pad before + stride on both sides and crop the first row and column.
        (224, 2, 3, (2, True)),
        (56, 2, 5, (3, True)),
        # On an odd map SAME is symmetric: (1, 1) for k3, (2, 2) for k5.
        (33, 2, 3, (1, False)),
        (65, 2, 5, (2, False)),
        # Stride 1 pads (k - 1) / 2 on each side; 1x1 convs none.
        (112, 1, 3, (1, False)),
        (14, 1, 5, (2, False)),
        (7, 1, 1, (0, False)),
    ],
)
def test_native_same_padding(size, stride, kernel, expected):
    assert native_same_padding(size, stride, kernel) == expected


@pytest.mark.parametrize("k,size", [(3, 10), (3, 11), (5, 14), (5, 15)])
def test_the_padding_and_crop_give_tensorflow_same_on_the_native_size(k, size):
    # TensorFlow SAME: pad (total // 2) before and the rest after, ceil(size / 2) outputs.
    pad, crop = native_same_padding(size, 2, k)
    x = paddle.randn([1, 1, size, size])
    w = paddle.randn([1, 1, k, k])
    total = max(k - (2 if size % 2 == 0 else 1), 0)
    ref = paddle.nn.functional.conv2d(
        paddle.nn.functional.pad(x, [total // 2, total - total // 2] * 2), w, stride=2
    )
    ours = paddle.nn.functional.conv2d(x, w, stride=2, padding=pad)
    if crop:
        ours = ours[:, :, 1:, 1:]
    assert ours.shape == [1, 1, -(-size // 2), -(-size // 2)]
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_paddings_are_fixed_by_the_native_resolution_not_the_input():
    b0, b2, small = lazy("efficientnet_b0"), lazy("efficientnet_b2"), lazy("efficientnet_b0_small")
    # B0 (224): the depthwise k3/2 conv opening the fourth group sees 28 -> asymmetric SAME.
    # B2 (260): the same conv sees 33 (260 -> 130 -> 65 -> 33) -> symmetric.
    first_of_group = [i for i, b in enumerate(b0.blocks) if b.first_in_group]
    g4_b0 = b0.blocks[first_of_group[3]].dw
    g4_b2 = b2.blocks[[i for i, b in enumerate(b2.blocks) if b.first_in_group][3]].dw
    assert (g4_b0.conv._padding, g4_b0.crop) == (2, True)
    assert (g4_b2.conv._padding, g4_b2.crop) == (1, False)
    assert (b0.stem.conv._padding, b0.stem.crop) == (2, True)
    # B0_small pads (stride - 1 + kernel - 1) // 2 symmetrically and has no squeeze-excitation.
    g2_small = small.blocks[first_of_group[2]].dw
    assert (g2_small.conv._padding, g2_small.crop) == (2, False)
    assert all(b.se is None for b in small.blocks) and all(b.se is not None for b in b0.blocks)


def test_width_and_depth_scaling_follow_the_tensorflow_rules():
    assert [round_filters(32, w) for w in (1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0)] == [32, 32, 40, 48, 48, 56, 64]
    assert round_filters(1280, 1.1) == 1408 and round_filters(1280, 2.0) == 2560
    # Repeats are scaled by depth and rounded up: B7 (3.1) has 55 blocks, B0 16.
    assert len(lazy("efficientnet_b7").blocks) == 55 and len(lazy("efficientnet_b0").blocks) == 16


@pytest.mark.filterwarnings("ignore:When training, we now always track global mean and variance")
def test_drop_connect_acts_in_training_only():
    paddle.seed(0)
    model = get_builder("efficientnet_b0")(num_classes=0)
    block = model.blocks[14]  # the last residual block: rate 0.2 * 14 / 16
    assert block.residual and block.drop_path.p == pytest.approx(0.2 * 14 / 16)
    x = paddle.randn([8, 192, 4, 4])
    block.train()
    with paddle.no_grad():
        branch = block.project(block.se(block.dw(block.expand(x))))
        y = block(x) - x
    # In training each sample's branch is dropped (0) or scaled by 1 / (1 - p).
    kept = [bool(paddle.abs(y[i]).max() > 0) for i in range(8)]
    for i in range(8):
        want = branch[i] / (1 - block.drop_path.p) if kept[i] else paddle.zeros_like(branch[i])
        np.testing.assert_allclose(y[i].numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    block.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(
            (block(x) - x).numpy(),
            block.project(block.se(block.dw(block.expand(x)))).numpy(),
            rtol=1e-5,
            atol=1e-5,
        )


# --------------------------------------------------------------------------- layouts, registry and fidelity


def test_layout_names_follow_paddleclas():
    zoo = get_layout(FAMILY, "paddleclas_model_zoo")(lazy("efficientnet_b0"))
    assert zoo["stem.conv.weight"] == "_ef._conv_stem._conv._conv._conv.weight"
    assert zoo["stem.bn._variance"] == "_ef._conv_stem._conv._bn._variance"
    # A group's first block is "_blocks.<i>.", its repeats "block.<i>." (PaddleClas add_sublayer names).
    assert zoo["blocks.0.dw.conv.weight"] == "_ef._blocks.0.._dcn._conv._conv._conv.weight"
    assert zoo["blocks.0.se.reduce.bias"] == "_ef._blocks.0.._se._conv1._conv.bias"
    assert zoo["blocks.2.expand.bn.weight"] == "_ef.block.2.._ecn._conv._bn.weight"
    assert zoo["blocks.15.project.conv.weight"] == "_ef._blocks.15.._pcn._conv._conv._conv.weight"
    assert zoo["blocks.14.se.expand.weight"] == "_ef.block.14.._se._conv2._conv.weight"
    assert zoo["head.conv.weight"] == "_conv._conv._conv.weight" and zoo["head.bn._mean"] == "_conv._bn._mean"
    assert zoo["fc.weight"] == "_fc.weight"
    assert "blocks.0.expand.conv.weight" not in zoo  # expansion 1: no expand conv


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    assert sorted(variants) == sorted((n, "paddleclas") for n in NAMES)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == {"paddleclas_model_zoo"}
    for name, crop in zip(NAMES, (224, 240, 260, 300, 380, 456, 528, 600, 224)):
        info = REGISTRY.get(name)
        assert tuple(info.input_size) == (3, crop, crop)
        pre = info.preprocess_for("paddleclas")
        assert (pre["crop"], pre["backend"], pre["interpolation"]) == (crop, "cv2", "bilinear")
        assert pre["resize_size"] == (256 if crop == 224 else crop + 32)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    res = oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    # The logits are taken from a fresh copy of the restored tensors. MKL chooses kernels by memory
    # alignment (without MKL_CBWR it promises no bit-reproducibility across alignments), and the
    # memory-mapped tensors load_model assigns differ from fresh allocations in the last bit of some
    # 1x1 convs; a random-weight EfficientNet amplifies that through 16-55 squeeze-excitation blocks
    # (B6 at 128x128: 0.3 of the logits' scale; 0.0 with MKL_CBWR=COMPATIBLE). Every tensor is
    # still the one load_model restored, compared exactly.
    info = REGISTRY.get(name)
    fresh = get_builder(info.architecture)(**info.build_kwargs(tag))
    fresh.set_state_dict({k: paddle.to_tensor(v.numpy()) for k, v in model.state_dict().items()})
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[key].numpy(), err_msg=key)
    fresh.load_report = model.load_report
    assert_fidelity(fresh, res, record_property, x=oracle_input(name))


def test_a_wrong_mapping_or_activation_does_not_reproduce_the_oracle(oracles):
    name, tag = "EfficientNetB0", "paddleclas"
    res, x = oracles(name, tag), oracle_input(name)
    assert_logits_close(logits_from_file(name, tag, res.path, x), res.logits)

    def swap(a, b):
        def edit(tensors):
            tensors[a], tensors[b] = tensors[b], tensors[a]

        return edit

    # A group's repeat and the next group's first block swapped (the "block." / "_blocks." names):
    # same shapes, other logits.
    repeat, first = "_ef.block.4.._dcn._conv._bn.weight", "_ef._blocks.5.._dcn._conv._bn.weight"
    assert _far(logits_from_file(name, tag, res.path, x, edit=swap(first, repeat)), res.logits)
    with pytest.raises(WeightsMismatchError, match=r"mis-shaped \(2\)") as err:
        logits_from_file(
            name,
            tag,
            res.path,
            x,
            edit=swap("_ef._blocks.0.._se._conv1._conv.weight", "_ef._blocks.0.._se._conv2._conv.weight"),
        )
    assert "_ef._blocks.0.._se._conv1._conv.weight: source [32, 8, 1, 1] vs network [8, 32, 1, 1]" in str(
        err.value
    )
    # Swish -> ReLU after the stem changes the logits.
    assert _far(
        logits_from_file(name, tag, res.path, x, alter=lambda m: setattr(m.stem, "act", paddle.nn.ReLU())),
        res.logits,
    )
