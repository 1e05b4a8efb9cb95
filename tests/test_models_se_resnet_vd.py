"""SE-ResNet18/34/50-vd, SE-ResNeXt50-vd 32x4d, SENet154-vd and ResNet50-vc: options of the
ResNet module, their PaddleClas names and fidelity.

Fidelity: for every (model, variant) registry.json lists for the ``se_resnet_vd``,
``se_resnext_vd`` and ``resnet_vc`` families, PaddleClas 2.6.0's own ``model_zoo`` builder
(``se_resnet_vd.py``, ``se_resnext_vd.py``, ``resnet_vc.py``) runs in a subprocess with random
weights (BN statistics included), writes them with ``paddle.save``, and reports eval logits on a
64x64 input (a 2x2 last map); ``load_model`` must restore that file, served at the variant's real
URL, and give the same logits. Expected source names are copied from PaddleClas's state_dicts of
``SE_ResNet18_vd()``, ``SENet154_vd()`` and ``ResNet50_vc()``. The checks every architecture
shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_load_options_work,
    assert_logits_differ,
    assert_predictor_matches,
    assert_published_count_near,
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    load_mapped,
    shared_oracles,
    variant_params,
)

LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 291-293, 297-298 and 268.
VARIANTS = {
    "se_resnet_vd": ["SE_ResNet18_vd", "SE_ResNet34_vd", "SE_ResNet50_vd"],
    "se_resnext_vd": ["SE_ResNeXt50_vd_32x4d", "SENet154_vd"],
    "resnet_vc": ["ResNet50_vc"],
}
X = family_input("se_resnet_vd")


# --------------------------------------------------------------------------- graphs


def test_se_resnet_vd_puts_se_in_every_block_and_projects_the_first_one():
    model = lazy("se_resnet18_vd")
    sd = model.state_dict()
    assert [sd[f"stem.{i}.conv.weight"].shape[0] for i in range(3)] == [32, 32, 64]
    for s, width in enumerate((64, 128, 256, 512)):
        for b in range(2):
            assert sd[f"stages.{s}.{b}.se.squeeze.weight"].shape == [width, width // 16]
    # The first block projects its 64 channels at stride 1 (no pool); later stages average-pool first.
    assert sd["stages.0.0.shortcut.conv.weight"].shape == [64, 64, 1, 1]
    assert not hasattr(model.stages[0][0].shortcut, "pool")
    assert all(isinstance(model.stages[s][0].shortcut.pool, paddle.nn.AvgPool2D) for s in (1, 2, 3))
    assert lazy("se_resnet50_vd").state_dict()["stages.3.2.se.excite.weight"].shape == [128, 2048]


def test_se_resnext_vd_has_the_64_64_128_stem_and_average_pool_shortcuts():
    for builder, groups, depths in (("se_resnext50_vd_32x4d", 32, [3, 4, 6, 3]), ("senet154_vd", 64, [3, 8, 36, 3])):
        model = lazy(builder)
        sd = model.state_dict()
        assert [sd[f"stem.{i}.conv.weight"].shape[0] for i in range(3)] == [64, 64, 128]
        assert sd["stages.0.0.conv1.conv.weight"].shape[1] == 128
        assert [len(s) for s in model.stages] == depths
        assert model.stages[3][0].conv2.conv._groups == groups
        assert all(isinstance(model.stages[s][0].shortcut.pool, paddle.nn.AvgPool2D) for s in (1, 2, 3))
        assert sd["stages.3.0.se.squeeze.weight"].shape == [2048, 128]


def test_vc_has_the_deep_stem_and_strided_projections():
    model = lazy("resnet50_vc")
    assert [model.stem[i].conv.weight.shape[0] for i in range(3)] == [32, 32, 64]
    assert model.stages[1][0].shortcut.conv._stride == [2, 2]
    assert not any(hasattr(model.stages[s][0].shortcut, "pool") for s in range(4))
    assert model.stages[0][0].se is None


def test_layout_names_follow_paddleclas():
    se18 = get_layout("se_resnet_vd", LAYOUT)(lazy("se_resnet18_vd"))
    assert se18["stem.1.conv.weight"] == "conv1_2._conv.weight"
    assert se18["stages.0.0.conv2.bn._mean"] == "bb_0_0.conv1._batch_norm._mean"
    assert se18["stages.0.0.shortcut.conv.weight"] == "bb_0_0.short._conv.weight"
    assert se18["stages.3.1.se.excite.bias"] == "bb_3_1.scale.excitation.bias"
    assert se18["fc.weight"] == "out.weight"
    senet = get_layout("se_resnext_vd", LAYOUT)(lazy("senet154_vd"))
    assert senet["stem.2.bn.weight"] == "conv1_3._batch_norm.weight"
    assert senet["stages.2.35.se.squeeze.weight"] == "bb_2_35.scale.squeeze.weight"
    assert senet["stages.1.0.shortcut.bn._variance"] == "bb_1_0.short._batch_norm._variance"
    vc = get_layout("resnet_vc", LAYOUT)(lazy("resnet50_vc"))
    assert vc["stem.0.conv.weight"] == "conv1_1._conv.weight"
    assert vc["stages.2.5.conv3.conv.weight"] == "bb_2_5.conv2._conv.weight"
    assert vc["fc.bias"] == "out.bias"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_families_is_covered():
    for family, names in VARIANTS.items():
        assert sorted(family_variants(family)) == sorted((n, "paddleclas") for n in names)
        assert {REGISTRY.resolve(n, "paddleclas")[1].layout for n in names} == {LAYOUT}


def test_a_wrong_mapping_or_shortcut_changes_the_logits(shared_oracles, monkeypatch):
    res = shared_oracles("SE_ResNet18_vd", "paddleclas")
    # The SE layers of two blocks of one stage exchanged (same shapes): logits far from the oracle's.
    pair = ("stages.2.0.se.squeeze.weight", "stages.2.1.se.squeeze.weight")
    assert_swap_is_caught("se_resnet18_vd", res, "se_resnet_vd", LAYOUT, pair, monkeypatch, X)
    # Squeeze and excitation exchanged (transposed shapes): refused.
    pair = ("stages.1.1.se.squeeze.weight", "stages.1.1.se.excite.weight")
    assert_swap_is_caught("se_resnet18_vd", res, "se_resnet_vd", LAYOUT, pair, monkeypatch, X)


def test_vc_weights_in_the_vd_graph_give_other_logits(shared_oracles):
    # vc and vd have the same keys: only the strided projections tell them apart.
    res = shared_oracles("ResNet50_vc", "paddleclas")
    vd_graph = load_mapped(get_builder("resnet50_vc")(avg_down=True), res, "resnet_vc", LAYOUT)
    assert_logits_differ(vd_graph, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("SE_ResNet18_vd", "paddleclas")
    maps = [[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4], [1, 512, 2, 2]]
    assert_load_options_work("SE_ResNet18_vd", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


# SE_ResNeXt50_vd_32x4d is left to tests/test_deploy_onnx.py: with these random weights its logits reach
# ~4e3 on X224, and oneDNN's grouped convs round them 1.9e-4 apart (relative), over the 1e-4 tolerance.
@pytest.mark.parametrize("name", ["SE_ResNet18_vd", "ResNet50_vc"])
def test_exported_program_runs_in_paddle_inference(name, shared_oracles, cleanup, monkeypatch):
    res = shared_oracles(name, "paddleclas")
    model = load_as_variant(name, "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


# Last, the three oracles the tests above ran first: shared_oracles keeps the 3 latest runs.
_FIRST = ("SE_ResNet18_vd", "ResNet50_vc", "SE_ResNeXt50_vd_32x4d")
_PARAMS = sorted(
    (p for family in VARIANTS for p in variant_params(family)),
    key=lambda p: _FIRST.index(p.values[0]) if p.values[0] in _FIRST else len(_FIRST),
)


@pytest.mark.parametrize("name,tag", _PARAMS)
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
