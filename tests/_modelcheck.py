"""Checks shared by the model-family tests (``tests/test_models_*.py``).

Counting parameters, eval logits, the logits tolerance, running the oracle of a
registry variant, loading a file as that variant, and the checks every family
repeats (stage outputs against ``feature_info``, a layout covering every key,
a new head keeping the other weights, parameters not shared between models).
``tests/test_models_common.py`` runs the generic checks over every
architecture; a family's own file keeps what only that family has.

Import it as ``from _modelcheck import ...`` (``tests/`` is on ``sys.path``).
``cleanup`` and ``oracles`` are fixtures: import them by name into the test
module that uses them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import numpy as np
import paddle
import pytest

from oracles import OracleResult
from oracles.fluid import run_fluid_oracle
from oracles.paddleclas import run_paddleclas
from oracles.vision import vision_oracle
from paddlehub_cls import load_model
from paddlehub_cls.errors import WeightsMismatchError
from paddlehub_cls.formats import read_weights
from paddlehub_cls.layouts import get_layout, match_layout
from paddlehub_cls.models import get_builder
from paddlehub_cls.registry import load_registry

__all__ = [
    "X224",
    "REGISTRY",
    "oracle_input",
    "numel",
    "trainable",
    "lazy",
    "source_tensors",
    "swap_sources",
    "load_via_layout",
    "logits_of",
    "assert_logits_close",
    "family_variants",
    "variant_params",
    "family_input",
    "oracle_identity",
    "run_variant_oracle",
    "load_as_variant",
    "assert_published_count_near",
    "swapped_copy",
    "scale_parameters",
    "assert_predictor_matches",
    "assert_fidelity",
    "logits_from_file",
    "assert_new_head_keeps_the_rest",
    "assert_params_independent",
    "stage_outputs",
    "check_layout_covers",
    "eval_loss",
    "train_losses",
    "cleanup",
    "oracles",
    "shared_oracles",
    "oracle_input",
    "load_mapped",
    "assert_logits_differ",
    "assert_swap_is_caught",
    "assert_load_options_work",
    "unit_bn_statistics",
]

#: the fixed input of every oracle and fidelity comparison
X224 = np.random.default_rng(2019).standard_normal((1, 3, 224, 224)).astype("float32")
#: oracle input side of the registry models that do not run at 224: a fixed position table
#: (ViT, DeiT at 384) only takes its native size
ORACLE_SIDES: Dict[str, int] = {
    "DeiT_base_distilled_patch16_384": 384,
    "DeiT_base_patch16_384": 384,
    "ViT_base_patch16_384": 384,
    "ViT_base_patch32_384": 384,
    "ViT_large_patch16_384": 384,
    "ViT_large_patch32_384": 384,
}

REGISTRY = load_registry()

#: kwargs of ``build`` in ``tests/oracles/fluid_<family>.py`` for each registry model
FLUID_KWARGS: Dict[str, Dict[str, Any]] = {
    "ResNet18": {"layers": 18},
    "ResNet34": {"layers": 34},
    "ResNet50": {"layers": 50},
    "ResNet101": {"layers": 101},
    "ResNet152": {"layers": 152},
    "SE_ResNeXt50_32x4d": {"layers": 50},
    "SE_ResNeXt101_32x4d": {"layers": 101},
    "VGG11": {"depth": 11},
    "VGG13": {"depth": 13},
    "VGG16": {"depth": 16},
    "VGG19": {"depth": 19},
    "ShuffleNetV2": {"act": "relu"},
    "ShuffleNetV2_swish": {"act": "swish"},
}
#: PaddleClas builders not named like the registry model
PADDLECLAS_BUILDERS = {
    # CvT's and NextViT's _384 builders build the same network as their _224 ones: one oracle run serves both
    "CvT_13_384": "CvT_13_224",
    "CvT_21_384": "CvT_21_224",
    "NextViT_base_384": "NextViT_base_224",
    "NextViT_large_384": "NextViT_large_224",
    "NextViT_small_384": "NextViT_small_224",
    "ShuffleNetV2": "ShuffleNetV2_x1_0",
}
#: registry model -> (module, builder) of an oracle that fixes a PaddleClas class which cannot run
PADDLECLAS_FIXED = {
    "ResNet18_dbb": ("oracles.paddleclas_fixes", "ResNet18_dbb"),
    "SE_ResNeXt152_64x4d": ("oracles.paddleclas_fixes", "SE_ResNeXt152_64x4d"),
}
#: families (or single registry models) whose PaddleClas constructors read their fresh weights, so
#: cannot build under LazyGuard (ResNet18_dbb: its DBB's identity 1x1 conv zeroes its weight)
PADDLECLAS_EAGER = {"convnext", "fasternet", "van", "ResNet18_dbb"}
#: MODEL_URLS entries a PaddleClas constructor reads but its module lacks (ZOO_FACTS 1.2); with
#: use_ssld=True PaddleClas would turn this into the real ..._ssld_pretrained.pdparams URL
PADDLECLAS_MODEL_URLS = {
    "SE_HRNet_W64_C": {
        "SE_HRNet_W64_C": "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"
        "SE_HRNet_W64_C_pretrained.pdparams"
    },
}
#: family -> (PaddleClas parameter name suffixes, factor) the oracle shrinks after calibrating, for deep
#: residual networks whose random-weight activations otherwise grow until rounding decides the logits
PADDLECLAS_DAMPED = {"efficientnet_v2": (("_norm2.weight", "_norm2.bias"), 0.1)}
#: oracle input side per family where the architecture takes less than 224 (CI time)
# 96 for the mobile CNNs: a 3x3 last stage. At 64 (2x2) the oracle's BN statistics, calibrated on one
# image, are ill-conditioned (logits ~1e4-1e5) and load_model's rounding reached 91% of the tolerance
# (MobileNetV3_large_x0_75: 2.0 of 2.2); at 96 the worst of the 29 variants is 15% (1.5e-5 relative).
# Other 96s likewise give a 3x3 last map (Xception, DPN, StarNet); Inception's unpadded stem needs 139.
ORACLE_SIDE = {
    "convnext": 64,
    "cspnet": 64,
    "cvt": 64,
    "darknet": 64,
    "densenet": 64,
    "dpn": 96,
    "efficientnet": 64,
    "efficientnet_v2": 64,
    "fasternet": 64,
    "hardnet": 64,
    "hrnet": 64,
    "inception_v3": 139,
    "inception_v4": 139,
    "mobilenet_v3": 96,
    "mobilevit": 64,
    "mobilevit_v2": 64,
    "mobilevit_v3": 64,
    "nextvit": 64,
    "peleenet": 64,
    "pp_hgnet": 64,
    "pp_hgnet_v2": 64,
    "pp_lcnet": 96,
    "pp_lcnet_v2": 96,
    "res2net": 64,
    "res2net_vd": 64,
    "resnet_vc": 64,
    "resnext101_wsl": 64,
    "se_resnet_vd": 64,
    "se_resnext_vd": 64,
    "squeezenet": 64,
    "starnet": 96,
    "tinynet": 64,
    "van": 64,
    "xception": 96,
    "xception_deeplab": 96,
}
_PADDLECLAS_PACKAGES = {
    "paddleclas_legendary": "ppcls.arch.backbone.legendary_models",
    "paddleclas_model_zoo": "ppcls.arch.backbone.model_zoo",
}


def numel(model: Any) -> int:
    """Elements of the state_dict (BN running statistics included)."""
    return sum(int(np.prod(t.shape)) for t in model.state_dict().values())


def trainable(model: Any) -> int:
    """Elements of the trainable parameters (what published figures count)."""
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def lazy(builder: str, **kwargs: Any) -> paddle.nn.Layer:
    """A network whose parameters are declared but not initialised (cheap for shape checks)."""
    with paddle.LazyGuard():
        return get_builder(builder)(**kwargs)


def source_tensors(path: Path) -> Dict[str, np.ndarray]:
    """A ``.pdparams`` file's arrays by source name (edit them to test a wrong mapping)."""
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


