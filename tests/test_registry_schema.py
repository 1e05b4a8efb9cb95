"""Tests for registry files: validation errors (paddlehub_cls._registry_schema) and the extra files
named by $PADDLEHUB_CLS_REGISTRY that add to or override the packaged registry.

Every bad input kind must raise RegistryError naming the file, the model, the weight tag and the
field, with the value received.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from paddlehub_cls.errors import RegistryError, UnknownModelError
from paddlehub_cls.registry import ENV_REGISTRY, load_registry

# Counted from the packaged file itself, so that adding models (issue 11) does not break these tests.
_PACKAGED = Path(__file__).resolve().parents[1] / "registry.json"
N_PACKAGED = len(json.loads(_PACKAGED.read_text(encoding="utf-8"))["models"])
RESNET50_FLUID_URL = "http://paddle-imagenet-models-name.bj.bcebos.com/ResNet50_pretrained.tar"
RESNET50_PV_MD5 = "ca6f485ee1ab0492d38f323885b0ad80"  # paddle.vision resnet.py model_urls


@pytest.fixture(autouse=True)
def _no_user_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_REGISTRY, raising=False)


def _entry(**over: Any) -> dict[str, Any]:
    """A complete, valid private model entry."""
    entry = {
        "architecture": "resnet50",
        "family": "resnet",
        "num_classes": 10,
        "input_size": [3, 224, 224],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bilinear",
        "crop_pct": 0.9,
        "license": "proprietary",
        "default_weights": "site",
        "weights": {"site": _variant()},
    }
    entry.update(over)
    return entry


def _pre(**over: Any) -> dict[str, Any]:
    """A complete, valid ``preprocess`` object."""
    p = {
        "resize": "short",
        "resize_size": 256,
        "crop": 224,
        "interpolation": "bilinear",
        "backend": "cv2",
        "channel_order": "RGB",
        "scale": 1 / 255,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "source": "site config",
    }
    p.update(over)
    return p


def _variant(**over: Any) -> dict[str, Any]:
    v = {
        "urls": ["https://models.example.org/r50.pdparams"],
        "checksum": "sha256:" + "ab" * 32,
        "container": "pdparams",
        "layout": "native",
    }
    v.update(over)
    return v


def _use(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    monkeypatch.setenv(ENV_REGISTRY, os.pathsep.join(str(p) for p in paths))


def _write(path: Path, models: Any, version: Any = 1) -> Path:
    path.write_text(json.dumps({"schema_version": version, "models": models}), encoding="utf-8")
    return path


def test_extra_file_adds_a_private_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, _write(tmp_path / "site.json", {"MyNet": _entry()}))
    reg = load_registry()
    assert "MyNet" in reg.names() and len(reg) == N_PACKAGED + 1
    info, variant = reg.resolve("mynet.site")
    assert info.num_classes == 10 and variant.num_classes == 10
    assert variant.checksum == "sha256:" + "ab" * 32
    assert info.registry_files == (str(tmp_path / "site.json"),)


def test_extra_file_overrides_fields_of_a_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = "sha256:" + "0123456789abcdef" * 4
    mirror = "https://mirror.example.org/ResNet50_pretrained.tar"
    _use(
        monkeypatch,
        _write(
            tmp_path / "pin.json",
            {
                "resnet50": {
                    "weights": {
                        "fluid2019": {
                            "checksum": pinned.upper().replace("SHA256", "sha256"),
                            "urls": [mirror, RESNET50_FLUID_URL],
                        },
                        "paddleclas": None,
                    }
                },
            },
        ),
    )
    info = load_registry().get("ResNet50")
    fluid = info.variant("fluid2019")
    assert fluid.checksum == pinned  # normalised to lower case
    assert fluid.urls == (mirror, RESNET50_FLUID_URL)
    assert fluid.archive_root == "ResNet50_pretrained"  # untouched fields are kept
    assert list(info.weights) == ["fluid2019", "paddle_vision"]  # null removes a variant; order kept
    assert info.variant("paddle_vision").checksum == "md5:" + RESNET50_PV_MD5
    assert len(info.registry_files) == 2 and info.registry_files[1] == str(tmp_path / "pin.json")


def test_later_extra_file_wins_and_env_is_read_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write(tmp_path / "a.json", {"MyNet": _entry(num_classes=10)})
    second = _write(
        tmp_path / "b.json", {"MyNet": {"num_classes": 20, "weights": {"site": {"num_classes": 20}}}}
    )
    _use(monkeypatch, first, second)
    assert load_registry().get("MyNet").num_classes == 20
    _use(monkeypatch, first)
    assert load_registry().get("MyNet").num_classes == 10
    monkeypatch.delenv(ENV_REGISTRY)
    assert "MyNet" not in load_registry()


def test_parsed_files_are_cached_until_they_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "site.json", {"MyNet": _entry()})
    _use(monkeypatch, path)
    first = load_registry()
    assert load_registry() is first
    _write(path, {"MyNet": _entry(), "MyNet2": _entry()})  # new size: a new cache key
    second = load_registry()
    assert second is not first and "MyNet2" in second


def test_missing_extra_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, tmp_path / "nope.json")
    with pytest.raises(
        RegistryError,
        match=re.escape(f"{str(tmp_path / 'nope.json')!r}") + ".*does not exist.*" + ENV_REGISTRY,
    ):
        load_registry()


BAD_ENTRIES = [
    # (label, models object, regex the message must match)
    (
        "missing field",
        {"MyNet": {k: v for k, v in _entry().items() if k != "family"}},
        r"model 'MyNet', field 'family': is missing",
    ),
    (
        "wrong type",
        {"MyNet": _entry(num_classes="10")},
        r"model 'MyNet', field 'num_classes': must be a positive" r" integer; got '10'",
    ),
    ("bool as int", {"MyNet": _entry(num_classes=True)}, r"field 'num_classes'.*got True"),
    ("input size", {"MyNet": _entry(input_size=[3, 224])}, r"field 'input_size'"),
    ("mean length", {"MyNet": _entry(mean=[0.5, 0.5])}, r"field 'mean': must be 3 numbers"),
    ("interpolation", {"MyNet": _entry(interpolation="cubic")}, r"field 'interpolation'.*got 'cubic'"),
    ("crop", {"MyNet": _entry(crop_pct=1.5)}, r"field 'crop_pct'.*got 1.5"),
    (
        "unknown field",
        {"MyNet": _entry(weights={"site": _variant(checksumm="md5:" + "0" * 32)})},
        r"weights 'site', field 'checksumm': is not a known field",
    ),
    (
        "ftp url",
        {"MyNet": _entry(weights={"site": _variant(urls=["ftp://example.org/x.pdparams"])})},
        r"weights 'site', field 'urls': URL scheme 'ftp' is not allowed.*got 'ftp://example.org/x.pdparams'",
    ),
    (
        "relative url",
        {"MyNet": _entry(weights={"site": _variant(urls=["models/x.pdparams"])})},
        r"URL scheme '' is not allowed",
    ),
    (
        "url without host",
        {"MyNet": _entry(weights={"site": _variant(urls=["https:///x"])})},
        r"an http\(s\) URL needs a host",
    ),
    (
        "empty urls",
        {"MyNet": _entry(weights={"site": _variant(urls=[])})},
        r"field 'urls': must be a non-empty",
    ),
    (
        "short md5",
        {"MyNet": _entry(weights={"site": _variant(checksum="md5:" + "a" * 31)})},
        r"weights 'site', field 'checksum': must be 'md5:<32 hex digits>'.*got 'md5:a{31}'",
    ),
    (
        "sha1",
        {"MyNet": _entry(weights={"site": _variant(checksum="sha1:" + "a" * 40)})},
        r"field 'checksum'.*got 'sha1:",
    ),
    ("bare hex", {"MyNet": _entry(weights={"site": _variant(checksum="a" * 32)})}, r"field 'checksum'"),
    (
        "null checksum without note",
        {"MyNet": _entry(weights={"site": _variant(checksum=None)})},
        r"weights 'site', field 'checksum_note': must say why no checksum",
    ),
    (
        "checksum key absent",
        {"MyNet": _entry(weights={"site": {k: v for k, v in _variant().items() if k != "checksum"}})},
        r"field 'checksum': is missing",
    ),
    (
        "unknown container",
        {"MyNet": _entry(weights={"site": _variant(container="pickle")})},
        r"weights 'site', field 'container': must be one of .*got 'pickle'",
    ),
    (
        "unknown layout",
        {"MyNet": _entry(weights={"site": _variant(layout="torchvision")})},
        r"weights 'site', field 'layout': must be one of .*got 'torchvision'",
    ),
    (
        "archive without root",
        {"MyNet": _entry(weights={"site": _variant(container="fluid-tar")})},
        r"field 'archive_root': is required for a fluid-tar container",
    ),
    (
        "root escaping",
        {"MyNet": _entry(weights={"site": _variant(container="fluid-zip", archive_root="../x")})},
        r"field 'archive_root': must be a relative path",
    ),
    (
        "root on a file",
        {"MyNet": _entry(weights={"site": _variant(archive_root="x")})},
        r"field 'archive_root': only applies to archives",
    ),
    (
        "metrics swapped",
        {"MyNet": _entry(weights={"site": _variant(metrics={"top1": 90, "top5": 70, "source": "s"})})},
        r"field 'metrics': top5 must not be below top1",
    ),
    (
        "metrics without source",
        {"MyNet": _entry(weights={"site": _variant(metrics={"top1": 70, "top5": 90})})},
        r"field 'metrics.source'",
    ),
    (
        "default not a tag",
        {"MyNet": _entry(default_weights="other")},
        r"model 'MyNet', field 'default_weights': must be one of the model's weight tags \(site\); "
        r"got 'other'",
    ),
    ("default without weights", {"MyNet": _entry(weights={})}, r"field 'default_weights': must be null"),
    (
        "dotted tag",
        {"MyNet": _entry(weights={"a.b": _variant()}, default_weights="a.b")},
        r"tag 'a.b' is not",
    ),
    (
        "tags differing in case",
        {"MyNet": _entry(weights={"site": _variant(), "SITE": _variant()})},
        r"tags 'site' and 'SITE' differ only in case",
    ),
    (
        "names differing in case",
        {"MyNet": _entry(), "mynet": _entry()},
        r"models 'MyNet' and 'mynet' differ only",
    ),
    ("dotted name", {"My.Net": _entry()}, r"model name 'My.Net' is not allowed"),
    ("entry not object", {"MyNet": [1]}, r"model 'MyNet' must be a JSON object, got an array"),
    (
        "bad kwarg name",
        {"MyNet": _entry(arch_kwargs={"not valid": 1})},
        r"field 'arch_kwargs': key 'not valid'",
    ),
    ("paper url", {"MyNet": _entry(paper={"title": "t", "url": "arxiv 1512"})}, r"field 'paper.url'"),
    ("preprocess not object", {"MyNet": _entry(preprocess=[256])}, r"field 'preprocess': must be an object"),
    (
        "preprocess missing field",
        {"MyNet": _entry(preprocess={k: v for k, v in _pre().items() if k != "backend"})},
        r"model 'MyNet', field 'preprocess.backend': is missing",
    ),
    (
        "preprocess unknown field",
        {"MyNet": _entry(preprocess=_pre(antialias=True))},
        r"field 'preprocess.antialias': is not a known field",
    ),
    (
        "preprocess backend",
        {"MyNet": _entry(preprocess=_pre(backend="skimage"))},
        r"'preprocess.backend'.*'skimage'",
    ),
    (
        "preprocess order",
        {"MyNet": _entry(preprocess=_pre(channel_order="rgb"))},
        r"'preprocess.channel_order'",
    ),
    ("preprocess resize", {"MyNet": _entry(preprocess=_pre(resize="fit"))}, r"'preprocess.resize'.*'fit'"),
    ("preprocess size", {"MyNet": _entry(preprocess=_pre(resize_size=256.0))}, r"'preprocess.resize_size'"),
    ("preprocess crop too big", {"MyNet": _entry(preprocess=_pre(crop=300))}, r"'preprocess.crop'.*exceed"),
    (
        "preprocess squash crops",
        {"MyNet": _entry(preprocess=_pre(resize="squash", resize_size=384, crop=380))},
        r"'preprocess.crop'.*squash",
    ),
    ("preprocess scale", {"MyNet": _entry(preprocess=_pre(scale=0))}, r"'preprocess.scale'"),
    ("preprocess std", {"MyNet": _entry(preprocess=_pre(std=[0.5, 0.0, 0.5]))}, r"'preprocess.std'"),
    ("preprocess mean", {"MyNet": _entry(preprocess=_pre(mean=[0.5, 0.5]))}, r"'preprocess.mean'"),
    (
        "preprocess export source",
        {"MyNet": _entry(preprocess=_pre(export={"source": "x"}))},
        r"'preprocess.export.source': is not a known field",
    ),
    (
        "preprocess export value",
        {"MyNet": _entry(preprocess=_pre(export={"backend": "gl"}))},
        r"'preprocess.export.backend'",
    ),
    (
        "variant preprocess",
        {"MyNet": _entry(weights={"site": _variant(preprocess=_pre(source=""))})},
        r"weights 'site', field 'preprocess.source'",
    ),
    (
        "override breaks packaged",
        {"ResNet50": {"weights": {"fluid2019": {"layout": "bogus"}}}},
        r"model 'ResNet50', weights 'fluid2019', field 'layout'",
    ),
]


@pytest.mark.parametrize("label, models, pattern", BAD_ENTRIES, ids=[b[0] for b in BAD_ENTRIES])
def test_invalid_entries_are_rejected_naming_model_tag_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, models: Any, pattern: str
) -> None:
    path = _write(tmp_path / "bad.json", models)
    _use(monkeypatch, path)
    with pytest.raises(RegistryError, match=pattern) as exc:
        load_registry()
    assert isinstance(exc.value, ValueError)
    assert str(path) in str(exc.value), f"{label}: the message must name the file"


def test_duplicate_json_keys_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = json.dumps(_entry())
    path = tmp_path / "dup.json"
    path.write_text('{"schema_version": 1, "models": {"MyNet": %s, "MyNet": %s}}' % (entry, entry))
    _use(monkeypatch, path)
    with pytest.raises(RegistryError, match=r"dup.json: key 'MyNet' appears twice in the same JSON object"):
        load_registry()
    path.write_text(
        '{"schema_version": 1, "models": {"MyNet": %s}}'
        % entry.replace('"layout": "native"', '"layout": "native", "layout": "paddle_vision"')
    )
    with pytest.raises(RegistryError, match=r"key 'layout' appears twice"):
        load_registry()


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("{not json", r"is not valid JSON: .* at line 1 column 2"),
        ('{"schema_version": 1, "models": {"MyNet": {"crop_pct": NaN}}}', r"NaN is not allowed"),
        ("[]", r"the top level must be a JSON object, got an array"),
        ('{"models": {}}', r"field 'schema_version' is missing"),
        ('{"schema_version": 2, "models": {}}', r"schema_version 2 is not supported"),
        ('{"schema_version": 1, "models": []}', r"field 'models' must be an object"),
        ('{"schema_version": 1, "models": {}, "model": {}}', r"unknown top-level field\(s\) 'model'"),
    ],
)
def test_malformed_files_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, pattern: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    _use(monkeypatch, path)
    with pytest.raises(RegistryError, match=pattern):
        load_registry()


def test_preprocess_of_a_variant_replaces_the_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = _pre(backend="pil", interpolation="bicubic", export={"resize_size": 232})
    entry = _entry(
        preprocess=_pre(),
        weights={"site": _variant(), "other": _variant(preprocess=own)},
    )
    _use(monkeypatch, _write(tmp_path / "pre.json", {"MyNet": entry}))
    info = load_registry().get("MyNet")
    assert info.preprocess_for() == _pre()
    assert info.preprocess_for("site") == _pre()
    assert info.preprocess_for("other") == own
    assert info.to_dict()["weights"]["other"]["preprocess"]["export"] == {"resize_size": 232}
    bare = _entry(weights={"site": _variant()})
    _use(monkeypatch, _write(tmp_path / "bare.json", {"MyNet": bare}))
    assert load_registry().get("MyNet").preprocess_for() is None


def test_top5_may_be_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _entry(weights={"site": _variant(metrics={"top1": 79.2, "source": "doc"})})
    _use(monkeypatch, _write(tmp_path / "m.json", {"MyNet": entry}))
    assert load_registry().get("MyNet").variant().metrics == {"top1": 79.2, "source": "doc"}


def test_model_without_weights_is_listed_as_not_pretrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, _write(tmp_path / "arch.json", {"BareNet": _entry(weights={}, default_weights=None)}))
    reg = load_registry()
    assert reg.find(pretrained=False) == ["BareNet"] and "BareNet" not in reg.find(pretrained=True)
    assert reg.get("BareNet").build_kwargs() == {}
    with pytest.raises(UnknownModelError, match="'BareNet' has no pretrained weights"):
        reg.resolve("BareNet")
