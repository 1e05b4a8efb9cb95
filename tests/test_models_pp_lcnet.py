"""PP-LCNet x0.25-x2.5: graph rules, the PaddleClas layout, fidelity to PaddleClas 2.6.0.

Fidelity: every (model, variant) registry.json lists for the ``pp_lcnet`` family is
restored by ``load_model`` from a file that PaddleClas 2.6.0's own ``PPLCNet_*`` class
wrote with random weights, served at the variant's URL; the logits must match. The base
and SSLD files of a width share one oracle run. Expected source names are copied from
PaddleClas 2.6.0 ``legendary_models/pp_lcnet.py``. The checks every architecture shares
are in ``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
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

FAMILY = "pp_lcnet"
LAYOUT = "paddleclas_legendary"
X96 = family_input(FAMILY)  # 96x96 (tests/_modelcheck.py ORACLE_SIDE says why)
WIDTHS = ("x0_25", "x0_35", "x0_5", "x0_75", "x1_0", "x1_5", "x2_0", "x2_5")
SSLD = ("x0_25", "x0_5", "x1_0", "x2_5")
LEGENDARY = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"


def test_x1_0_follows_the_paddleclas_config():
    model = lazy("pplcnet_x1_0")
    sd = model.state_dict()
    assert [len(s) for s in model.stages] == [1, 2, 2, 6, 2]
    assert sd["stem.conv.weight"].shape == [16, 3, 3, 3]
    assert sd["stages.0.0.dw.conv.weight"].shape == [16, 1, 3, 3]
    assert sd["stages.3.0.dw.conv.weight"].shape == [128, 1, 3, 3]
    assert sd["stages.3.1.dw.conv.weight"].shape == [256, 1, 5, 5]
    # SE only in the last stage, channels // 4 wide.
    assert [k for k in sd if k.endswith("se.reduce.weight")] == [
        "stages.4.0.se.reduce.weight",
        "stages.4.1.se.reduce.weight",
    ]
    assert sd["stages.4.0.se.reduce.weight"].shape == [64, 256, 1, 1]
    assert sd["head.conv.weight"].shape == [1280, 512, 1, 1]
    assert sd["fc.weight"].shape == [1280, 1000]
    gate = model.stages[4][0].se.gate
    assert isinstance(gate, HardSigmoid) and gate.slope == pytest.approx(1 / 6, rel=1e-6)
    assert [b.dw.conv._stride for s in model.stages for b in s][:3] == [[1, 1], [2, 2], [1, 1]]


def test_layout_names_follow_paddleclas():
    zoo = get_layout(FAMILY, LAYOUT)(lazy("pplcnet_x1_0"))
    assert zoo["stem.conv.weight"] == "conv1.conv.weight"
    assert zoo["stem.bn._mean"] == "conv1.bn._mean"
    assert zoo["stages.0.0.dw.conv.weight"] == "blocks2.0.dw_conv.conv.weight"
    assert zoo["stages.3.5.pw.bn.bias"] == "blocks5.5.pw_conv.bn.bias"
    assert zoo["stages.4.1.se.reduce.weight"] == "blocks6.1.se.conv1.weight"
    assert zoo["stages.4.1.se.expand.bias"] == "blocks6.1.se.conv2.bias"
    assert zoo["head.conv.weight"] == "last_conv.weight"
    assert zoo["fc.bias"] == "fc.bias"


def test_every_registry_variant_of_the_family_is_covered():
    expected = [(f"PPLCNet_{w}", "paddleclas") for w in WIDTHS] + [
        (f"PPLCNet_{w}", "paddleclas_ssld") for w in SSLD
    ]
    assert sorted(family_variants(FAMILY)) == sorted(expected)
    for w in WIDTHS:
        name = f"PPLCNet_{w}"
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
    res = shared_oracles("PPLCNet_x0_25", "paddleclas", X96)
    assert_load_options_work("PPLCNet_x0_25", "paddleclas", res, cleanup, monkeypatch, X96)


def test_a_swapped_tensor_is_caught(shared_oracles, monkeypatch):
    res = shared_oracles("PPLCNet_x0_25", "paddleclas", X96)
    # Two depthwise 5x5 kernels of stage 3 (equal shapes): wrong logits.
    pair = ("stages.3.2.dw.conv.weight", "stages.3.3.dw.conv.weight")
    assert_swap_is_caught("pplcnet_x0_25", res, FAMILY, LAYOUT, pair, monkeypatch, X96)
    # The depthwise and pointwise convs of one block: a mismatch error.
    pair = ("stages.1.0.dw.conv.weight", "stages.1.0.pw.conv.weight")
    assert_swap_is_caught("pplcnet_x0_25", res, FAMILY, LAYOUT, pair, monkeypatch, X96)


def test_a_wrong_activation_changes_the_logits(shared_oracles):
    res = shared_oracles("PPLCNet_x0_25", "paddleclas", X96)
    model = load_mapped(get_builder("pplcnet_x0_25")(), res, FAMILY, LAYOUT)
    # MobileNetV3's SE gate slope (0.2) in place of Paddle's default 1/6.
    for block in model.stages[4]:
        block.se.gate = HardSigmoid(slope=0.2)
    assert_logits_differ(model, res, X96)
    # ReLU in place of hardswish after the stem's batch norm.
    model = load_mapped(get_builder("pplcnet_x0_25")(), res, FAMILY, LAYOUT)
    model.stem.act = paddle.nn.ReLU()
    assert_logits_differ(model, res, X96)