def swap_sources(tensors: Dict[str, np.ndarray], a: str, b: str) -> Dict[str, np.ndarray]:
    """A copy of ``tensors`` with the arrays of source names ``a`` and ``b`` exchanged."""
    out = dict(tensors)
    out[a], out[b] = tensors[b], tensors[a]
    return out


def load_via_layout(model: Any, tensors: Dict[str, np.ndarray], layout: str, family: str) -> Any:
    """``tensors`` into ``model`` through ``layout``, strictly (``WeightsMismatchError`` if unfit)."""
    model.set_state_dict(match_layout(model, tensors, layout, family).arrays)
    return model


def logits_of(model: Any, x: np.ndarray = X224) -> np.ndarray:
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def assert_logits_close(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| must be below 1e-4 of the reference's scale; returns it."""
    assert ours.shape == ref.shape
    assert float(ref.std()) > 1e-2, "reference logits are nearly constant: the oracle weights are degenerate"
    diff = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"
    return diff


# --------------------------------------------------------------------------- registry variants and oracles


def family_variants(family: str) -> List[Tuple[str, str]]:
    """Every ``(model name, weight tag)`` the registry lists for ``family``."""
    return [
        (n, t) for n in REGISTRY.names() if REGISTRY.get(n).family == family for t in REGISTRY.get(n).weights
    ]


def variant_params(family: str, marks: Sequence[Any] = ()) -> List[Any]:
    """``pytest.param(name, tag)`` for every variant of ``family``, id ``Name.tag``.

    PaddleClas-backed cases carry the ``paddleclas`` marker (they need the unpacked wheel).
    """
    params = []
    for name, tag in family_variants(family):
        extra = (
            [pytest.mark.paddleclas] if REGISTRY.resolve(name, tag)[1].layout.startswith("paddleclas") else []
        )
        params.append(pytest.param(name, tag, id=f"{name}.{tag}", marks=[*marks, *extra]))
    return params


def family_input(family: str) -> np.ndarray:
    """The oracle input of ``family``: ``X224``, or its top-left corner of ``ORACLE_SIDE[family]``."""
    side = ORACLE_SIDE.get(family, 224)
    return X224[:, :, :side, :side]


def oracle_input(name: str) -> np.ndarray:
    """The fixed input of ``name``'s oracle: the same kind of draw as :data:`X224` at its
    ``ORACLE_SIDES`` side (fixed position tables), else :func:`family_input` of its family."""
    side = ORACLE_SIDES.get(name)
    if side is None:
        return family_input(REGISTRY.get(name).family)
    return np.random.default_rng(2019).standard_normal((1, 3, side, side)).astype("float32")


def oracle_identity(name: str, tag: str) -> Tuple[Any, ...]:
    """What an oracle run depends on: variants with equal identities (a model's base and SSLD
    weights) can share one run."""
    info, variant = REGISTRY.resolve(name, tag)
    paddleclas = variant.layout in _PADDLECLAS_PACKAGES
    builder = PADDLECLAS_BUILDERS.get(name, name) if paddleclas else info.architecture
    kwargs = json.dumps(info.build_kwargs(tag), sort_keys=True)
    return (variant.layout, info.family, builder, kwargs, variant.archive_root)


def run_variant_oracle(name: str, tag: str, out_dir: Path, x: Optional[np.ndarray] = None) -> OracleResult:
    """The oracle of a registry variant, by its layout: its weight file and logits on ``x``
    (default: :func:`oracle_input` of the model).

    paddle.vision builders and PaddleClas modules are named like our architectures
    and families; the 2019 static builder is ``oracles.fluid_<family>.build``.
    """
    info, variant = REGISTRY.resolve(name, tag)
    layout = variant.layout
    if x is None:
        x = oracle_input(name)
    if layout == "paddle_vision":
        return vision_oracle(info.architecture, {}, out_dir, x, name=name)
    if layout in _PADDLECLAS_PACKAGES:
        module, builder = PADDLECLAS_FIXED.get(
            name, (f"{_PADDLECLAS_PACKAGES[layout]}.{info.family}", PADDLECLAS_BUILDERS.get(name, name))
        )
        return run_paddleclas(
            module,
            builder,
            {},
            out_dir,
            x,
            lazy=info.family not in PADDLECLAS_EAGER and name not in PADDLECLAS_EAGER,
            model_urls=PADDLECLAS_MODEL_URLS.get(name),
            damp=PADDLECLAS_DAMPED.get(info.family),
        )
    if layout == "fluid2019":
        # The tar's top folder must be the registry's archive_root, "<release>_pretrained".
        release = variant.archive_root[: -len("_pretrained")]
        return run_fluid_oracle(
            f"oracles.fluid_{info.family}", "build", FLUID_KWARGS.get(name, {}), release, out_dir, x
        )
    raise AssertionError(f"no oracle for layout {layout!r} of {name}; add one to tests/_modelcheck.py")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_as_variant(
    name: str, tag: str, weights_file: Path, tmp_path: Path, monkeypatch: Any, server: Any = None
) -> paddle.nn.Layer:
    """``load_model(name, weights=tag)`` with ``weights_file`` served at the variant's URL.

    A ``PADDLEHUB_CLS_MIRROR`` holds the file at ``HOST/PATH`` of the variant's URL:
    the 127.0.0.1 test ``server`` when given, else a ``file://`` folder (the test
    server keeps a file in memory, too much for VGG). A variant with a published
    checksum gets it pinned to our file's sha256 through a ``PADDLEHUB_CLS_REGISTRY``
    override (the random file is not the release); the others are trusted on first
    use, with the warning, as for the real release. Either way the variant's arch
    kwargs and layout apply.
    """
    _, variant = REGISTRY.resolve(name, tag)
    url = urlsplit(variant.urls[0])
    mirror = tmp_path / "mirror"
    dest = mirror / url.netloc / url.path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.link(weights_file, dest)  # a hard link: no copy of the bytes
    if server is not None:
        server.directory = mirror
        monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", server.base_url)
    else:
        monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", mirror.as_uri())
    monkeypatch.delenv("PADDLEHUB_CLS_REQUIRE_CHECKSUM", raising=False)
    monkeypatch.delenv("PADDLEHUB_CLS_OFFLINE", raising=False)
    if variant.checksum is not None:
        override = tmp_path / "pin.json"
        pin = {"checksum": f"sha256:{_sha256(Path(weights_file))}"}
        override.write_text(json.dumps({"schema_version": 1, "models": {name: {"weights": {tag: pin}}}}))
        monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(override))
        model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    else:
        with pytest.warns(UserWarning, match="no published checksum.*trusting it on first use"):
            model = load_model(name, weights=tag, cache_dir=tmp_path / "cache")
    if server is not None:
        assert server.requests_for(url.netloc + url.path), "the weights were not fetched from the mirror"
    assert model.load_report.layout == variant.layout
    return model


