"""Tests for registry.json and paddlehub_cls.registry.

The schema test walks every packaged entry (torchvision's ``test_schema_meta_validation`` is the
model) and names the entry and field that break a rule. Expected URLs and checksums are copied
from the published sources (paddle.vision ``model_urls``, the PaddlePaddle/models README,
PaddleClas ``MODEL_URLS``), independently of the registry file.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from paddlehub_cls import registry as registry_mod
from paddlehub_cls.errors import PaddleHubClsError, UnknownModelError
from paddlehub_cls.registry import ENV_REGISTRY, load_registry

ROOT = Path(__file__).resolve().parents[1]
RAW = json.loads((ROOT / "registry.json").read_text(encoding="utf-8"))

MODELS = [
    "MobileNetV1",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "SE_ResNeXt50_32x4d",
    "SE_ResNeXt101_32x4d",
    "VGG11",
    "VGG13",
    "VGG16",
    "VGG19",
    "GoogLeNet",
    "MobileNetV2",
    "ShuffleNetV2",
    "ShuffleNetV2_swish",
]
# SSLD files PaddleClas publishes for seed models: the paddleclas URL with _ssld_pretrained.
SSLD = {"MobileNetV1", "MobileNetV2"}
ARCH = {
    "MobileNetV1": ("mobilenet_v1", "mobilenet_v1"),
    "ResNet18": ("resnet18", "resnet"),
    "ResNet34": ("resnet34", "resnet"),
    "ResNet50": ("resnet50", "resnet"),
    "ResNet101": ("resnet101", "resnet"),
    "ResNet152": ("resnet152", "resnet"),
    "SE_ResNeXt50_32x4d": ("se_resnext50_32x4d", "se_resnext"),
    "SE_ResNeXt101_32x4d": ("se_resnext101_32x4d", "se_resnext"),
    "VGG11": ("vgg11", "vgg"),
    "VGG13": ("vgg13", "vgg"),
    "VGG16": ("vgg16", "vgg"),
    "VGG19": ("vgg19", "vgg"),
    "GoogLeNet": ("googlenet", "googlenet"),
    "MobileNetV2": ("mobilenet_v2", "mobilenet_v2"),
    "ShuffleNetV2": ("shufflenet_v2_x1_0", "shufflenet_v2"),
    "ShuffleNetV2_swish": ("shufflenet_v2_swish", "shufflenet_v2"),
}

# paddle.vision model_urls (python/paddle/vision/models/*.py): URL and md5 as published.
PADDLE_VISION = {
    "ResNet18": (
        "https://paddle-hapi.bj.bcebos.com/models/resnet18.pdparams",
        "cf548f46534aa3560945be4b95cd11c4",
    ),
    "ResNet34": (
        "https://paddle-hapi.bj.bcebos.com/models/resnet34.pdparams",
        "8d2275cf8706028345f78ac0e1d31969",
    ),
    "ResNet50": (
        "https://paddle-hapi.bj.bcebos.com/models/resnet50.pdparams",
        "ca6f485ee1ab0492d38f323885b0ad80",
    ),
    "ResNet101": (
        "https://paddle-hapi.bj.bcebos.com/models/resnet101.pdparams",
        "02f35f034ca3858e1e54d4036443c92d",
    ),
    "ResNet152": (
        "https://paddle-hapi.bj.bcebos.com/models/resnet152.pdparams",
        "7ad16a2f1e7333859ff986138630fd7a",
    ),
    "VGG16": ("https://paddle-hapi.bj.bcebos.com/models/vgg16.pdparams", "89bbffc0f87d260be9b8cdc169c991c4"),
    "VGG19": ("https://paddle-hapi.bj.bcebos.com/models/vgg19.pdparams", "23b18bb13d8894f60f54e642be79a0dd"),
    "MobileNetV1": (
        "https://paddle-hapi.bj.bcebos.com/models/mobilenetv1_1.0.pdparams",
        "3033ab1975b1670bef51545feb65fc45",
    ),
    "MobileNetV2": (
        "https://paddle-hapi.bj.bcebos.com/models/mobilenet_v2_x1.0.pdparams",
        "0340af0a901346c8d46f4529882fb63d",
    ),
    "ShuffleNetV2": (
        "https://paddle-hapi.bj.bcebos.com/models/shufflenet_v2_x1_0.pdparams",
        "122d42478b9e81eb49f8a9ede327b1a4",
    ),
    "ShuffleNetV2_swish": (
        "https://paddle-hapi.bj.bcebos.com/models/shufflenet_v2_swish.pdparams",
        "adde0aa3b023e5b0c94a68be1c394b84",
    ),
    "GoogLeNet": (
        "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/GoogLeNet_pretrained.pdparams",
        "80c06f038e905c53ab32c40eca6e26ae",
    ),
}
# The only md5 published for a PaddleClas dygraph file among these models (by paddle.vision).
PADDLECLAS_MD5 = {"GoogLeNet": "80c06f038e905c53ab32c40eca6e26ae"}

_B = "paddle-imagenet-models-name.bj.bcebos.com"
# PaddlePaddle/models image_classification README after the 2019-05-14 rename (models@83c1f63),
# http/https exactly as written there.
FLUID2019_URLS = {
    "MobileNetV1": f"http://{_B}/MobileNetV1_pretrained.tar",
    "ResNet18": f"https://{_B}/ResNet18_pretrained.tar",
    "ResNet34": f"https://{_B}/ResNet34_pretrained.tar",
    "ResNet50": f"http://{_B}/ResNet50_pretrained.tar",
    "ResNet101": f"http://{_B}/ResNet101_pretrained.tar",
    "ResNet152": f"https://{_B}/ResNet152_pretrained.tar",
    "SE_ResNeXt50_32x4d": f"https://{_B}/SE_ResNeXt50_32x4d_pretrained.tar",
    "SE_ResNeXt101_32x4d": f"https://{_B}/SE_ResNeXt101_32x4d_pretrained.tar",
    "VGG11": f"https://{_B}/VGG11_pretrained.tar",
    "VGG13": f"https://{_B}/VGG13_pretrained.tar",
    "VGG16": f"https://{_B}/VGG16_pretrained.tar",
    "VGG19": f"https://{_B}/VGG19_pretrained.tar",
    "GoogLeNet": f"https://{_B}/GoogleNet_pretrained.tar",
    "MobileNetV2": f"https://{_B}/MobileNetV2_pretrained.tar",
    "ShuffleNetV2": f"https://{_B}/ShuffleNetV2_pretrained.tar",
    "ShuffleNetV2_swish": f"https://{_B}/ShuffleNetV2_swish_pretrained.tar",
}
# PaddleClas MODEL_URLS (legendary_models/ for ResNet, VGG, MobileNetV1; model_zoo/ otherwise).
PADDLECLAS_URLS = {
    **{
        n: f"https://{_B}/dygraph/legendary_models/{n}_pretrained.pdparams"
        for n in [
            "MobileNetV1",
            "ResNet18",
            "ResNet34",
            "ResNet50",
            "ResNet101",
            "ResNet152",
            "VGG11",
            "VGG13",
            "VGG16",
            "VGG19",
        ]
    },
    "SE_ResNeXt50_32x4d": f"https://{_B}/dygraph/SE_ResNeXt50_32x4d_pretrained.pdparams",
    "SE_ResNeXt101_32x4d": f"https://{_B}/dygraph/SE_ResNeXt101_32x4d_pretrained.pdparams",
    "GoogLeNet": f"https://{_B}/dygraph/GoogLeNet_pretrained.pdparams",
    "MobileNetV2": f"https://{_B}/dygraph/MobileNetV2_pretrained.pdparams",
    "ShuffleNetV2": f"https://{_B}/dygraph/ShuffleNetV2_x1_0_pretrained.pdparams",
    "ShuffleNetV2_swish": f"https://{_B}/dygraph/ShuffleNetV2_swish_pretrained.pdparams",
}

# Builder kwargs each (model, variant) graph needs; see docs/registry.md for the source lines.
_DOWN, _UP = "downscale_in_infer", "upscale_in_train"
EXPECTED_KWARGS = {
    ("ResNet18", "fluid2019"): {"first_block_projection": True},
    ("ResNet18", "paddleclas"): {"first_block_projection": True},
    ("ResNet18", "paddle_vision"): {"first_block_projection": False},
    ("ResNet34", "fluid2019"): {"first_block_projection": True},
    ("ResNet34", "paddleclas"): {"first_block_projection": True},
    ("ResNet34", "paddle_vision"): {"first_block_projection": False},
    ("MobileNetV2", "fluid2019"): {"expand_first_block": True},
    ("MobileNetV2", "paddleclas"): {"expand_first_block": True},
    ("MobileNetV2", "paddleclas_ssld"): {"expand_first_block": True},
    ("MobileNetV2", "paddle_vision"): {"expand_first_block": False},
    **{(f"SE_ResNeXt{d}_32x4d", "fluid2019"): {"dropout": 0.5, "dropout_mode": _DOWN} for d in (50, 101)},
    **{(f"SE_ResNeXt{d}_32x4d", "paddleclas"): {"dropout": 0.0} for d in (50, 101)},
    **{(f"VGG{d}", "fluid2019"): {"conv_bias": True, "dropout_mode": _DOWN} for d in (11, 13, 16, 19)},
    **{(f"VGG{d}", "paddleclas"): {"conv_bias": False, "dropout_mode": _DOWN} for d in (11, 13, 16, 19)},
    **{(f"VGG{d}", "paddle_vision"): {"conv_bias": True, "dropout_mode": _UP} for d in (16, 19)},
    **{("GoogLeNet", t): {"dropout_mode": _DOWN} for t in ("fluid2019", "paddleclas", "paddle_vision")},
}

MODEL_FIELDS = {
    "architecture",
    "family",
    "arch_kwargs",
    "num_classes",
    "input_size",
    "mean",
    "std",
    "interpolation",
    "crop_pct",
    "preprocess_source",
    "preprocess",
    "num_params",
    "flops",
    "paper",
    "license",
    "default_weights",
    "weights",
}
VARIANT_FIELDS = {
    "urls",
    "checksum",
    "checksum_note",
    "size",
    "container",
    "layout",
    "archive_root",
    "num_classes",
    "arch_kwargs",
    "metrics",
    "source",
}
VARIANT_OPTIONAL = {"note", "preprocess"}


@pytest.fixture(autouse=True)
def _no_user_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_REGISTRY, raising=False)


def _problems_of(name: str, entry: dict[str, Any]) -> list[str]:
    """Every way a packaged entry breaks the project's rules, as 'Model.field: problem'."""
    out: list[str] = []
    missing = MODEL_FIELDS - set(entry)
    extra = set(entry) - MODEL_FIELDS
    out += [f"{name}.{f}: mandatory field missing" for f in sorted(missing)]
    out += [f"{name}.{f}: field not permitted" for f in sorted(extra)]
    arch, family = ARCH[name]
    checks = {
        "architecture": entry.get("architecture") == arch,
        "family": entry.get("family") == family,
        "num_classes": entry.get("num_classes") == 1000,
        "input_size": entry.get("input_size") == [3, 224, 224],
        "mean": entry.get("mean") == [0.485, 0.456, 0.406],
        "std": entry.get("std") == [0.229, 0.224, 0.225],
        "interpolation": entry.get("interpolation") == "lanczos",
        "crop_pct": entry.get("crop_pct") == 0.875,
        "preprocess_source": "LANCZOS" in str(entry.get("preprocess_source")),
        # PaddleClas's eval config: cv2 bilinear, short side 256, crop 224 (the fluid2019 files override it).
        "preprocess": (entry.get("preprocess") or {}).get("backend") == "cv2"
        and "ppcls/configs/ImageNet/" in str((entry.get("preprocess") or {}).get("source")),
        "license": entry.get("license") == "Apache-2.0",
    }
    out += [f"{name}.{f}: unexpected value {entry.get(f)!r}" for f, ok in checks.items() if not ok]
    for f in ("num_params", "flops"):
        rec = entry.get(f) or {}
        if not (type(rec.get("value")) is int and rec["value"] > 0 and rec.get("source")):
            out.append(f"{name}.{f}: needs a positive integer value and a source, got {rec!r}")
    paper = entry.get("paper") or {}
    if not (paper.get("title") and str(paper.get("url", "")).startswith("https://arxiv.org/abs/")):
        out.append(f"{name}.paper: needs a title and an arxiv URL, got {paper!r}")
    weights = entry.get("weights") or {}
    for tag, v in weights.items():
        where = f"{name}.weights.{tag}"
        out += [f"{where}.{f}: mandatory field missing" for f in sorted(VARIANT_FIELDS - set(v))]
        out += [
            f"{where}.{f}: field not permitted" for f in sorted(set(v) - VARIANT_FIELDS - VARIANT_OPTIONAL)
        ]
        if v.get("checksum") is None and not v.get("checksum_note"):
            out.append(f"{where}: neither checksum nor checksum_note")
        if not v.get("source"):
            out.append(f"{where}.source: empty")
        own = v.get("preprocess")
        if tag == "fluid2019" and not (own and (own["backend"], own["interpolation"]) == ("pil", "lanczos")):
            out.append(f"{where}.preprocess: the 2019 reader is PIL lanczos, got {own!r}")
        if tag == "paddle_vision" and not (own and own.get("note")):
            out.append(f"{where}.preprocess: paddle.vision documents none; a note must say what was assumed")
        if v.get("num_classes") != 1000:
            out.append(f"{where}.num_classes: {v.get('num_classes')!r}")
        m = v.get("metrics")
        # PaddleClas's README gives top-1 only for its SSLD files.
        need_top5 = tag != "paddleclas_ssld"
        has_top5 = bool(m and m.get("top5")) or not need_top5
        if tag != "paddle_vision" and not (m and m.get("source") and m.get("top1") and has_top5):
            out.append(f"{where}.metrics: top1, top5 and source required, got {m!r}")
        if EXPECTED_KWARGS.get((name, tag), {}) != {
            **entry.get("arch_kwargs", {}),
            **v.get("arch_kwargs", {}),
        }:
            out.append(f"{where}.arch_kwargs: {v.get('arch_kwargs')!r} (model: {entry.get('arch_kwargs')!r})")
    return out


