"""SE-ResNeXt50/101_32x4d and SE-ResNeXt152_64x4d: graphs, layouts, dropout modes and fidelity.

Fidelity: for every (model, variant) registry.json lists for the ``se_resnext`` family, the
variant's oracle (PaddleClas 2.6.0 ``model_zoo`` in a subprocess, or the 2019 fluid program
with its inference-time dropout scale) gets random weights, writes them in its source's real
format with its own writer, and reports eval logits on a fixed input; ``load_model`` must
restore that file into our network and give the same logits. Expected source names in the
layout tests are copied from the source code (models@c1c5ed6 ``models_name/se_resnext.py``,
PaddleClas 2.6.0 ``model_zoo/se_resnext.py``). PaddleClas's SE_ResNeXt152_64x4d cannot run as
shipped (its first block expects 64 channels, the stem gives 128); its oracle is PaddleClas's
class with those two layers rebuilt for 128 (``tests/oracles/paddleclas_fixes.py``), run on 64x64.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from oracles import OracleError
from oracles.paddleclas import run_paddleclas
from paddlehub_cls.errors import PaddleHubClsError, WeightsMismatchError
from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and oracles are fixtures)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_logits_close,
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

FAMILY = "se_resnext"
LAYOUTS = ("fluid2019", "paddleclas_model_zoo")
NAMES = ("SE_ResNeXt50_32x4d", "SE_ResNeXt101_32x4d")
SE152 = "SE_ResNeXt152_64x4d"
X64 = np.ascontiguousarray(X224[:, :, :64, :64])
FLUID_DROPOUT = {"dropout": 0.5, "dropout_mode": "downscale_in_infer"}


# --------------------------------------------------------------------------- graphs


def test_blocks_follow_the_2019_width_group_and_stride_rules():
    model = lazy("se_resnext101_32x4d")
    assert [len(s) for s in model.stages] == [3, 4, 23, 3]
    sd = model.state_dict()
    for s, width in enumerate((128, 256, 512, 1024)):
        block = model.stages[s][0]
        assert block.conv2.conv._groups == 32
        # The stride sits on the grouped 3x3 conv (and the projection), not on the first 1x1.
        stride = 1 if s == 0 else 2
        assert block.conv1.conv._stride == [1, 1]
        assert block.conv2.conv._stride == [stride, stride]
        assert block.shortcut.conv._stride == [stride, stride]
        assert sd[f"stages.{s}.0.conv2.conv.weight"].shape == [width, width // 32, 3, 3]
        assert sd[f"stages.{s}.0.conv3.conv.weight"].shape == [2 * width, width, 1, 1]
        assert sd[f"stages.{s}.0.se.squeeze.weight"].shape == [2 * width, 2 * width // 16]
        assert sd[f"stages.{s}.0.se.excite.weight"].shape == [2 * width // 16, 2 * width]
    # Only the first block of a stage projects its shortcut.
    assert [k for k in sd if k.endswith("shortcut.conv.weight")] == [
        f"stages.{s}.0.shortcut.conv.weight" for s in range(4)
    ]
    assert sd["stem.conv.weight"].shape == [64, 3, 7, 7]


def test_dropout_scales_logits_at_inference_only_in_the_2019_mode():
    paddle.seed(2)
    fluid = get_builder("se_resnext50_32x4d")(**FLUID_DROPOUT)
    zoo = get_builder("se_resnext50_32x4d")(dropout=0.0)
    upscale = get_builder("se_resnext50_32x4d")(dropout=0.5, dropout_mode="upscale_in_train")
    zoo.set_state_dict(fluid.state_dict())
    upscale.set_state_dict(fluid.state_dict())
    x = paddle.to_tensor(X224[:, :, :64, :64])
    for m in (fluid, zoo, upscale):
        m.eval()
    with paddle.no_grad():
        pooled = zoo.forward_head(zoo.forward_features(x), pre_logits=True)
        w, b = zoo.fc.weight, zoo.fc.bias
        np.testing.assert_allclose(fluid(x).numpy(), (0.5 * pooled @ w + b).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(zoo(x).numpy(), (pooled @ w + b).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(upscale(x).numpy(), zoo(x).numpy())
        # Pooled features are returned unscaled: the scale belongs to the classifier's input.
        np.testing.assert_array_equal(
            fluid.forward_head(fluid.forward_features(x), pre_logits=True).numpy(), pooled.numpy()
        )
        fluid.reset_classifier(0)
        np.testing.assert_array_equal(fluid(x).numpy(), pooled.numpy())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="dropout_mode.*'sometimes'"):
        get_builder("se_resnext50_32x4d")(dropout=0.5, dropout_mode="sometimes")
    with pytest.raises(ValueError, match="dropout.*1.0"):
        get_builder("se_resnext50_32x4d")(dropout=1.0)
    with pytest.raises(TypeError, match="first_block_projection"):
        get_builder("se_resnext50_32x4d")(first_block_projection=True)


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_the_sources():
    m50, m101 = lazy("se_resnext50_32x4d"), lazy("se_resnext101_32x4d")
    f50 = get_layout(FAMILY, "fluid2019")(m50)
    assert f50["stem.conv.weight"] == "conv1_weights"
    assert f50["stem.bn.weight"] == "conv1_bn_scale"
    assert f50["stages.0.0.conv1.conv.weight"] == "conv2_1_x1_weights"
    assert f50["stages.0.0.conv2.bn._variance"] == "conv2_1_x2_bn_variance"
    assert f50["stages.0.0.shortcut.bn._mean"] == "conv2_1_prj_bn_mean"
    assert f50["stages.0.0.se.squeeze.weight"] == "fc2_1_sqz_weights"
    assert f50["stages.0.0.se.squeeze.bias"] == "fc2_1_sqz_offset"
    assert f50["stages.3.2.conv3.bn.bias"] == "conv5_3_x3_bn_offset"
    assert f50["fc.weight"] == "fc6_weights" and f50["fc.bias"] == "fc6_offset"
    f101 = get_layout(FAMILY, "fluid2019")(m101)
    assert f101["stages.2.22.se.excite.bias"] == "fc4_23_exc_offset"
    assert f101["stages.2.22.conv2.conv.weight"] == "conv4_23_x2_weights"
    zoo = get_layout(FAMILY, "paddleclas_model_zoo")(m101)
    assert zoo["stem.conv.weight"] == "conv._conv.weight"
    assert zoo["stem.bn._variance"] == "conv._batch_norm._variance"
    assert zoo["stages.0.0.shortcut.conv.weight"] == "bb_0_0.short._conv.weight"
    assert zoo["stages.2.22.se.excite.bias"] == "bb_2_22.scale.excitation.bias"
    assert zoo["stages.1.3.conv1.bn.weight"] == "bb_1_3.conv0._batch_norm.weight"
    assert zoo["stages.3.2.conv3.conv.weight"] == "bb_3_2.conv2._conv.weight"
    assert zoo["fc.weight"] == "out.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    want = [(n, t) for n in NAMES for t in ("fluid2019", "paddleclas")] + [(SE152, "paddleclas")]
    assert sorted(variants) == sorted(want)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == set(LAYOUTS)
    for name in NAMES:
        assert REGISTRY.get(name).build_kwargs("fluid2019") == FLUID_DROPOUT
        assert REGISTRY.get(name).build_kwargs("paddleclas").get("dropout", 0.0) == 0.0


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    info = REGISTRY.get(name)
    if name == SE152:
        # 4x the work of the 101: the smallest input that keeps a 2x2 last map, and one
        # oracle run shared with the wrong-mapping test.
        x, res = X64, oracles(name, tag, X64)
    else:
        x, res = X224, run_variant_oracle(name, tag, cleanup / "oracle")
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=x)
    # The other source's dropout mode on the same weights does not reproduce the oracle.
    other = info.build_kwargs("paddleclas") if tag == "fluid2019" else FLUID_DROPOUT
    wrong = get_builder(info.architecture)(**other)
    wrong.set_state_dict(model.state_dict())
    diff = float(np.abs(logits_of(wrong, x) - res.logits).max())
    assert diff > 1e-2 * max(1.0, float(np.abs(res.logits).max())), diff


def test_se_resnext152_has_the_deep_stem_and_feeds_its_128_channels_on():
    model = lazy("se_resnext152_64x4d")
    sd = model.state_dict()
    stem = [sd[f"stem.{i}.conv.weight"].shape for i in range(3)]
    assert stem == [[64, 3, 3, 3], [64, 64, 3, 3], [128, 64, 3, 3]]
    assert [len(s) for s in model.stages] == [3, 8, 36, 3]
    assert sd["stages.0.0.conv1.conv.weight"].shape == [256, 128, 1, 1]
    assert sd["stages.0.0.shortcut.conv.weight"].shape == [256, 128, 1, 1]
    assert sd["stages.3.0.conv2.conv.weight"].shape == [2048, 32, 3, 3]  # 64 groups
    assert sd["stages.3.0.se.squeeze.weight"].shape == [2048, 128]
    # No average-pool shortcut (that is vd): a strided 1x1 projection.
    assert model.stages[1][0].shortcut.conv._stride == [2, 2]
    zoo = get_layout(FAMILY, "paddleclas_model_zoo")(model)
    assert zoo["stem.1.bn._mean"] == "conv1_2._batch_norm._mean"
    assert zoo["stages.2.35.se.excite.weight"] == "bb_2_35.scale.excitation.weight"
    with pytest.raises(PaddleHubClsError, match="'fluid2019' has no deep 3x3 stem"):
        get_layout(FAMILY, "fluid2019")(model)


def test_paddleclas_se_resnext152_cannot_run_as_shipped(tmp_path):
    with pytest.raises(OracleError, match="input's channels is 128.*filter's channels is 64"):
        run_paddleclas("ppcls.arch.backbone.model_zoo.se_resnext", SE152, {}, tmp_path, X64[:, :, :32, :32])


def test_se_resnext152_wrong_mapping_fails(oracles):
    res = oracles(SE152, "paddleclas", X64)
    tensors = source_tensors(res.path)

    def loaded(t):
        return load_via_layout(lazy("se_resnext152_64x4d"), t, "paddleclas_model_zoo", FAMILY)

    assert_logits_close(logits_of(loaded(tensors), X64), res.logits)
    same = loaded(swap_sources(tensors, "bb_0_0.conv2._batch_norm.weight", "bb_0_0.short._batch_norm.weight"))
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_logits_close(logits_of(same, X64), res.logits)
    with pytest.raises(WeightsMismatchError, match="bb_0_0.scale.squeeze.weight: source \\[16, 256\\]"):
        loaded(swap_sources(tensors, "bb_0_0.scale.squeeze.weight", "bb_0_0.scale.excitation.weight"))
