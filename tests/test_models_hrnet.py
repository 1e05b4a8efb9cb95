"""HRNet-W18...W64-C and SE-HRNet-W64-C: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``hrnet`` family, PaddleClas
2.6.0's own ``legendary_models/hrnet.py`` builder runs in a subprocess with random weights (BN
statistics randomised), writes them with ``paddle.save``, and reports eval logits on a 64x64
input (the smallest side that keeps every branch at least 2x2); ``load_model`` must restore
that file, served at the variant's real URL, and give the same logits. The base and SSLD
variants of a width share one oracle run. ``SE_HRNet_W64_C()`` raises ``KeyError`` in
PaddleClas 2.6.0 (it reads ``MODEL_URLS["SE_HRNet_W64_C"]``, which the dict lacks), so its
oracle adds that entry before building (``PADDLECLAS_MODEL_URLS`` in ``_modelcheck``).
Expected source names and shapes below are copied from PaddleClas's state_dict of
``HRNet_W18_C()``. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.layouts import get_layout
from paddlehub_cls.layouts.hrnet import fuse_convs
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.hrnet import upsample_nearest
from paddlehub_cls.models.layers import make_act

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_logits_close,
    assert_logits_differ,
    assert_load_options_work,
    assert_predictor_matches,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    family_input,
    shared_oracles,
    swapped_copy,
    variant_params,
)

FAMILY = "hrnet"
LAYOUT = "paddleclas_legendary"
# ZOO_FACTS table 1 rows 85-94: every tier-1 HRNet weight variant.
VARIANTS = [
    ("HRNet_W18_C", "paddleclas"),
    ("HRNet_W18_C", "paddleclas_ssld"),
    ("HRNet_W30_C", "paddleclas"),
    ("HRNet_W32_C", "paddleclas"),
    ("HRNet_W40_C", "paddleclas"),
    ("HRNet_W44_C", "paddleclas"),
    ("HRNet_W48_C", "paddleclas"),
    ("HRNet_W48_C", "paddleclas_ssld"),
    ("HRNet_W64_C", "paddleclas"),
    ("SE_HRNet_W64_C", "paddleclas_ssld"),
]
X = family_input(FAMILY)


# --------------------------------------------------------------------------- graph


def test_branches_modules_and_fuse_paths_follow_paddleclas():
    model = lazy("hrnet_w18_c")
    assert [len(stage) for stage in model.stages] == [1, 4, 3]
    assert [len(stage[0].branches) for stage in model.stages] == [2, 3, 4]
    sd = model.state_dict()
    for i, c in enumerate((18, 36, 72, 144)):
        assert sd[f"stages.2.0.branches.{i}.3.conv2.conv.weight"].shape == [c, c, 3, 3]
    # Output 3 from branch 0: two 3x3/2 convs at 18 channels with ReLU, then one to 144 without.
    path = model.stages[2][0].fuse[3].paths[0]
    assert [type(step.act).__name__ for step in path] == ["ReLU", "ReLU", "Identity"]
    assert sd["stages.2.0.fuse.3.paths.0.2.conv.weight"].shape == [144, 18, 3, 3]
    assert path[0].conv._stride == [2, 2]
    # Output 0 from branch 3: a 1x1 conv to 18 channels (then nearest upsampling by 8).
    assert sd["stages.2.0.fuse.0.paths.3.conv.weight"].shape == [18, 144, 1, 1]
    assert type(model.stages[2][0].fuse[0].paths[0]).__name__ == "Identity"
    assert sd["final.conv.weight"].shape == [2048, 1024, 1, 1]
    assert not any(".se." in k for k in sd)
    se = lazy("se_hrnet_w64_c").state_dict()
    assert se["stages.2.2.branches.3.0.se.squeeze.weight"].shape == [512, 32]
    assert se["layer1.0.se.excite.weight"].shape == [16, 256]
    assert se["incre.3.se.squeeze.weight"].shape == [1024, 64]


def test_upsampling_is_paddleclas_nearest_and_takes_any_side():
    x = paddle.randn([2, 3, 5, 7])
    nearest = paddle.nn.functional.interpolate(x, scale_factor=4, mode="nearest").numpy()
    np.testing.assert_array_equal(upsample_nearest(x, 4, [20, 28]).numpy(), nearest)
    np.testing.assert_array_equal(upsample_nearest(x, 4, [18, 27]).numpy(), nearest[:, :, :18, :27])
    # PaddleClas's sum of branches fails at sides that are not multiples of 32; ours runs.
    model = get_builder("hrnet_w18_c")(num_classes=7)
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, 100, 76])).shape == [1, 7]


def test_fuse_convs_are_numbered_like_paddleclas():
    assert fuse_convs(2) == [(0, 1, 0), (1, 0, 0)]
    assert fuse_convs(3) == [(0, 1, 0), (0, 2, 0), (1, 0, 0), (1, 2, 0), (2, 0, 0), (2, 0, 1), (2, 1, 0)]
    assert len(fuse_convs(4)) == 16


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("hrnet_w18_c"))
    assert mapping["stem.0.conv.weight"] == "conv_layer1_1.conv.weight"
    assert mapping["stem.1.bn._variance"] == "conv_layer1_2.bn._variance"
    assert mapping["layer1.0.shortcut.conv.weight"] == "layer1.0.conv_down.conv.weight"
    assert mapping["transition1.1.bn.weight"] == "conv_tr1_2.bn.weight"
    assert mapping["transition3.conv.weight"] == "conv_tr3.conv.weight"
    assert (
        mapping["stages.1.3.branches.2.3.conv2.conv.weight"]
        == "st3.stage_func_list.3.basic_block_list.2.3.conv2.conv.weight"
    )
    # PaddleClas HRNet_W18_C: residual_func_list.12 is [144, 18, 3, 3], .9 is [72, 144, 1, 1].
    assert mapping["stages.2.0.fuse.3.paths.0.2.conv.weight"] == (
        "st4.stage_func_list.0.fuse_func.residual_func_list.12.conv.weight"
    )
    assert mapping["stages.2.2.fuse.2.paths.3.bn._mean"] == (
        "st4.stage_func_list.2.fuse_func.residual_func_list.9.bn._mean"
    )
    assert mapping["stages.1.0.fuse.2.paths.1.0.conv.weight"] == (
        "st3.stage_func_list.0.fuse_func.residual_func_list.6.conv.weight"
    )
    assert mapping["incre.3.shortcut.conv.weight"] == "last_cls.func_list.3.conv_down.conv.weight"
    assert mapping["downsamp.2.conv.weight"] == "cls_head_conv_list.2.conv.weight"
    assert mapping["final.bn.bias"] == "conv_last.bn.bias"
    se = get_layout(FAMILY, LAYOUT)(lazy("se_hrnet_w64_c"))
    assert se["layer1.2.se.squeeze.weight"] == "layer1.2.se.fc_squeeze.weight"
    assert se["stages.0.0.branches.1.0.se.excite.bias"] == (
        "st2.stage_func_list.0.basic_block_list.1.0.se.fc_excitation.bias"
    )


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert REGISTRY.get("SE_HRNet_W64_C").default_weights == "paddleclas_ssld"
    assert {REGISTRY.get(n).default_weights for n, _ in VARIANTS if n != "SE_HRNet_W64_C"} == {"paddleclas"}


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("HRNet_W18_C", "paddleclas")
    # Two same-shaped tensors swapped in the file: it still loads, but the logits differ.
    prefix = "st4.stage_func_list.1.basic_block_list.0.2"
    swapped = swapped_copy(
        res.path, cleanup / "swapped.pdparams", f"{prefix}.conv1.conv.weight", f"{prefix}.conv2.conv.weight"
    )
    model = load_as_variant("HRNet_W18_C", "paddleclas", swapped, cleanup / "a", monkeypatch)
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more
    # The right file, with one ReLU (the second stem conv's) replaced by GELU.
    model = load_as_variant("HRNet_W18_C", "paddleclas", res.path, cleanup / "b", monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stem[1].act = make_act("gelu")
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more


def test_a_missing_source_tensor_is_refused(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("HRNet_W18_C", "paddleclas")
    state = paddle.load(str(res.path))
    del state["st3.stage_func_list.2.fuse_func.residual_func_list.5.bn._mean"]
    paddle.save(state, str(cleanup / "short.pdparams"))
    with pytest.raises(WeightsMismatchError, match=r"residual_func_list\.5\.bn\._mean"):
        load_as_variant("HRNet_W18_C", "paddleclas", cleanup / "short.pdparams", cleanup, monkeypatch)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    # Published parameter counts (trainable) are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("HRNet_W18_C", "paddleclas")
    assert_load_options_work(
        "HRNet_W18_C", "paddleclas", res, cleanup, monkeypatch, X, maps=[[1, 18, 16, 16], [1, 36, 8, 8], [1, 72, 4, 4], [1, 144, 2, 2]]
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    # Guards its nearest upsampling (oneDNN rejects nearest_interp's float scale attribute).
    res = shared_oracles("HRNet_W18_C", "paddleclas")
    model = load_as_variant("HRNet_W18_C", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