def assert_published_count_near(name: str, res: OracleResult) -> None:
    """The registry's published parameter count is within 2% of the oracle's trainable count,
    or its note gives that measured count (``"470,072 trainable"``)."""
    published = REGISTRY.get(name).num_params
    measured = res.extra["num_trainable"]
    if abs(published["value"] - measured) > 0.02 * measured:
        assert f"{measured:,} trainable" in (published.get("note") or ""), (name, published, measured)


def assert_fidelity(
    model: Any, res: OracleResult, record_property: Optional[Callable] = None, x: np.ndarray = X224
) -> float:
    """A loaded network against its oracle (run on ``x``): same counts, every key from the file, same logits.

    Returns the max abs logits difference (also recorded as a junit property).
    """
    assert numel(model) == res.num_params
    assert trainable(model) == res.extra["num_trainable"]
    assert len(model.state_dict()) == res.num_keys
    assert not model.load_report.filled
    diff = assert_logits_close(logits_of(model, x), res.logits)
    if record_property is not None:
        record_property("max_abs_diff", diff)
        record_property("logits_scale", float(np.abs(res.logits).max()))
    return diff


def load_mapped(model: Any, res: OracleResult, family: str, layout: str) -> Any:
    """Assign the oracle's file to ``model`` through ``layout`` (no cache, no download); returns ``model``."""
    tensors = {k: np.asarray(v) for k, v in paddle.load(str(res.path)).items()}
    match = match_layout(model, tensors, layout, family, origin=str(res.path))
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in match.arrays.items()})
    return model