@pytest.mark.parametrize("name", MODELS)
def test_schema_meta_validation(name: str) -> None:
    assert name in RAW["models"], f"{name}: missing from registry.json"
    problems = _problems_of(name, RAW["models"][name])
    assert not problems, "\n".join(problems)


def test_registry_holds_the_release_models_and_zoo_families_with_their_own_tests() -> None:
    assert RAW["schema_version"] == 1
    assert set(MODELS) <= set(RAW["models"])
    # The models beyond the seed release come from the PaddleClas zoo (issue 11): the checks above
    # are the seed's; each zoo family's entries are checked by a tests/test_models_*.py file that
    # names the family (its fidelity cases run over every registry variant of the family).
    family_tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_models_*.py"))
    for name in sorted(set(RAW["models"]) - set(MODELS)):
        family = RAW["models"][name]["family"]
        assert f'"{family}"' in family_tests, f"{name}: no tests/test_models_*.py names family {family!r}"
    assert load_registry().names() == sorted(RAW["models"], key=registry_mod._natural_key)


@pytest.mark.parametrize("name", MODELS)
def test_weight_variants_match_published_sources(name: str) -> None:
    weights = RAW["models"][name]["weights"]
    expected_tags = {"fluid2019", "paddleclas"} | ({"paddle_vision"} if name in PADDLE_VISION else set())
    expected_tags |= {"paddleclas_ssld"} if name in SSLD else set()
    assert set(weights) == expected_tags, f"{name}.weights: tags {sorted(weights)}"
    if name in SSLD:
        ssld = weights["paddleclas_ssld"]
        assert ssld["urls"] == [PADDLECLAS_URLS[name].replace("_pretrained.", "_ssld_pretrained.")]
        assert (ssld["layout"], ssld["arch_kwargs"], ssld["checksum"]) == (
            weights["paddleclas"]["layout"],
            weights["paddleclas"]["arch_kwargs"],
            None,
        )

    fluid = weights["fluid2019"]
    assert fluid["urls"] == [FLUID2019_URLS[name]], f"{name}.weights.fluid2019.urls"
    assert (fluid["container"], fluid["layout"], fluid["checksum"]) == ("fluid-tar", "fluid2019", None)
    assert fluid["archive_root"] == FLUID2019_URLS[name].rsplit("/", 1)[1][: -len(".tar")]

    clas = weights["paddleclas"]
    assert clas["urls"] == [PADDLECLAS_URLS[name]], f"{name}.weights.paddleclas.urls"
    legendary = ARCH[name][1] in ("resnet", "vgg", "mobilenet_v1")
    assert clas["layout"] == ("paddleclas_legendary" if legendary else "paddleclas_model_zoo")
    assert clas["container"] == "pdparams" and clas["archive_root"] is None
    expected_md5 = PADDLECLAS_MD5.get(name)
    assert clas["checksum"] == (f"md5:{expected_md5}" if expected_md5 else None), f"{name}.weights.paddleclas"

    if name in PADDLE_VISION:
        url, md5 = PADDLE_VISION[name]
        pv = weights["paddle_vision"]
        assert pv["urls"] == [url], f"{name}.weights.paddle_vision.urls"
        assert pv["checksum"] == f"md5:{md5}", f"{name}.weights.paddle_vision.checksum"
        assert (pv["container"], pv["layout"]) == ("pdparams", "paddle_vision")


