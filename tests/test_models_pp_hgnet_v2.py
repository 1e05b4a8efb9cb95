"""PP-HGNetV2 B0-B6: graph rules, registry variants, fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``pp_hgnet_v2`` family (SSLD
stage-2 and stage-1 files of B0-B6), PaddleClas 2.6.0's own ``legendary_models/pp_hgnet_v2.py``
class gets random weights (BN statistics and the learnable affines included), saves them with
``paddle.save`` and reports eval logits on a 64x64 input; ``load_model`` must restore that file,
served at the variant's real URL through a mirror, and give the same logits. The two files of an
architecture share one oracle run. The checks every architecture shares are in
``test_models_common.py``.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.models import get_builder

# Imported after this call, so that pytest rewrites the shared checks' asserts (values in failure messages).
pytest.register_assert_rewrite("_modelcheck")
from _modelcheck import (  # noqa: E402, F401  (cleanup and oracles are fixtures)
    REGISTRY,
    assert_fidelity,
    assert_logits_close,
    cleanup,
    family_variants,
    lazy,
    load_as_variant,
    logits_from_file,
    oracle_input,
    oracle_identity,
    oracles,
    trainable,
    variant_params,
)

FAMILY = "pp_hgnet_v2"
NAMES = tuple(f"PPHGNetV2_B{b}" for b in range(7))


def _far(ours: np.ndarray, ref: np.ndarray) -> bool:
    return float(np.abs(ours - ref).max()) > 1e-2 * max(1.0, float(np.abs(ref).max()))


# --------------------------------------------------------------------------- graphs


def test_stem_keeps_the_map_size_through_its_same_padded_2x2_branch():
    model = get_builder("pphgnetv2_b0")()
    model.eval()
    seen = {}
    for name in ("stem1", "stem2a", "stem2b", "pool", "stem3", "stem4"):
        getattr(model.stem, name).register_forward_post_hook(
            lambda layer, inp, out, key=name: seen.__setitem__(key, out.shape)
        )
    with paddle.no_grad():
        model.forward_features(paddle.randn([1, 3, 64, 80]))
    # 2x2 stride-1 convs and max-pool with "SAME" padding (the extra pixel after) keep 32x40.
    assert seen["stem1"] == [1, 16, 32, 40]
    assert seen["stem2a"] == [1, 8, 32, 40] and seen["stem2b"] == [1, 16, 32, 40]
    assert seen["pool"] == [1, 16, 32, 40]
    assert seen["stem3"] == [1, 16, 16, 20] and seen["stem4"] == [1, 16, 16, 20]


def test_learnable_affine_follows_every_activation_of_b0_to_b3_only():
    b0, b4 = lazy("pphgnetv2_b0"), lazy("pphgnetv2_b4")
    labs = [k for k in b0.state_dict() if ".lab." in k or k.startswith("lab.")]
    assert "lab.scale" in labs and "stem.stem1.lab.scale" in labs
    # Layers without activation (the 1x1 of a light conv, the depthwise downsample) have none.
    assert "stages.2.blocks.0.layers.0.conv1.lab.scale" not in labs
    assert "stages.2.blocks.0.layers.0.conv2.lab.scale" in labs
    assert "stages.1.downsample.lab.scale" not in labs
    assert not any("lab" in k for k in b4.state_dict())
    # PaddleClas trains the two scalars at 0.01 x the learning rate.
    assert b0.lab.scale.optimize_attr["learning_rate"] == pytest.approx(0.01)


def test_stages_follow_the_paddleclas_configs():
    # PaddleClas 2.6.0 PPHGNetV2_B4: stem [3, 32, 48]; stages (in, mid, out, blocks, downsample,
    # light, kernel, layers) (48,48,128,1,F,F,3,6) (128,96,512,1,T,F,3,6) (512,192,1024,3,T,T,5,6) (1024,384,2048,1,T,T,5,6)
    model = lazy("pphgnetv2_b4")
    sd = model.state_dict()
    assert sd["stem.stem1.conv.weight"].shape == [32, 3, 3, 3]
    assert sd["stem.stem2a.conv.weight"].shape == [16, 32, 2, 2]
    assert sd["stem.stem3.conv.weight"].shape == [32, 64, 3, 3]
    assert sd["stem.stem4.conv.weight"].shape == [48, 32, 1, 1]
    assert [len(s.blocks) for s in model.stages] == [1, 1, 3, 1]
    assert model.stages[0].downsample is None
    assert sd["stages.1.blocks.0.layers.0.conv.weight"].shape == [96, 128, 3, 3]  # plain conv
    assert sd["stages.2.blocks.0.layers.0.conv1.conv.weight"].shape == [192, 512, 1, 1]  # light conv
    assert sd["stages.2.blocks.0.layers.0.conv2.conv.weight"].shape == [192, 1, 5, 5]
    assert sd["stages.3.blocks.0.aggregation_squeeze_conv.conv.weight"].shape == [1024, 1024 + 6 * 384, 1, 1]
    assert sd["stages.3.blocks.0.aggregation_excitation_conv.conv.weight"].shape == [2048, 1024, 1, 1]
    assert [b.identity for b in model.stages[2].blocks] == [False, True, True]
    assert sd["last_conv.weight"].shape == [2048, 2048, 1, 1]


def test_registry_parameter_counts_are_the_measured_ones():
    # PaddleClas publishes none for B0-B6; the registry gives our count, equal to PaddleClas's (fidelity below).
    for name in NAMES:
        info = REGISTRY.get(name)
        assert info.num_params["value"] == trainable(lazy(info.architecture)), name
        assert info.num_params["source"].startswith("measured"), name


# --------------------------------------------------------------------------- registry and fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    assert sorted(variants) == sorted(
        (n, t) for n in NAMES for t in ("paddleclas_ssld", "paddleclas_ssld_stage1")
    )
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == {"paddleclas_legendary"}
    for name in NAMES:
        info = REGISTRY.get(name)
        # PaddleClas's builders pass use_ssld_stage1_pretrained=True, so pretrained=True loads stage 1.
        assert info.default_weights == "paddleclas_ssld_stage1"
        ssld, stage1 = info.weights["paddleclas_ssld"], info.weights["paddleclas_ssld_stage1"]
        assert ssld.urls[0].endswith(f"/legendary_models/{name}_ssld_pretrained.pdparams")
        assert stage1.urls[0].endswith(f"/legendary_models/{name}_ssld_stage1_pretrained.pdparams")
        assert oracle_identity(name, "paddleclas_ssld") == oracle_identity(name, "paddleclas_ssld_stage1")
    # The B4 SSLD recipes evaluate at 236, the architecture's own config at 232.
    b4 = REGISTRY.get("PPHGNetV2_B4")
    assert b4.preprocess_for("paddleclas_ssld")["resize_size"] == 236
    assert REGISTRY.get("PPHGNetV2_B3").preprocess_for("paddleclas_ssld")["resize_size"] == 232


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    res = oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=oracle_input(name))


def test_a_wrong_mapping_or_activation_does_not_reproduce_the_oracle(oracles):
    name, tag = "PPHGNetV2_B0", "paddleclas_ssld"
    res, x = oracles(name, tag), oracle_input(name)
    assert_logits_close(logits_from_file(name, tag, res.path, x), res.logits)

    def swap(a, b):
        def edit(tensors):
            tensors[a], tensors[b] = tensors[b], tensors[a]

        return edit

    # Two learnable-affine scalars swapped: the strict layout fits, the logits do not.
    assert _far(
        logits_from_file(name, tag, res.path, x, edit=swap("stem.stem1.lab.scale", "stem.stem1.lab.bias")),
        res.logits,
    )
    with pytest.raises(WeightsMismatchError, match=r"mis-shaped \(2\)") as err:
        logits_from_file(
            name, tag, res.path, x, edit=swap("stem.stem2a.conv.weight", "stem.stem2b.conv.weight")
        )
    assert "stem.stem2a.conv.weight: source [16, 8, 2, 2] vs network [8, 16, 2, 2]" in str(err.value)
    # The affine dropped from one layer, or one ReLU replaced by swish, changes the logits.
    assert _far(
        logits_from_file(name, tag, res.path, x, alter=lambda m: setattr(m.stem.stem4, "lab", None)),
        res.logits,
    )
    assert _far(
        logits_from_file(
            name, tag, res.path, x, alter=lambda m: setattr(m.stem.stem3, "act", paddle.nn.Swish())
        ),
        res.logits,
    )