def assert_logits_differ(model: Any, res: OracleResult, x: np.ndarray = X224) -> float:
    """``model``'s logits on ``x`` miss the oracle's by 10x the fidelity tolerance or more; returns the gap.

    A saturated gate (random weights drive most SE inputs past the hardsigmoid's corners)
    moves the logits by well under 1% of their scale, yet far outside what
    :func:`assert_logits_close` accepts (1e-4 of the scale).
    """
    diff = float(np.abs(logits_of(model, x) - res.logits).max())
    assert diff > 1e-3 * max(1.0, float(np.abs(res.logits).max())), diff
    return diff


def assert_swap_is_caught(
    builder: str,
    res: OracleResult,
    family: str,
    layout: str,
    pair: Tuple[str, str],
    monkeypatch: Any,
    x: np.ndarray = X224,
) -> None:
    """A layout that maps our keys ``pair`` to each other's source names does not pass unnoticed.

    Different shapes: :class:`WeightsMismatchError` naming a source key. Equal shapes: logits
    far from the oracle's, while the true layout reproduces them on the same network.
    """
    from paddlehub_cls import layouts

    a, b = pair
    model = load_mapped(get_builder(builder)(), res, family, layout)
    assert_logits_close(logits_of(model, x), res.logits)
    true_layout = get_layout(family, layout)

    def swapped(net: Any) -> Dict[str, Any]:
        mapping = dict(true_layout(net))
        mapping[a], mapping[b] = mapping[b], mapping[a]
        return mapping

    shapes = model.state_dict()
    with monkeypatch.context() as patch:  # undone on return: the next call sees the true layout
        patch.setitem(layouts._LAYOUTS, (family, layout), swapped)
        if shapes[a].shape != shapes[b].shape:
            with pytest.raises(WeightsMismatchError, match="mis-shaped"):
                load_mapped(model, res, family, layout)
        else:
            assert_logits_differ(load_mapped(model, res, family, layout), res, x)


