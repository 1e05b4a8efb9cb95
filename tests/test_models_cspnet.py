"""CSPDarkNet-53: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: PaddleClas 2.6.0's own ``model_zoo/cspnet.py`` builder runs in a subprocess with
random weights, writes them with ``paddle.save``, and reports eval logits on a 64x64 input
(the last stage then runs at 2x2); ``load_model`` must restore that file, served at the
variant's real URL, and give the same logits. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models.layers import LeakyReLU, make_act

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_load_options_work,
    assert_logits_close,
    assert_logits_differ,
    assert_predictor_matches,
    assert_published_count_near,
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    logits_of,
    shared_oracles,
    variant_params,
)

FAMILY = "cspnet"
LAYOUT = "paddleclas_model_zoo"
X = family_input(FAMILY)


def test_cross_stages_follow_paddleclas():
    model = lazy("cspdarknet53")
    sd = model.state_dict()
    assert len(sd) == 337  # PaddleClas CSPDarkNet53's state_dict
    assert [len(s.blocks) for s in model.stages] == [1, 2, 8, 8, 4]
    assert sd["stem.conv1.conv.weight"].shape == [32, 3, 3, 3]
    # Stage 0 expands to twice its width and its block has a half-width bottleneck.
    assert sd["stages.0.conv_exp.conv.weight"].shape == [128, 64, 1, 1]
    assert sd["stages.0.blocks.0.conv1.conv.weight"].shape == [32, 64, 1, 1]
    assert sd["stages.0.conv_transition.conv.weight"].shape == [64, 128, 1, 1]
    # Later stages: the blocks work on half the channels at full bottleneck width.
    assert sd["stages.4.conv_down.conv.weight"].shape == [1024, 512, 3, 3]
    assert sd["stages.4.blocks.3.conv1.conv.weight"].shape == [512, 512, 1, 1]
    assert sd["stages.4.conv_transition_b.conv.weight"].shape == [512, 512, 1, 1]
    assert sd["fc.weight"].shape == [1024, 1000]


def test_every_activation_is_leaky_relu_with_slope_0_01():
    acts = [layer for _, layer in lazy("cspdarknet53").named_sublayers() if isinstance(layer, LeakyReLU)]
    assert len(acts) == 67  # one per conv-BN (67 x 5 tensors + the classifier = 337 keys)
    assert {a.negative_slope for a in acts} == {0.01}
    x = paddle.to_tensor([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_array_equal(acts[0](x).numpy(), paddle.nn.functional.leaky_relu(x, 0.01).numpy())


def test_layout_is_paddleclas_names_one_to_one():
    model = lazy("cspdarknet53")
    mapping = get_layout(FAMILY, LAYOUT)(model)
    assert mapping == {k: k for k in model.state_dict()}
    assert mapping["stages.2.blocks.7.conv2.bn._mean"] == "stages.2.blocks.7.conv2.bn._mean"


def test_the_registry_variant_is_covered():
    assert family_variants(FAMILY) == [("CSPDarkNet53", "paddleclas")]
    info, variant = REGISTRY.resolve("CSPDarkNet53", "paddleclas")
    assert variant.layout == LAYOUT and info.input_size == (3, 256, 256)


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("CSPDarkNet53", "paddleclas")
    pair = ("stages.3.blocks.2.conv2.conv.weight", "stages.3.blocks.5.conv2.conv.weight")
    assert_swap_is_caught("cspdarknet53", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with one block's leaky ReLU made the ReLU of DarkBlock's own default
    # (PaddleClas passes LeakyReLU down explicitly).
    model = load_as_variant("CSPDarkNet53", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[1].blocks[0].conv1.act = make_act("relu")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("CSPDarkNet53", "paddleclas")
    maps = [[1, 64, 32, 32], [1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]]
    assert_load_options_work("CSPDarkNet53", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("CSPDarkNet53", "paddleclas")
    model = load_as_variant("CSPDarkNet53", "paddleclas", res.path, cleanup, monkeypatch)
    # Exported for the oracle's 64x64 input (the registry size, 256, is the same graph).
    assert_predictor_matches(model, cleanup / "export", side=64)


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
