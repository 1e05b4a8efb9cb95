"""MobileNetV3 small/large x0.35-x1.25: graph rules, the PaddleClas layout, fidelity to PaddleClas 2.6.0.

Fidelity: every (model, variant) registry.json lists for the ``mobilenet_v3`` family is
restored by ``load_model`` from a file that PaddleClas 2.6.0's own ``MobileNetV3_*`` class
wrote with random weights, served at the variant's URL; the logits must match. The base
and SSLD files of a width share one oracle run. Expected source names are copied from
PaddleClas 2.6.0 ``legendary_models/mobilenet_v3.py``. The checks every architecture
shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import HardSigmoid

pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_load_options_work,
    assert_logits_differ,
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

FAMILY = "mobilenet_v3"
LAYOUT = "paddleclas_legendary"
X96 = family_input(FAMILY)  # 96x96 (tests/_modelcheck.py ORACLE_SIDE says why)
WIDTHS = ("x0_35", "x0_5", "x0_75", "x1_0", "x1_25")
NAMES = tuple(f"MobileNetV3_{size}_{w}" for size in ("small", "large") for w in WIDTHS)
SSLD = ("MobileNetV3_large_x1_0", "MobileNetV3_small_x0_35", "MobileNetV3_small_x1_0")
LEGENDARY = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"


# --------------------------------------------------------------------------- graphs


def test_large_x1_0_follows_the_paper_table():
    sd = lazy("mobilenet_v3_large_x1_0").state_dict()
    assert sd["stem.conv.weight"].shape == [16, 3, 3, 3]
    # Block 0 keeps its expand conv although it keeps the width (16 -> 16).
    assert sd["blocks.0.expand.conv.weight"].shape == [16, 16, 1, 1]
    assert sd["blocks.3.dw.conv.weight"].shape == [72, 1, 5, 5]
    # SE width = expanded // 4, no rounding: 72 -> 18, 120 -> 30.
    assert sd["blocks.3.se.reduce.weight"].shape == [18, 72, 1, 1]
    assert sd["blocks.4.se.expand.weight"].shape == [120, 30, 1, 1]
    assert not any(k.startswith(("blocks.6.se", "blocks.0.se")) for k in sd)
    assert sd["blocks.14.project.conv.weight"].shape == [160, 960, 1, 1]
    assert sd["conv_feature.conv.weight"].shape == [960, 160, 1, 1]
    assert sd["head.conv.weight"].shape == [1280, 960, 1, 1]
    assert "head.conv.bias" not in sd
    assert sd["fc.weight"].shape == [1280, 1000]


def test_widths_round_to_multiples_of_8():
    small = lazy("mobilenet_v3_small_x0_35").state_dict()
    # 16 * 0.35 = 5.6 -> 8; 72 * 0.35 = 25.2 -> 24; 576 * 0.35 = 201.6 -> 200;
    # the SE of block 0 is 8 // 4 = 2 wide.
    assert small["stem.conv.weight"].shape == [8, 3, 3, 3]
    assert small["blocks.1.expand.conv.weight"].shape == [24, 8, 1, 1]
    assert small["blocks.0.se.reduce.weight"].shape == [2, 8, 1, 1]
    assert small["conv_feature.conv.weight"].shape == [200, 32, 1, 1]
    large = lazy("mobilenet_v3_large_x1_25").state_dict()
    assert large["conv_feature.conv.weight"].shape == [1200, 200, 1, 1]
    assert large["head.conv.weight"].shape == [1280, 1200, 1, 1]


def test_residual_only_where_the_shape_is_kept():
    model = lazy("mobilenet_v3_small_x1_0")
    assert [b.use_residual for b in model.blocks] == [
        False,
        False,
        True,
        False,
        True,
        True,
        False,
        True,
        False,
        True,
        True,
    ]


def test_se_gate_is_paddleclas_hardsigmoid_slope_0_2():
    gate = lazy("mobilenet_v3_large_x1_0").blocks[3].se.gate
    assert isinstance(gate, HardSigmoid) and gate.slope == 0.2 and gate.offset == 0.5


def test_invalid_size():
    from paddlehub_cls.models.mobilenet_v3 import MobileNetV3

    with pytest.raises(ValueError, match="size must be one of .*'large'.*got 'medium'"):
        MobileNetV3("medium", 1.0)


# --------------------------------------------------------------------------- layout


def test_layout_names_follow_paddleclas():
    zoo = get_layout(FAMILY, LAYOUT)(lazy("mobilenet_v3_large_x1_0"))
    assert zoo["stem.conv.weight"] == "conv.conv.weight"
    assert zoo["stem.bn._variance"] == "conv.bn._variance"
    assert zoo["blocks.0.expand.conv.weight"] == "blocks.0.expand_conv.conv.weight"
    assert zoo["blocks.3.dw.bn.weight"] == "blocks.3.bottleneck_conv.bn.weight"
    assert zoo["blocks.3.se.reduce.weight"] == "blocks.3.mid_se.conv1.weight"
    assert zoo["blocks.3.se.expand.bias"] == "blocks.3.mid_se.conv2.bias"
    assert zoo["blocks.14.project.bn._mean"] == "blocks.14.linear_conv.bn._mean"
    assert zoo["conv_feature.conv.weight"] == "last_second_conv.conv.weight"
    assert zoo["head.conv.weight"] == "last_conv.weight"
    assert zoo["fc.weight"] == "fc.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    expected = [(n, "paddleclas") for n in NAMES] + [(n, "paddleclas_ssld") for n in SSLD]
    assert sorted(variants) == sorted(expected)
    for name in NAMES:
        assert REGISTRY.get(name).default_weights == "paddleclas"
        for tag in REGISTRY.get(name).weights:
            ssld = "_ssld" if tag == "paddleclas_ssld" else ""
            # PaddleClas MODEL_URLS (and use_ssld's _pretrained -> _ssld_pretrained rewrite), Clas@d178931.
            assert list(REGISTRY.resolve(name, tag)[1].urls) == [
                f"{LEGENDARY}{name}{ssld}_pretrained.pdparams"
            ]


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag, X96)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X96)


def test_load_model_with_a_new_head_one_channel_and_features_only(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("MobileNetV3_small_x1_0", "paddleclas", X96)
    assert_load_options_work("MobileNetV3_small_x1_0", "paddleclas", res, cleanup, monkeypatch, X96)


def test_a_swapped_tensor_is_caught(shared_oracles, monkeypatch):
    res = shared_oracles("MobileNetV3_small_x1_0", "paddleclas", X96)
    # Two BN scales of one width (equal shapes): wrong logits.
    pair = ("blocks.4.expand.bn.weight", "blocks.5.expand.bn.weight")
    assert_swap_is_caught("mobilenet_v3_small_x1_0", res, FAMILY, LAYOUT, pair, monkeypatch, X96)
    # The SE squeeze and excite convs (transposed shapes): a mismatch error.
    pair = ("blocks.4.se.reduce.weight", "blocks.4.se.expand.weight")
    assert_swap_is_caught("mobilenet_v3_small_x1_0", res, FAMILY, LAYOUT, pair, monkeypatch, X96)


def test_a_wrong_activation_changes_the_logits(shared_oracles):
    res = shared_oracles("MobileNetV3_small_x1_0", "paddleclas", X96)
    model = load_mapped(get_builder("mobilenet_v3_small_x1_0")(), res, FAMILY, LAYOUT)
    # Paddle's default hardsigmoid (slope 1/6) in place of PaddleClas's slope 0.2.
    for block in model.blocks:
        if block.se is not None:
            block.se.gate = HardSigmoid()
    assert_logits_differ(model, res, X96)
    # No inference-time dropout scale (upscale_in_train) in place of PaddleClas's 0.8.
    model = load_mapped(
        get_builder("mobilenet_v3_small_x1_0")(dropout_mode="upscale_in_train"), res, FAMILY, LAYOUT
    )
    assert_logits_differ(model, res, X96)