@pytest.mark.parametrize("name", MODELS)
def test_default_weights_prefer_a_checksummed_variant(name: str) -> None:
    entry = RAW["models"][name]
    pinned = [t for t, v in entry["weights"].items() if v["checksum"]]
    default = entry["default_weights"]
    if pinned:
        assert default in pinned, f"{name}.default_weights={default!r}, checksummed: {pinned}"
    else:
        assert default == "paddleclas", f"{name}.default_weights={default!r}"


def test_loaded_entries_match_the_json() -> None:
    reg = load_registry()
    for name in MODELS:
        info = reg.get(name)
        raw = RAW["models"][name]
        assert info.name == name
        assert info.architecture == raw["architecture"]
        assert info.input_size == tuple(raw["input_size"])
        assert info.default_weights == raw["default_weights"]
        for tag, v in raw["weights"].items():
            got = info.weights[tag]
            assert got.tag == tag and got.urls == tuple(v["urls"]) and got.checksum == v["checksum"]
            assert dict(got.arch_kwargs) == v["arch_kwargs"]
        assert json.loads(json.dumps(info.to_dict()))["weights"].keys() == raw["weights"].keys()


def test_every_architecture_and_layout_is_implemented() -> None:
    """Each registry architecture is a registered builder that accepts the variant's kwargs,
    and each (family, layout) has a name map (timm checks configs against models the same way)."""
    from paddlehub_cls.layouts import layouts_for
    from paddlehub_cls.models import get_builder

    problems = []
    for name in MODELS:
        info = load_registry().get(name)
        builder = get_builder(info.architecture)
        accepted = _accepted_kwargs(builder)
        for tag in info.weights:
            unknown = set(info.build_kwargs(tag)) - accepted
            if unknown:
                problems.append(f"{name}.{tag}: {info.architecture} does not accept {sorted(unknown)}")
            if info.weights[tag].layout not in layouts_for(info.family):
                problems.append(
                    f"{name}.{tag}: no layout {info.weights[tag].layout!r} for family {info.family!r}"
                )
    assert not problems, "\n".join(problems)


