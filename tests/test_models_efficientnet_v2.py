"""EfficientNetV2 S/M/L/XL: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``efficientnet_v2`` family,
PaddleClas 2.6.0's own ``model_zoo/efficientnet_v2.py`` builder runs in a subprocess with
random weights (BN statistics randomised), writes them with ``paddle.save``, and reports eval
logits on a 64x64 input (the SAME padding is fixed for 384, and any even size keeps it valid);
``load_model`` must restore that file, served at the variant's real URL, and give the same
logits. PaddleClas publishes no parameter counts: the registry's are measured and must equal
PaddleClas's network. Expected source names and shapes below are copied from PaddleClas's
state_dict of ``EfficientNetV2_S()``. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.efficientnet_v2 import FusedMBConv
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
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    trainable,
    variant_params,
)

FAMILY = "efficientnet_v2"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 62-65.
VARIANTS = [(f"EfficientNetV2_{v}", "paddleclas") for v in ("S", "M", "L", "XL")]
X = family_input(FAMILY)


def test_blocks_follow_paddleclas():
    model = lazy("efficientnet_v2_s")
    sd = model.state_dict()
    assert len(sd) == 672  # PaddleClas EfficientNetV2_S's state_dict
    assert sd["stem.conv.weight"].shape == [24, 3, 3, 3]
    # fused blocks: expansion 1 is one 3x3 conv-BN-swish; expansion 4 a 3x3 expansion and a 1x1 projection
    assert sd["blocks.0.project.conv.weight"].shape == [24, 24, 3, 3] and "blocks.0.expand.conv.weight" not in sd
    assert sd["blocks.2.expand.conv.weight"].shape == [96, 24, 3, 3]
    assert sd["blocks.2.project.conv.weight"].shape == [48, 96, 1, 1]
    # MBConv: SE squeezes to a quarter of the block's input width (64 -> 16), not of the expanded 256
    assert sd["blocks.10.se.reduce.weight"].shape == [16, 256, 1, 1]
    assert sd["head.conv.weight"].shape == [1280, 256, 1, 1]
    assert [isinstance(b, FusedMBConv) for b in model.blocks].count(True) == 10
    assert [len(lazy(f"efficientnet_v2_{s}").blocks) for s in ("m", "l", "xl")] == [57, 79, 100]


def test_strided_convs_pad_as_tensorflow_same_at_384():
    model = lazy("efficientnet_v2_s")
    # a 3x3 stride-2 conv on an even map: SAME pads (0, 1); PaddleClas pads 2 and drops row/column 0
    assert model.stem.conv._padding == 2 and model.stem.crop
    assert model.blocks[2].expand.conv._padding == 2 and model.blocks[2].expand.crop
    assert model.blocks[3].expand.conv._padding == 1 and not model.blocks[3].expand.crop
    assert model.stem.bn._momentum == pytest.approx(0.9) and model.stem.bn._epsilon == pytest.approx(1e-3)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("efficientnet_v2_s"))
    assert mapping["stem.bn._variance"] == "_stem._norm._variance"
    assert mapping["blocks.0.project.conv.weight"] == "_blocks.0._project_conv._conv.weight"
    assert mapping["blocks.0.project.bn.weight"] == "_blocks.0._norm1.weight"
    assert mapping["blocks.2.expand.bn.bias"] == "_blocks.2._norm0.bias"
    assert mapping["blocks.10.dw.bn._mean"] == "_blocks.10._norm1._mean"
    assert mapping["blocks.10.project.bn.weight"] == "_blocks.10._norm2.weight"
    assert mapping["blocks.10.se.expand.bias"] == "_blocks.10._se._se_expand._conv.bias"
    assert mapping["head.conv.weight"] == "_head._conv_head.weight"
    assert mapping["fc.weight"] == "_fc.weight"


def test_registry_parameter_counts_are_the_measured_ones():
    for name, _ in VARIANTS:
        info = REGISTRY.get(name)
        assert info.num_params["value"] == trainable(lazy(info.architecture)), name
        assert info.num_params["source"].startswith("measured"), name


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    pre = REGISTRY.get("EfficientNetV2_S").preprocess_for("paddleclas")
    assert (pre["scale"], pre["mean"], pre["std"]) == (1.0, [128.0] * 3, [128.0] * 3)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("EfficientNetV2_S", "paddleclas")
    # the 1x1 projections of two repeats of the fifth group have equal shapes
    assert_swap_is_caught(
        "efficientnet_v2_s", res, FAMILY, LAYOUT,
        ("blocks.17.project.conv.weight", "blocks.18.project.conv.weight"), monkeypatch, X,
    )
    model = load_as_variant("EfficientNetV2_S", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.head.act = make_act("relu")  # swish
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert res.extra["num_trainable"] == REGISTRY.get(name).num_params["value"]


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("EfficientNetV2_S", "paddleclas")
    assert_load_options_work(
        "EfficientNetV2_S", "paddleclas", res, cleanup, monkeypatch, X,
        maps=[[1, 24, 32, 32], [1, 48, 16, 16], [1, 64, 8, 8], [1, 160, 4, 4], [1, 256, 2, 2]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("EfficientNetV2_S", "paddleclas")
    model = load_as_variant("EfficientNetV2_S", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
