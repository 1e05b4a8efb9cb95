"""ResNeXt and ResNeXt-vd 50/101/152 x 32x4d/64x4d: graphs, layouts, and fidelity to PaddleClas.

Fidelity (``tests/_modelcheck.py``): for every registry variant of the ``resnext`` and
``resnext_vd`` families, PaddleClas 2.6.0's own class (``model_zoo/resnext.py``,
``model_zoo/resnext_vd.py``) gets random weights (BN statistics included), saves them with
``paddle.save`` and reports logits on a 64x64 input (a 2x2 last map); ``load_model`` must
restore the file served at the variant's URL and give the same logits. Expected source
names are copied from those files.
The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and oracles are fixtures)
    REGISTRY,
    X224,
    assert_fidelity,
    assert_published_count_near,
    assert_logits_close,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    load_via_layout,
    logits_of,
    oracles,
    source_tensors,
    swap_sources,
    variant_params,
)

FAMILIES = ("resnext", "resnext_vd")
X64 = np.ascontiguousarray(X224[:, :, :64, :64])
NAMES = [f"ResNeXt{d}{vd}_{c}x4d" for vd in ("", "_vd") for d in (50, 101, 152) for c in (32, 64)]


# --------------------------------------------------------------------------- graphs


@pytest.mark.parametrize(
    "card,widths,outs", [(32, (128, 256, 512, 1024), 2), (64, (256, 512, 1024, 2048), 1)]
)
def test_widths_groups_and_stage_outputs_follow_the_cardinality(card, widths, outs):
    model = lazy(f"resnext101_{card}x4d")
    sd = model.state_dict()
    assert [len(s) for s in model.stages] == [3, 4, 23, 3]
    assert sd["stem.conv.weight"].shape == [64, 3, 7, 7]
    for s, width in enumerate(widths):
        block = model.stages[s][0]
        assert block.conv2.conv._groups == card
        stride = 1 if s == 0 else 2
        assert block.conv1.conv._stride == [1, 1] and block.conv2.conv._stride == [stride, stride]
        assert sd[f"stages.{s}.0.conv2.conv.weight"].shape == [width, width // card, 3, 3]
        assert sd[f"stages.{s}.0.conv3.conv.weight"].shape == [outs * width, width, 1, 1]
        assert block.se is None
    assert model.num_features == outs * widths[-1] == 2048
    assert [k for k in sd if k.endswith("shortcut.conv.weight")] == [
        f"stages.{s}.0.shortcut.conv.weight" for s in range(4)
    ]


def test_vd_adds_the_deep_stem_and_average_pool_shortcuts_only():
    plain, vd = lazy("resnext50_32x4d"), lazy("resnext50_vd_32x4d")
    a, b = plain.state_dict(), vd.state_dict()
    assert sorted(set(a) - set(b)) == sorted(
        f"stem.{k}" for k in ("conv.weight", "bn.weight", "bn.bias", "bn._mean", "bn._variance")
    )
    assert all(a[k].shape == b[k].shape for k in a if not k.startswith("stem."))
    assert [b[f"stem.{i}.conv.weight"].shape[0] for i in range(3)] == [32, 32, 64]
    assert not hasattr(vd.stages[0][0].shortcut, "pool")
    assert all(isinstance(vd.stages[s][0].shortcut.pool, paddle.nn.AvgPool2D) for s in (1, 2, 3))
    assert all(not hasattr(plain.stages[s][0].shortcut, "pool") for s in range(4))


def test_invalid_depth_or_cardinality():
    from paddlehub_cls.models.resnext import resnext

    with pytest.raises(ValueError, match="depth must be one of \\[50, 101, 152\\], got 18"):
        resnext(18, 32)
    with pytest.raises(ValueError, match="cardinality must be one of \\[32, 64\\], got 8"):
        resnext(50, 8)


# --------------------------------------------------------------------------- layouts


def test_layout_names_follow_paddleclas():
    zoo = get_layout("resnext", "paddleclas_model_zoo")(lazy("resnext101_64x4d"))
    assert zoo["stem.conv.weight"] == "conv._conv.weight"
    assert zoo["stem.bn._variance"] == "conv._batch_norm._variance"
    assert zoo["stages.0.0.shortcut.conv.weight"] == "bb_0_0.short._conv.weight"
    assert zoo["stages.2.22.conv2.conv.weight"] == "bb_2_22.conv1._conv.weight"
    assert zoo["stages.3.2.conv3.bn.bias"] == "bb_3_2.conv2._batch_norm.bias"
    assert zoo["fc.weight"] == "out.weight" and zoo["fc.bias"] == "out.bias"
    vd = get_layout("resnext_vd", "paddleclas_model_zoo")(lazy("resnext152_vd_32x4d"))
    assert vd["stem.0.conv.weight"] == "conv1_1._conv.weight"
    assert vd["stem.2.bn._mean"] == "conv1_3._batch_norm._mean"
    assert vd["stages.2.35.conv1.bn.weight"] == "bb_2_35.conv0._batch_norm.weight"
    assert vd["stages.1.0.shortcut.conv.weight"] == "bb_1_0.short._conv.weight"


def test_every_registry_variant_of_the_families_is_covered():
    variants = family_variants("resnext") + family_variants("resnext_vd")
    assert sorted(variants) == sorted((n, "paddleclas") for n in NAMES)
    for name in NAMES:
        info = REGISTRY.get(name)
        assert info.architecture == name.lower() and info.default_weights == "paddleclas"
        assert REGISTRY.resolve(name, "paddleclas")[1].layout == "paddleclas_model_zoo"


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("name,tag", variant_params("resnext") + variant_params("resnext_vd"))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    res = oracles(name, tag, X64)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X64)
    assert_published_count_near(name, res)


def test_wrong_mapping_or_activation_changes_the_logits(oracles):
    res = oracles("ResNeXt50_vd_32x4d", "paddleclas", X64)
    tensors = source_tensors(res.path)

    def loaded(t):
        return load_via_layout(lazy("resnext50_vd_32x4d"), t, "paddleclas_model_zoo", "resnext_vd")

    assert_logits_close(logits_of(loaded(tensors), X64), res.logits)
    # Same shape (both [256] BN scales): loads, but the logits differ.
    same = loaded(swap_sources(tensors, "bb_0_0.conv2._batch_norm.weight", "bb_0_0.short._batch_norm.weight"))
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_logits_close(logits_of(same, X64), res.logits)
    # Different shapes: refused by name.
    with pytest.raises(WeightsMismatchError, match="bb_0_0.conv0._conv.weight"):
        loaded(swap_sources(tensors, "bb_0_0.conv0._conv.weight", "bb_0_0.conv2._conv.weight"))
    wrong_act = loaded(tensors)
    wrong_act.stages[0][0].conv1.act = paddle.nn.Swish()
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_logits_close(logits_of(wrong_act, X64), res.logits)
