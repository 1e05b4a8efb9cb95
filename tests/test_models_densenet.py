"""DenseNet 121/161/169/201/264: graph, PaddleClas names, paddle.vision md5s, fidelity to PaddleClas 2.6.0.

Fidelity: for every (model, variant) registry.json lists for the ``densenet`` family, PaddleClas
2.6.0's own ``model_zoo/densenet.py`` builder runs in a subprocess with random weights, writes
them with ``paddle.save``, and reports eval logits on a 64x64 input (the last block then runs
at 2x2); ``load_model`` must restore that file, served at the variant's real URL, and give the
same logits. Expected source names and shapes below are read off PaddleClas's state_dict of
``DenseNet121()``. The checks every architecture shares are in ``test_models_common.py``.
"""

from __future__ import annotations

import paddle
import pytest

from paddlehub_cls.layouts import get_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.models.layers import make_act

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

FAMILY = "densenet"
LAYOUT = "paddleclas_model_zoo"
# ZOO_FACTS table 1 rows 30-34.
NAMES = ("DenseNet121", "DenseNet161", "DenseNet169", "DenseNet201", "DenseNet264")
X = family_input(FAMILY)


def test_blocks_growth_and_widths_follow_paddleclas():
    sd = lazy("densenet121").state_dict()
    assert len(sd) == 606  # PaddleClas DenseNet121's state_dict
    assert sd["stem.conv.weight"].shape == [64, 3, 7, 7]
    assert sd["stages.0.layers.0.bottleneck.norm.weight"].shape == [64]
    assert sd["stages.0.layers.5.bottleneck.conv.weight"].shape == [128, 224, 1, 1]
    assert sd["stages.0.layers.5.conv.conv.weight"].shape == [32, 128, 3, 3]
    assert sd["stages.1.transition.conv.weight"].shape == [128, 256, 1, 1]
    assert sd["stages.3.layers.15.conv.conv.weight"].shape == [32, 128, 3, 3]
    assert sd["norm.bn._variance"].shape == [1024] and sd["fc.weight"].shape == [1024, 1000]
    assert not any(k.startswith("stages.0.transition") for k in sd)
    for builder, blocks, width in (
        ("densenet161", (6, 12, 36, 24), 2208),
        ("densenet169", (6, 12, 32, 32), 1664),
        ("densenet201", (6, 12, 48, 32), 1920),
        ("densenet264", (6, 12, 64, 48), 2688),
    ):
        model = lazy(builder)
        assert tuple(len(s.layers) for s in model.stages) == blocks and model.num_features == width


def test_layout_names_follow_paddleclas():
    mapping = get_layout(FAMILY, LAYOUT)(lazy("densenet121"))
    assert mapping["stem.conv.weight"] == "conv1_func._conv.weight"
    assert mapping["stem.bn._mean"] == "conv1_func._batch_norm._mean"
    assert (
        mapping["stages.0.layers.0.bottleneck.norm.weight"]
        == "db_conv_2.conv2_1.bn_ac_func1._batch_norm.weight"
    )
    assert mapping["stages.2.layers.23.conv.conv.weight"] == "db_conv_4.conv4_24.bn_ac_func2._conv.weight"
    assert mapping["stages.1.transition.norm._variance"] == "tr_conv2_blk.conv_ac_func._batch_norm._variance"
    assert mapping["stages.3.transition.conv.weight"] == "tr_conv4_blk.conv_ac_func._conv.weight"
    assert mapping["norm.bn.bias"] == "batch_norm.bias"
    assert mapping["fc.weight"] == "out.weight"


def test_dropout_drops_new_channels_and_scales_them_at_inference():
    paddle.seed(2)
    model = get_builder("densenet121")(dropout=0.2)
    layer = model.stages[0].layers[0]
    x = paddle.randn([1, 64, 8, 8])
    layer.eval()
    with paddle.no_grad():
        out = layer(x)
        new = layer.conv(layer.bottleneck(x))
    # PaddleClas's Dropout(mode="downscale_in_infer"): the input passes, the new channels are scaled.
    assert out.shape == [1, 96, 8, 8]
    assert bool((out[:, :64] == x).all())
    assert float((out[:, 64:] - 0.8 * new).abs().max()) < 1e-5


# --------------------------------------------------------------------------- registry and fidelity


def test_every_registry_variant_is_covered_with_the_paddle_vision_md5():
    import paddle.vision.models.densenet as vision_densenet

    assert sorted(family_variants(FAMILY)) == sorted((n, "paddleclas") for n in NAMES)
    for name in NAMES:
        info, variant = REGISTRY.resolve(name, "paddleclas")
        assert variant.layout == LAYOUT
        # paddle.vision loads the same PaddleClas file and publishes its md5.
        url, md5 = vision_densenet.model_urls[info.architecture]
        assert variant.urls == (url,) or list(variant.urls) == [url]
        assert variant.checksum == f"md5:{md5}"


def test_a_wrong_mapping_or_activation_changes_the_logits(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DenseNet121", "paddleclas")
    # Two 3x3 convs of one block mapped to each other's tensors (same shape): the logits move.
    pair = ("stages.2.layers.3.conv.conv.weight", "stages.2.layers.4.conv.conv.weight")
    assert_swap_is_caught("densenet121", res, FAMILY, LAYOUT, pair, monkeypatch, X)
    # The right file, with one pre-activation ReLU replaced by swish.
    model = load_as_variant("DenseNet121", "paddleclas", res.path, cleanup, monkeypatch)
    assert_logits_close(logits_of(model, X), res.logits)
    model.stages[1].layers[0].bottleneck.relu = make_act("swish")
    assert_logits_differ(model, res, X)


def test_new_head_one_input_channel_and_features_keep_the_loaded_weights(
    shared_oracles, cleanup, monkeypatch
):
    res = shared_oracles("DenseNet121", "paddleclas")
    maps = [[1, 64, 32, 32], [1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 1024, 2, 2]]
    assert_load_options_work("DenseNet121", "paddleclas", res, cleanup, monkeypatch, X, maps=maps)


def test_exported_program_runs_in_paddle_inference(shared_oracles, cleanup, monkeypatch):
    res = shared_oracles("DenseNet121", "paddleclas")
    model = load_as_variant("DenseNet121", "paddleclas", res.path, cleanup, monkeypatch)
    assert_predictor_matches(model, cleanup / "export")


# Last: the other checks share DenseNet121's oracle run while it is still cached.
@pytest.mark.parametrize("name,tag", variant_params(FAMILY))
def test_fidelity(name, tag, shared_oracles, cleanup, monkeypatch, record_property):
    res = shared_oracles(name, tag)
    model = load_as_variant(name, tag, res.path, cleanup, monkeypatch)
    assert_fidelity(model, res, record_property, x=X)
    assert_published_count_near(name, res)