def _accepted_kwargs(fn: Any) -> set[str]:
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)

    def named(f: Any) -> set[str]:
        return {p for p, v in inspect.signature(f).parameters.items() if v.kind not in variadic} - {"self"}

    names = named(fn)
    if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in inspect.signature(fn).parameters.values()):
        # A builder forwarding **kwargs: what our network classes accept counts (not paddle's Layer).
        cls = typing.get_type_hints(fn).get("return")
        for klass in getattr(cls, "__mro__", ()):
            if klass.__module__.startswith("paddlehub_cls") and "__init__" in vars(klass):
                names |= named(klass.__init__)
    return names


def test_the_2019_archives_record_why_no_checksum() -> None:
    for name in MODELS:
        note = RAW["models"][name]["weights"]["fluid2019"]["checksum_note"]
        assert "no checksum" in note, f"{name}.weights.fluid2019.checksum_note: {note!r}"


# ------------------------------------------------------------------------------------------
# Lookup


def test_lookup_is_case_insensitive_and_returns_release_spelling() -> None:
    reg = load_registry()
    assert reg.get("resnet50").name == "ResNet50"
    assert reg.get("SE_RESNEXT50_32X4D").name == "SE_ResNeXt50_32x4d"
    assert "googlenet" in reg and "GoogleNet" in reg and "LeNet" not in reg