def assert_load_options_work(
    name: str,
    tag: str,
    res: OracleResult,
    tmp_path: Path,
    monkeypatch: Any,
    x: np.ndarray = X224,
    maps: Optional[Sequence[Sequence[int]]] = None,
) -> None:
    """``load_model`` of the oracle's file as ``name.tag`` with ``num_classes=10``, ``in_chans=1``
    and ``features_only=True``: a new head over the same features, a one-channel stem (the sum of
    the RGB filters), the stage maps of ``feature_info`` (and exactly the shapes ``maps``, if given).
    """
    full = load_as_variant(name, tag, res.path, tmp_path, monkeypatch)
    cache = tmp_path / "cache"  # load_as_variant's: the file is cached (and trusted) from here on
    ten = load_model(name, weights=tag, num_classes=10, cache_dir=cache)
    assert_new_head_keeps_the_rest(full, ten, full.classifier_keys())
    gray = load_model(name, weights=tag, in_chans=1, cache_dir=cache)
    first = f"{full.first_conv}.weight"
    summed = full.state_dict()[first].numpy().sum(axis=1)
    np.testing.assert_allclose(gray.state_dict()[first].numpy()[:, 0], summed, rtol=1e-6, atol=1e-6)
    assert logits_of(gray, x[:, :1]).shape == (1, 1000)
    feats = load_model(name, weights=tag, features_only=True, cache_dir=cache)
    feats.eval()
    with paddle.no_grad():
        got = feats(paddle.to_tensor(x))
    side = x.shape[-1]
    # The power of two nearest to input / map, as in stage_outputs: unpadded convs and pools
    # (Inception, Xception) round their maps down (139 -> 67, 31, 15, 7, 3 for Inception v3).
    assert [(m.shape[1], 2 ** int(round(np.log2(side / m.shape[-1])))) for m in got] == [
        (i["num_chs"], i["reduction"]) for i in full.feature_info
    ]
    if maps is not None:
        assert [list(m.shape) for m in got] == [list(m) for m in maps]


def logits_from_file(
    name: str,
    tag: str,
    weights_file: Path,
    x: np.ndarray,
    edit: Optional[Callable[[Dict[str, np.ndarray]], None]] = None,
    alter: Optional[Callable[[Any], None]] = None,
) -> np.ndarray:
    """Eval logits of our network for ``name.tag`` filled from ``weights_file`` through the variant's
    strict layout, after ``edit(tensors)`` changed the file's tensors and ``alter(model)`` the network.

    For the checks that a wrong mapping or a wrong activation would not go unnoticed.
    """
    info, variant = REGISTRY.resolve(name, tag)
    tensors = dict(read_weights(weights_file).tensors)
    if edit is not None:
        edit(tensors)
    model = get_builder(info.architecture)(**info.build_kwargs(tag))
    match = match_layout(model, tensors, variant.layout, info.family, origin=str(weights_file))
    model.set_state_dict({k: paddle.to_tensor(np.ascontiguousarray(v)) for k, v in match.arrays.items()})
    if alter is not None:
        alter(model)
    return logits_of(model, x)


def swapped_copy(path: Path, out: Path, a: str, b: str) -> Path:
    """A copy of the ``.pdparams`` file ``path`` at ``out`` with the tensors ``a`` and ``b`` swapped."""
    state = paddle.load(str(path))
    state[a], state[b] = state[b], state[a]
    paddle.save(state, str(out))
    return out


