"""FasterNet T0/T1/T2/S/M/L: graph, PaddleClas names and fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``fasternet`` family, PaddleClas
2.6.0's own ``model_zoo/fasternet.py`` builder runs in a subprocess with random weights (BN
statistics randomised), writes them with ``paddle.save``, and reports eval logits on a 64x64
input (a 2x2 last stage); ``load_model`` must restore that file, served at the variant's real
URL, and give the same logits. PaddleClas's constructor initialises its weights with tensor
ops, which a network built under ``paddle.LazyGuard`` cannot run, so its oracle builds eagerly
(``PADDLECLAS_EAGER``). Expected source names and shapes below are copied from PaddleClas's
state_dict of ``FasterNet_T0()``. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.layouts import get_layout
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
    variant_params,
)

FAMILY = "fasternet"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 70-75.
VARIANTS = [(f"FasterNet_{s}", "paddleclas") for s in ("T0", "T1", "T2", "S", "M", "L")]
X = family_input(FAMILY)


def test_stages_blocks_and_widths_follow_paddleclas():
    sd = lazy("fasternet_t0").state_dict()
    assert len(sd) == 114  # PaddleClas FasterNet_T0's state_dict
    assert sd["patch_embed.proj.weight"].shape == [40, 3, 4, 4]
    assert sd["stages.0.blocks.0.spatial_mixing.partial_conv3.weight"].shape == [10, 10, 3, 3]
    assert sd["stages.0.blocks.0.mlp.0.weight"].shape == [80, 40, 1, 1]
    assert sd["stages.1.reduction.weight"].shape == [80, 40, 2, 2]
    assert sd["stages.6.blocks.1.mlp.3.weight"].shape == [320, 640, 1, 1]
    assert sd["pre_head.weight"].shape == [1280, 320, 1, 1]
    assert not [k for k in sd if k.endswith(".bias") and ".norm." not in k and ".mlp.1." not in k and k != "fc.bias"]
    for builder, depths, width, act in (
        ("fasternet_t1", (1, 2, 8, 2), 512, paddle.nn.GELU),
        ("fasternet_s", (1, 2, 13, 2), 1024, paddle.nn.ReLU),
        ("fasternet_l", (3, 4, 18, 3), 1536, paddle.nn.ReLU),
    ):
        model = lazy(builder)
        assert [len(model.stages[i].blocks) for i in (0, 2, 4, 6)] == list(depths)
        assert model.pre_head.weight.shape[1] == width and isinstance(model.head_act, act)


def test_the_partial_conv_touches_only_the_first_quarter_of_the_channels():
    paddle.seed(7)
    block = lazy("fasternet_t0").stages[2].blocks[0].spatial_mixing
    block.partial_conv3.weight.set_value(paddle.randn(block.partial_conv3.weight.shape))
    x = paddle.randn([1, 80, 6, 6])
    y = block(x)
    np.testing.assert_array_equal(y[:, 20:].numpy(), x[:, 20:].numpy())
    np.testing.assert_allclose(y[:, :20].numpy(), block.partial_conv3(x[:, :20]).numpy(), rtol=1e-6)


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("fasternet_t0"))
    assert mapping["patch_embed.norm._mean"] == "patch_embed.norm._mean"
    assert mapping["stages.4.blocks.7.mlp.1.weight"] == "stages.4.blocks.7.mlp.1.weight"
    assert mapping["stages.5.reduction.weight"] == "stages.5.reduction.weight"
    assert mapping["pre_head.weight"] == "avgpool_pre_head.1.weight"
    assert mapping["fc.weight"] == "head.weight" and mapping["fc.bias"] == "head.bias"


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    assert {REGISTRY.get(n).preprocess_for("paddleclas")["resize_size"] for n, _ in VARIANTS} == {248}


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("FasterNet_T0", "paddleclas")
    # The two 1x1 convs of two blocks of the third stage have equal shapes.
    assert_swap_is_caught(
        "fasternet_t0", res, FAMILY, LAYOUT, ("stages.4.blocks.2.mlp.0.weight", "stages.4.blocks.3.mlp.0.weight"), monkeypatch, X
    )
    model = load_as_variant("FasterNet_T0", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[4].blocks[5].mlp[2] = make_act("relu")  # GELU in T0
    assert_logits_differ(model, res, X)  # ten times the fidelity tolerance or more


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    # Published parameter counts are within 2% of PaddleClas's own network.
    published = REGISTRY.get(name).num_params["value"]
    assert abs(res.extra["num_trainable"] - published) / published < 0.02


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("FasterNet_T0", "paddleclas")
    assert_load_options_work(
        "FasterNet_T0", "paddleclas", res, cleanup, monkeypatch, X,
        maps=[[1, 40, 16, 16], [1, 80, 8, 8], [1, 160, 4, 4], [1, 320, 2, 2]],
    )


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("FasterNet_T0", "paddleclas")
    model = load_as_variant("FasterNet_T0", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")