@pytest.mark.parametrize(
    "typo, suggested",
    [
        ("ResNet5", "ResNet50"),
        ("resnet05", "ResNet50"),
        ("mobilenetv3", "MobileNetV1"),
        ("VGG17", "VGG19"),
        ("shufflenet", "ShuffleNetV2"),
    ],
)
def test_unknown_name_lists_close_names(typo: str, suggested: str) -> None:
    with pytest.raises(UnknownModelError) as exc:
        load_registry().get(typo)
    assert isinstance(exc.value, LookupError) and isinstance(exc.value, PaddleHubClsError)
    msg = str(exc.value)
    assert repr(typo) in msg and "Did you mean" in msg and suggested in msg
    assert "paddlehub-cls list" in msg


def test_unknown_name_with_nothing_close_still_says_how_to_list() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'zzzz'\. Run `paddlehub-cls list`"):
        load_registry().get("zzzz")


def test_resolve_name_dot_tag_and_default() -> None:
    reg = load_registry()
    info, variant = reg.resolve("ResNet50.fluid2019")
    assert (info.name, variant.tag) == ("ResNet50", "fluid2019")
    info, variant = reg.resolve("resnet50.FLUID2019")
    assert (info.name, variant.tag) == ("ResNet50", "fluid2019")
    assert reg.resolve("ResNet50")[1].tag == RAW["models"]["ResNet50"]["default_weights"]
    assert reg.resolve("ResNet50", "paddleclas")[1].tag == "paddleclas"
    assert reg.resolve("ResNet50.paddleclas", "paddleclas")[1].tag == "paddleclas"