def scale_parameters(model: Any, suffixes: Sequence[str], factor: float) -> int:
    """Multiply every parameter whose name ends with one of ``suffixes`` by ``factor``; returns how many.

    For export checks of networks that random weights make ill-conditioned (StarNet's star
    products square each block's scale): shrinking the residual branches keeps the graph.
    """
    hits = 0
    for name, param in model.named_parameters():
        if name.endswith(tuple(suffixes)):
            param.set_value(param * factor)
            hits += 1
    return hits


def unit_bn_statistics(model: Any) -> Any:
    """Set every batch norm's running mean to 0 and variance to 1; returns ``model``.

    For networks whose random, BN-calibrated weights amplify kernel rounding beyond the logits
    tolerance (LeViT: nothing normalises its residual stream), so that an export parity check
    compares a well-conditioned network.
    """
    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D)):
            layer._mean.set_value(paddle.zeros(layer._mean.shape))
            layer._variance.set_value(paddle.ones(layer._variance.shape))
    return model


def assert_predictor_matches(model: Any, out_dir: Path, side: Optional[int] = None, x: Optional[np.ndarray] = None) -> float:
    """``export(model)`` run by a CPU ``Predictor`` (oneDNN) gives the dygraph logits on a batch of 2
    (``x`` and its upside-down copy; default: a fixed random input of the export's size).

    ``side``: export for ``side`` x ``side`` inputs instead of the model's registry size (224).
    Returns the max abs difference.
    """
    from paddlehub_cls import Predictor, export

    model.eval()
    out = export(model, out_dir) if side is None else export(model, out_dir, input_size=side)
    predictor = Predictor(out, threads=1, use_gpu=False)
    if x is None:
        # The export's input size: the registry's (TinyNet_E: 106) or ``side``.
        c, h, w = predictor.input_size
        x = X224 if (c, h, w) == (3, 224, 224) else np.random.default_rng(2019).standard_normal((1, c, h, w)).astype("float32")
    x = np.concatenate([x, x[:, :, ::-1, :]])
    return assert_logits_close(predictor.run(x), logits_of(model, x))


# --------------------------------------------------------------------------- generic network checks


def assert_new_head_keeps_the_rest(full: Any, ten: Any, reset: Sequence[str]) -> None:
    """``ten`` is ``full``'s source loaded with ``num_classes=10``: only the ``reset`` keys differ."""
    assert ten.num_classes == 10
    assert ten.load_report.reset == list(reset)
    a, b = full.state_dict(), ten.state_dict()
    for key in reset:
        shape = list(a[key].shape)
        # A linear head's weight is [in, out]; a 1x1-conv head's (SqueezeNet) [out, in, 1, 1].
        if not key.endswith(".weight"):
            want = [10]
        else:
            want = [shape[0], 10] if len(shape) == 2 else [10, *shape[1:]]
        assert list(b[key].shape) == want, key
    for key in a:
        if key not in reset:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    x = paddle.to_tensor(X224)
    ten.eval()
    full.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(
            ten.forward_head(ten.forward_features(x), pre_logits=True).numpy(),
            full.forward_head(full.forward_features(x), pre_logits=True).numpy(),
            rtol=1e-6,
        )
        assert ten(x).shape == [1, 10]


def assert_params_independent(first: Any, second: Any, *others: Any, x: np.ndarray) -> None:
    """No parameter name is shared, and zeroing ``first`` leaves ``second``'s logits unchanged."""
    names = [p.name for m in (first, second, *others) for p in m.parameters()]
    assert len(names) == len(set(names))
    before = logits_of(second, x)
    first.set_state_dict({k: paddle.zeros_like(v) for k, v in first.state_dict().items()})
    np.testing.assert_array_equal(logits_of(second, x), before)
    for model in others:
        assert logits_of(model, x).shape == (1, 1000)


def stage_outputs(model: Any, size: int) -> List[Tuple[int, int]]:
    """``(channels, reduction)`` of each ``feature_info`` module's output on a ``size`` x ``size`` input.

    The reduction is the power of two nearest to input / map: unpadded 3x3/2
    pools round down (GoogLeNet: 192 -> 96, 47, 23, 11, 5).
    """
    layers = dict(model.named_sublayers())
    seen: Dict[str, List[int]] = {}
    hooks = [
        layers[info["module"]].register_forward_post_hook(
            lambda layer, inp, out, key=info["module"]: seen.__setitem__(key, out.shape)
        )
        for info in model.feature_info
    ]
    model.eval()
    try:
        with paddle.no_grad():
            model.forward_features(paddle.randn([1, 3, size, size]))
    finally:
        for hook in hooks:
            hook.remove()
    return [
        (seen[i["module"]][1], 2 ** int(round(np.log2(size / seen[i["module"]][2]))))
        for i in model.feature_info
    ]


