"""ResNeXt-101 32x8d/16d/32d/48d WSL and the FixRes 32x48d weights: graph, PaddleClas names, fidelity.

The four networks are one PaddleClas class, ``model_zoo/resnext101_wsl.py`` ``ResNeXt101WSL``,
whose only argument is the group width (8, 16, 32, 48); they have 89 to 829 million
parameters. Two checks cover every registry variant:

* names and shapes, for every variant: PaddleClas's own class, built under ``paddle.LazyGuard``
  in a subprocess (nothing initialised, seconds even at 829 M), lists its state_dict keys,
  shapes and trainable count; our layout must map our network one-to-one onto exactly those
  keys with the same shapes. The FixRes file is loaded into the 32x48d class by PaddleClas's docs.
* numbers, for 32x8d: PaddleClas's class gets random weights (BN statistics included), writes
  them with ``paddle.save`` and reports eval logits on a 64x64 input; ``load_model`` must restore
  that file, served at the variant's real URL, and give the same logits. The wider networks run
  the same code with a wider group; a random-weight oracle of the 32x48d one would write a 3.3 GB
  file and take minutes and ~13 GB of memory (the 32x8d run: 22 s, 0.36 GB file, 1.5 GB
  resident), which CI on two shared cores cannot afford.

The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import functools

import pytest

from oracles.paddleclas import paddleclas_model_info
from paddlehub_cls.layouts import get_layout

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and shared_oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_load_options_work,
    assert_predictor_matches,
    assert_published_count_near,
    assert_swap_is_caught,
    cleanup,
    family_input,
    family_variants,
    lazy,
    load_as_variant,
    numel,
    shared_oracles,
    trainable,
    variant_params,
)

FAMILY = "resnext101_wsl"
LAYOUT = "paddleclas_model_zoo"
MODULE = "ppcls.arch.backbone.model_zoo.resnext101_wsl"
# ZOO_FACTS table 1 rows 275-279.
VARIANTS = [(f"ResNeXt101_32x{w}d_wsl", "paddleclas") for w in (8, 16, 32, 48)] + [
    ("ResNeXt101_32x48d_wsl", "paddleclas_fixres")
]
X = family_input(FAMILY)


@functools.lru_cache(maxsize=None)
def paddleclas_state(builder: str):
    """Keys, shapes and counts of PaddleClas's ``builder()`` (one subprocess per architecture)."""
    return paddleclas_model_info(MODULE, builder, {})


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("width", [8, 16, 32, 48])
def test_group_widths_and_stage_outputs(width):
    model = lazy(f"resnext101_32x{width}d_wsl")
    sd = model.state_dict()
    assert [len(s) for s in model.stages] == [3, 4, 23, 3]
    assert sd["stem.conv.weight"].shape == [64, 3, 7, 7]
    for s in range(4):
        inner, out = 32 * width * 2**s, 256 * 2**s
        assert model.stages[s][0].conv2.conv._groups == 32
        assert sd[f"stages.{s}.1.conv2.conv.weight"].shape == [inner, width * 2**s, 3, 3]
        assert sd[f"stages.{s}.1.conv3.conv.weight"].shape == [out, inner, 1, 1]
        # The stride is on the grouped 3x3 conv and the 1x1 projection (no average pool).
        stride = 1 if s == 0 else 2
        assert model.stages[s][0].conv2.conv._stride == [stride, stride]
        assert model.stages[s][0].shortcut.conv._stride == [stride, stride]
    assert model.num_features == 2048


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("resnext101_32x8d_wsl"))
    assert mapping["stem.conv.weight"] == "_conv_stem._conv.weight"
    assert mapping["stem.bn._mean"] == "_conv_stem._bn._mean"
    assert mapping["stages.0.0.conv1.conv.weight"] == "_conv1_0._conv0._conv.weight"
    assert mapping["stages.2.22.conv2.bn.bias"] == "_conv3_22._conv1._bn.bias"
    assert mapping["stages.3.2.conv3.bn._variance"] == "_conv4_2._conv2._bn._variance"
    assert mapping["stages.1.0.shortcut.conv.weight"] == "_conv2_0._short._conv._conv.weight"
    assert mapping["fc.weight"] == "_out.weight"


# --------------------------------------------------------------------------- fidelity


def test_every_registry_variant_of_the_family_is_covered():
    assert sorted(family_variants(FAMILY)) == sorted(VARIANTS)
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in VARIANTS} == {LAYOUT}
    # The FixRes file evaluates at 320 (short side 320, no margin); the others at 256 -> 224.
    fix = REGISTRY.get("ResNeXt101_32x48d_wsl").preprocess_for("paddleclas_fixres")
    assert (fix["resize_size"], fix["crop"]) == (320, 320)
    assert REGISTRY.get("ResNeXt101_32x48d_wsl").default_weights == "paddleclas"
    # PaddleClas's MODEL_URLS spells the 32x16d file without the "d" (ZOO_FACTS 1.2).
    assert REGISTRY.resolve("ResNeXt101_32x16d_wsl", "paddleclas")[1].urls[0].endswith(
        "/ResNeXt101_32x16_wsl_pretrained.pdparams"
    )


@pytest.mark.paddleclas
@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_layout_maps_onto_paddleclas_state_dict_exactly(name, tag):
    info = REGISTRY.get(name)
    theirs = paddleclas_state(name)  # the FixRes file goes into the 32x48d class
    model = lazy(info.architecture, **info.build_kwargs(tag))
    ours = model.state_dict()
    mapping = get_layout(FAMILY, REGISTRY.resolve(name, tag)[1].layout)(model)
    assert sorted(mapping.values()) == sorted(theirs["keys"])
    assert {k: list(ours[k].shape) for k in ours} == {k: theirs["shapes"][src] for k, src in mapping.items()}
    assert (trainable(model), numel(model)) == (theirs["num_trainable"], theirs["num_params"])
    assert_published_count_near(name, type("Counts", (), {"extra": theirs})())


def test_a_wrong_mapping_changes_the_logits_or_is_refused(shared_oracles, monkeypatch):
    res = shared_oracles("ResNeXt101_32x8d_wsl", "paddleclas")
    pair = ("stages.2.3.conv2.conv.weight", "stages.2.4.conv2.conv.weight")
    assert_swap_is_caught("resnext101_32x8d_wsl", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    pair = ("stages.1.0.conv1.conv.weight", "stages.1.0.shortcut.conv.weight")
    assert_swap_is_caught("resnext101_32x8d_wsl", res, FAMILY, LAYOUT, pair, monkeypatch, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("ResNeXt101_32x8d_wsl", "paddleclas")
    maps = [[1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 2048, 2, 2]]
    assert_load_options_work("ResNeXt101_32x8d_wsl", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("ResNeXt101_32x8d_wsl", "paddleclas")
    model = load_as_variant("ResNeXt101_32x8d_wsl", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


def test_fidelity_of_the_32x8d_network(shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles("ResNeXt101_32x8d_wsl", "paddleclas")
    model = load_as_variant("ResNeXt101_32x8d_wsl", "paddleclas", res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near("ResNeXt101_32x8d_wsl", res)
