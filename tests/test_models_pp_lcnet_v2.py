"""PP-LCNetV2 small/base/large: graph rules, re-parameterisation, the PaddleClas layout, fidelity.

Fidelity: every (model, variant) registry.json lists for the ``pp_lcnet_v2`` family is
restored by ``load_model`` from a file that PaddleClas 2.6.0's own ``PPLCNetV2_*`` class
wrote with random weights (the unfused training form, with its unused ``dw_conv``),
served at the variant's URL; the logits must match. The base and SSLD files share one
oracle run. Expected source names are copied from PaddleClas 2.6.0
``legendary_models/pp_lcnet_v2.py``. The checks every architecture shares are in
``test_models_common.py``.
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
    assert_logits_close,
    assert_logits_differ,
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    load_mapped,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "pp_lcnet_v2"
LAYOUT = "paddleclas_legendary"
X96 = family_input(FAMILY)  # 96x96 (tests/_modelcheck.py ORACLE_SIDE says why)
LEGENDARY = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"


def test_base_follows_the_paddleclas_config():
    model = lazy("pplcnet_v2_base")
    sd = model.state_dict()
    assert [len(s) for s in model.stages] == [2, 2, 6, 2]
    assert sd["stem.0.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.1.dw.conv.weight"].shape == [32, 1, 3, 3]
    assert sd["stem.1.pw.conv.weight"].shape == [64, 32, 1, 1]
    # Stage 3: branches 5x5 + 3x3 at stride 2, 5x5 + 3x3 + 1x1 at stride 1; split pointwise; SE.
    assert [b.conv.weight.shape[-1] for b in model.stages[2][0].dw_branches] == [5, 3]
    assert [b.conv.weight.shape[-1] for b in model.stages[2][1].dw_branches] == [5, 3, 1]
    assert sd["stages.2.0.dw_fused.weight"].shape == [256, 1, 5, 5]
    assert sd["stages.2.0.dw_fused.bias"].shape == [256]
    assert sd["stages.2.1.pw1.conv.weight"].shape == [256, 512, 1, 1]
    assert sd["stages.2.1.pw2.conv.weight"].shape == [512, 256, 1, 1]
    assert sd["stages.2.1.se.reduce.weight"].shape == [128, 512, 1, 1]
    assert isinstance(model.stages[2][1].se.gate, paddle.nn.Sigmoid)
    # Stage 4: residual where the shape is kept, no SE.
    assert [b.residual for b in model.stages[3]] == [False, True]
    assert not any(k.startswith("stages.3") and ".se." in k for k in sd)
    assert sd["head.conv.weight"].shape == [1280, 1024, 1, 1]
    assert sd["fc.weight"].shape == [1280, 1000]


def test_sizes_scale_widths_and_depths():
    small, large = lazy("pplcnet_v2_small"), lazy("pplcnet_v2_large")
    assert [len(s) for s in small.stages] == [2, 2, 4, 2]
    assert [len(s) for s in large.stages] == [2, 2, 8, 2]
    assert small.state_dict()["head.conv.weight"].shape == [1280, 768, 1, 1]
    assert large.state_dict()["head.conv.weight"].shape == [1280, 1280, 1, 1]
    with pytest.raises(ValueError, match="size must be one of .*got 'tiny'"):
        from paddlehub_cls.models.pp_lcnet_v2 import PPLCNetV2

        PPLCNetV2("tiny")


def test_layout_names_follow_paddleclas():
    zoo = get_layout(FAMILY, LAYOUT)(lazy("pplcnet_v2_base"))
    assert zoo["stem.0.conv.weight"] == "stem.0.conv.weight"
    assert zoo["stem.1.dw.bn._variance"] == "stem.1.dw_conv.bn._variance"
    assert zoo["stem.1.pw.conv.weight"] == "stem.1.pw_conv.conv.weight"
    assert zoo["stages.0.1.dw.conv.weight"] == "stages.0.1.dw_conv.conv.weight"
    assert zoo["stages.2.1.dw_branches.2.bn.weight"] == "stages.2.1.dw_conv_list.2.bn.weight"
    assert zoo["stages.2.1.dw_fused.weight"] == "stages.2.1.dw_conv.weight"
    assert zoo["stages.2.1.dw_fused.bias"] == "stages.2.1.dw_conv.bias"
    assert zoo["stages.2.5.se.expand.weight"] == "stages.2.5.se.conv2.weight"
    assert zoo["stages.2.5.pw1.conv.weight"] == "stages.2.5.pw_conv_1.conv.weight"
    assert zoo["stages.2.5.pw2.bn._mean"] == "stages.2.5.pw_conv_2.bn._mean"
    assert zoo["stages.3.1.pw.conv.weight"] == "stages.3.1.pw_conv.conv.weight"
    assert zoo["head.conv.weight"] == "last_conv.weight"


def test_every_registry_variant_of_the_family_is_covered():
    expected = [(f"PPLCNetV2_{s}", "paddleclas") for s in ("small", "base", "large")]
    assert sorted(family_variants(FAMILY)) == sorted(expected + [("PPLCNetV2_base", "paddleclas_ssld")])
    for name in ("PPLCNetV2_small", "PPLCNetV2_base", "PPLCNetV2_large"):
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


def test_fused_network_equals_the_unfused_one(shared_oracles):
    res = shared_oracles("PPLCNetV2_small", "paddleclas", X96)
    model = load_mapped(get_builder("pplcnet_v2_small")(), res, FAMILY, LAYOUT)
    unfused = logits_of(model, X96)
    before = model.stages[3][1].dw_fused.weight.numpy().copy()
    assert model.fuse() is model
    assert all(b.fused for s in model.stages for b in s if b.dw_branches is not None)
    # The file's own dw_conv values are replaced by the folded branches.
    assert not np.allclose(model.stages[3][1].dw_fused.weight.numpy(), before)
    assert_logits_close(logits_of(model, X96), unfused)
    assert_logits_close(logits_of(model, X96), res.logits)


def test_load_model_with_a_new_head_one_channel_and_features_only(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("PPLCNetV2_small", "paddleclas", X96)
    assert_load_options_work("PPLCNetV2_small", "paddleclas", res, cleanup, monkeypatch, X96)


def test_a_swapped_tensor_is_caught(shared_oracles, monkeypatch):
    res = shared_oracles("PPLCNetV2_small", "paddleclas", X96)
    # Two branch BN scales of one block (equal shapes): wrong logits.
    pair = ("stages.2.1.dw_branches.0.bn.weight", "stages.2.1.dw_branches.1.bn.weight")
    assert_swap_is_caught("pplcnet_v2_small", res, FAMILY, LAYOUT, pair, monkeypatch, X96)
    # The 5x5 and 3x3 branch kernels: a mismatch error.
    pair = ("stages.2.1.dw_branches.0.conv.weight", "stages.2.1.dw_branches.1.conv.weight")
    assert_swap_is_caught("pplcnet_v2_small", res, FAMILY, LAYOUT, pair, monkeypatch, X96)


def test_a_wrong_activation_changes_the_logits(shared_oracles):
    res = shared_oracles("PPLCNetV2_small", "paddleclas", X96)
    model = load_mapped(get_builder("pplcnet_v2_small")(), res, FAMILY, LAYOUT)
    # A hardsigmoid gate, as PaddleClas's attribute name (``hardsigmoid``) suggests; it holds a sigmoid.
    for block in model.stages[2]:
        block.se.gate = HardSigmoid()
    assert_logits_differ(model, res, X96)
