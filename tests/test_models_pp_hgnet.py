"""PP-HGNet tiny/small/base: graph rules, registry variants, fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``pp_hgnet`` family, PaddleClas
2.6.0's own ``legendary_models/pp_hgnet.py`` class gets random weights (BN statistics included),
saves them with ``paddle.save`` and reports eval logits on a 64x64 input (the network is fully
convolutional; ``_modelcheck.ORACLE_SIDE``); ``load_model`` must restore that file, served at the
variant's real URL through a mirror, and give the same logits. The base and SSLD variants of an
architecture share one oracle run (``_modelcheck.oracle_identity``). The checks every architecture
shares are in ``test_models_common.py``.
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
    variant_params,
)

FAMILY = "pp_hgnet"
NAMES = ("PPHGNet_tiny", "PPHGNet_small", "PPHGNet_base")


def _far(ours: np.ndarray, ref: np.ndarray) -> bool:
    return float(np.abs(ours - ref).max()) > 1e-2 * max(1.0, float(np.abs(ref).max()))


# --------------------------------------------------------------------------- graphs


def test_blocks_follow_the_paddleclas_stage_configs():
    # PaddleClas 2.6.0 legendary_models/pp_hgnet.py PPHGNet_small: stem [64, 64, 128], layer_num 6,
    # stages (in, mid, out, blocks, downsample) (128,128,256,1,F) (256,160,512,1,T) (512,192,768,2,T) (768,224,1024,1,T).
    model = lazy("pphgnet_small")
    sd = model.state_dict()
    assert [sd[f"stem.{i}.conv.weight"].shape for i in range(3)] == [
        [64, 3, 3, 3],
        [64, 64, 3, 3],
        [128, 64, 3, 3],
    ]
    assert model.stem[0].conv._stride == [2, 2] and model.stem[1].conv._stride == [1, 1]
    assert model.stages[0].downsample is None
    for s, (c_in, mid, out, blocks) in enumerate(
        [(128, 128, 256, 1), (256, 160, 512, 1), (512, 192, 768, 2), (768, 224, 1024, 1)]
    ):
        stage = model.stages[s]
        assert len(stage.blocks) == blocks
        if s:
            # depthwise 3x3/2 conv-BN without activation
            assert sd[f"stages.{s}.downsample.conv.weight"].shape == [c_in, 1, 3, 3]
            assert stage.downsample.conv._stride == [2, 2]
            assert isinstance(stage.downsample.act, paddle.nn.Identity)
        block = stage.blocks[0]
        assert len(block.layers) == 6 and not block.identity
        assert all(b.identity for b in list(stage.blocks)[1:])
        assert sd[f"stages.{s}.blocks.0.aggregation_conv.conv.weight"].shape == [out, c_in + 6 * mid, 1, 1]
        # ESE: one 1x1 conv with bias, no reduction
        assert sd[f"stages.{s}.blocks.0.att.conv.weight"].shape == [out, out, 1, 1]
        assert sd[f"stages.{s}.blocks.0.att.conv.bias"].shape == [out]
    assert sd["last_conv.weight"].shape == [2048, 1024, 1, 1] and "last_conv.bias" not in sd
    assert sd["fc.weight"].shape == [2048, 1000]


def test_only_base_has_dropout_and_it_scales_the_classifier_input_by_0_8():
    assert isinstance(lazy("pphgnet_tiny").drop, paddle.nn.Identity)
    paddle.seed(3)
    base = get_builder("pphgnet_base")()
    base.eval()
    x = paddle.to_tensor(oracle_input("PPHGNet_base"))
    with paddle.no_grad():
        pooled = base.forward_head(base.forward_features(x), pre_logits=True)
        # PaddleClas: Dropout(p=0.2, mode="downscale_in_infer") after the head conv
        np.testing.assert_allclose(
            base(x).numpy(), (0.8 * pooled @ base.fc.weight + base.fc.bias).numpy(), rtol=1e-4, atol=1e-3
        )


# --------------------------------------------------------------------------- registry and fidelity


def test_every_registry_variant_of_the_family_is_covered():
    variants = family_variants(FAMILY)
    assert sorted(variants) == sorted(
        [
            ("PPHGNet_tiny", "paddleclas"),
            ("PPHGNet_tiny", "paddleclas_ssld"),
            ("PPHGNet_small", "paddleclas"),
            ("PPHGNet_small", "paddleclas_ssld"),
            ("PPHGNet_base", "paddleclas_ssld"),
        ]
    )
    assert {REGISTRY.resolve(n, t)[1].layout for n, t in variants} == {"paddleclas_legendary"}
    # PaddleClas's builders default to use_ssld=False, except PPHGNet_base, whose only file is SSLD.
    assert [REGISTRY.get(n).default_weights for n in NAMES] == ["paddleclas", "paddleclas", "paddleclas_ssld"]
    # The base and SSLD files of one architecture share one oracle run.
    assert oracle_identity("PPHGNet_tiny", "paddleclas") == oracle_identity("PPHGNet_tiny", "paddleclas_ssld")


@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, oracles, cleanup, monkeypatch, record_property):
    res = oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=oracle_input(name))


def test_a_wrong_mapping_or_activation_does_not_reproduce_the_oracle(oracles):
    name, tag = "PPHGNet_tiny", "paddleclas"
    res, x = oracles(name, tag), oracle_input(name)
    assert_logits_close(logits_from_file(name, tag, res.path, x), res.logits)

    def swap(a, b):
        def edit(tensors):
            tensors[a], tensors[b] = tensors[b], tensors[a]

        return edit

    # Two same-shaped BN scales swapped: the strict layout still fits, the logits do not.
    same = swap("stages.1.blocks.0.layers.0.bn.weight", "stages.1.blocks.0.layers.1.bn.weight")
    assert _far(logits_from_file(name, tag, res.path, x, edit=same), res.logits)
    # Tensors of different shapes swapped: refused, naming both.
    att, agg = "stages.0.blocks.0.att.conv.weight", "stages.0.blocks.0.aggregation_conv.conv.weight"
    with pytest.raises(WeightsMismatchError, match=r"mis-shaped \(2\)") as err:
        logits_from_file(name, tag, res.path, x, edit=swap(att, agg))
    assert f"{att}: source [224, 576, 1, 1] vs network [224, 224, 1, 1]" in str(err.value)
    assert f"{agg}: source [224, 224, 1, 1] vs network [224, 576, 1, 1]" in str(err.value)
    # One ReLU of the stem replaced by swish changes the logits.
    assert _far(
        logits_from_file(
            name, tag, res.path, x, alter=lambda m: setattr(m.stem[1], "act", paddle.nn.Swish())
        ),
        res.logits,
    )