def test_resolve_rejects_conflicting_and_unknown_tags() -> None:
    reg = load_registry()
    with pytest.raises(
        ValueError, match="'ResNet50.fluid2019' names weights 'fluid2019' but weights='paddleclas'"
    ):
        reg.resolve("ResNet50.fluid2019", "paddleclas")
    with pytest.raises(
        UnknownModelError, match=r"no weights 'fluid'\. Did you mean 'fluid2019'\? Available: "
    ):
        reg.resolve("ResNet50.fluid")
    with pytest.raises(UnknownModelError, match="'VGG11' has no weights 'paddle_vision'"):
        reg.resolve("VGG11", "paddle_vision")
    with pytest.raises(UnknownModelError, match="unknown model 'ResNet49'"):
        reg.resolve("ResNet49.fluid2019")


def test_find_uses_case_insensitive_fnmatch() -> None:
    reg = load_registry()
    assert reg.find("resnet?[0-9]") == ["ResNet18", "ResNet34", "ResNet50"]
    assert reg.find("resnet1[0-9][0-9]") == ["ResNet101", "ResNet152"]
    assert reg.find("*SE_RESNEXT*[0-9]_32x4d") == ["SE_ResNeXt50_32x4d", "SE_ResNeXt101_32x4d"]
    assert reg.find("shufflenetv2?swish") == ["ShuffleNetV2_swish"]
    assert reg.find("nothing*") == []
    assert reg.find(pretrained=True) == reg.names() and reg.find(pretrained=False) == []


def test_build_kwargs_merge_model_and_variant() -> None:
    reg = load_registry()
    assert reg.get("MobileNetV2").build_kwargs("fluid2019") == {"expand_first_block": True}
    assert reg.get("MobileNetV2").build_kwargs("paddle_vision") == {"expand_first_block": False}
    assert reg.get("GoogLeNet").build_kwargs() == {"dropout_mode": "downscale_in_infer"}


def test_entries_are_immutable_and_hashable() -> None:
    info = load_registry().get("VGG16")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.weights["fluid2019"].arch_kwargs["conv_bias"] = False  # type: ignore[index]
    assert hash(info) == hash(load_registry().get("vgg16"))


def test_checksum_parts() -> None:
    v = load_registry().get("ResNet50").variant("paddle_vision")
    assert (v.checksum_algo, v.checksum_hex) == ("md5", "ca6f485ee1ab0492d38f323885b0ad80")
    fluid = load_registry().get("ResNet50").variant("fluid2019")
    assert (fluid.checksum_algo, fluid.checksum_hex, fluid.is_archive) == (None, None, True)


def test_registry_module_does_not_import_paddle() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from paddlehub_cls.registry import load_registry; load_registry().resolve('ResNet50'); "
        "print(sorted(m for m in sys.modules if m == 'paddle' or m.startswith('paddle.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_sources_cite_what_users_can_read() -> None:
    # The design notes the project was built from are not shipped: a source must name the
    # primary document (repository, path, commit) itself.
    text = (ROOT / "registry.json").read_text(encoding="utf-8")
    for private in ("WEIGHTS_FACTS", "ZOO_FACTS", "../shared"):
        assert private not in text, f"registry.json cites {private}"