def check_layout_covers(model: Any, family: str, layout: str, *, optional_ok: bool = False) -> Dict[str, Any]:
    """``layout`` maps every key of ``model`` to its own source name, and ``match_layout`` takes them all.

    ``optional_ok``: sources may be ``Optional`` (a release may lack them).
    Returns the mapping.
    """
    ours = model.state_dict()
    mapping = get_layout(family, layout)(model)
    assert set(mapping) == set(ours), layout
    sources = [getattr(s, "key", s) for s in mapping.values()]
    assert len(set(sources)) == len(sources), f"{layout} maps two keys to one source name"
    if not optional_ok:
        assert all(
            isinstance(s, str) for s in mapping.values()
        ), f"no {family} tensor is optional in {layout}"
    # Zero-stride stand-ins: match_layout checks shapes, not values.
    tensors = {src: np.broadcast_to(np.float32(0), ours[k].shape) for k, src in zip(mapping, sources)}
    match = match_layout(model, tensors, layout, family)
    assert set(match.arrays) == set(ours) and not match.filled
    return mapping


def eval_loss(model: Any, x: paddle.Tensor, y: paddle.Tensor) -> float:
    model.eval()
    with paddle.no_grad():
        return float(paddle.nn.functional.cross_entropy(model(x), y))


def train_losses(
    model: Any,
    x: paddle.Tensor,
    y: paddle.Tensor,
    optimizer: Any,
    steps: int,
    loss_of: Optional[Callable] = None,
) -> List[float]:
    """``steps`` training steps on one batch; returns the train-mode loss of each step.

    ``loss_of(outputs, y)`` defaults to cross entropy of the logits.
    """
    loss_of = loss_of or paddle.nn.functional.cross_entropy
    model.train()
    losses = []
    for _ in range(steps):
        loss = loss_of(model(x), y)
        losses.append(float(loss))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    return losses


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def cleanup(tmp_path: Path):
    """Remove the (large) weight files a test wrote once it is done, and free the networks."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
    gc.collect()


def _oracle_runs(root: Path, keep: int) -> Callable[..., OracleResult]:
    """``get(name, tag, x=None)``: the oracle of a variant on ``x`` (default :func:`oracle_input`),
    run once for every variant of one :func:`oracle_identity` and input (a model's base, SSLD,
    22k->1k weights share one graph, and the oracle writes random values anyway).

    Only the ``keep`` latest runs keep their files: a ViT-L file is 1.2 GB, and the registry
    lists a model's variants one after another, so an evicted run is rarely needed again.
    """
    done: Dict[Tuple[Any, ...], Tuple[Path, OracleResult]] = {}

    def get(name: str, tag: str, x: Optional[np.ndarray] = None) -> OracleResult:
        x = oracle_input(name) if x is None else x
        key = (*oracle_identity(name, tag), x.shape, hashlib.sha256(x.tobytes()).hexdigest())
        if key in done:
            done[key] = done.pop(key)  # most recently used last
        else:
            while len(done) >= keep:
                old_dir, _ = done.pop(next(iter(done)))
                shutil.rmtree(old_dir, ignore_errors=True)
            out_dir = root / f"{name}.{tag}.{hashlib.sha1(repr(key).encode()).hexdigest()[:8]}"
            done[key] = (out_dir, run_variant_oracle(name, tag, out_dir, x))
        return done[key][1]

    return get


@pytest.fixture(scope="module")
def shared_oracles(tmp_path_factory: Any):
    """``shared_oracles(name, tag, x=None)``: see :func:`_oracle_runs`; files of the 3 latest runs kept."""
    root = tmp_path_factory.mktemp("shared_oracles")
    yield _oracle_runs(root, keep=3)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def oracles(tmp_path_factory: Any):
    """``oracles(name, tag, x=None)``: as :func:`shared_oracles`, every run's files kept until the module ends."""
    root = tmp_path_factory.mktemp("oracles")
    yield _oracle_runs(root, keep=10**6)
    shutil.rmtree(root, ignore_errors=True)
