"""Schema of ``registry.json``: parsing, validation and merging of raw entries.

Kept apart from :mod:`paddlehub_cls.registry` (lookup and dataclasses) so each file stays small.
Every error is a :class:`~paddlehub_cls.errors.RegistryError` naming the registry file(s), the
model, the weight tag and the field, the value received and how to fix it. ``docs/registry.md``
describes the same schema for people.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, NoReturn, Optional
from urllib.parse import urlsplit

from paddlehub_cls.errors import RegistryError

SCHEMA_VERSION = 1

CONTAINERS = frozenset({"pdparams", "fluid-tar", "fluid-zip", "safetensors"})
ARCHIVE_CONTAINERS = frozenset({"fluid-tar", "fluid-zip"})
LAYOUTS = frozenset({"fluid2019", "paddleclas_legendary", "paddleclas_model_zoo", "paddle_vision", "native"})
INTERPOLATIONS = frozenset({"bilinear", "bicubic", "lanczos", "nearest"})
URL_SCHEMES = ("http", "https", "file")

DOCUMENT_FIELDS = frozenset({"schema_version", "models"})
MODEL_REQUIRED = frozenset(
    {
        "architecture",
        "family",
        "num_classes",
        "input_size",
        "mean",
        "std",
        "interpolation",
        "crop_pct",
        "license",
        "weights",
    }
)
MODEL_OPTIONAL = frozenset(
    {"arch_kwargs", "num_params", "flops", "paper", "default_weights", "preprocess_source", "preprocess"}
)
VARIANT_REQUIRED = frozenset({"urls", "checksum", "container", "layout"})
VARIANT_OPTIONAL = frozenset(
    {
        "checksum_note",
        "size",
        "archive_root",
        "num_classes",
        "arch_kwargs",
        "metrics",
        "source",
        "note",
        "preprocess",
    }
)
# The ``preprocess`` object: what the weights' own eval pipeline does (PaddleClas's DecodeImage,
# ResizeImage, CropImage and NormalizeImage operators, or the 2019 reader), field by field.
PREPROCESS_RESIZE = frozenset({"short", "squash"})
PREPROCESS_INTERPOLATIONS = frozenset({"bilinear", "bicubic", "lanczos", "nearest", "area"})
PREPROCESS_BACKENDS = frozenset({"cv2", "pil"})
PREPROCESS_CHANNEL_ORDERS = frozenset({"RGB", "BGR"})
PREPROCESS_REQUIRED = frozenset(
    {
        "resize",
        "resize_size",
        "crop",
        "interpolation",
        "backend",
        "channel_order",
        "scale",
        "mean",
        "std",
        "source",
    }
)
PREPROCESS_OPTIONAL = frozenset({"note", "export"})

# '.' is excluded from names and tags: "ResNet50.fluid2019" must split unambiguously.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_CHECKSUM_RE = re.compile(r"^(md5:[0-9a-fA-F]{32}|sha256:[0-9a-fA-F]{64})$")
_MISSING = object()
# A registry document is a few levels deep (document, models, model, weights, variant, metrics);
# anything far deeper is not a registry, and would only exhaust the validators' recursion.
MAX_DEPTH = 32
_DOCS = "see docs/registry.md"


class _DuplicateKey(Exception):
    def __init__(self, key: str, keys: list[str]) -> None:
        super().__init__(key)
        self.key = key
        self.keys = keys


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys silently; in a registry that hides a real mistake.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key, [k for k, _ in pairs])
        out[key] = value
    return out


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in a registry (JSON has no such number)")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the validators recurse on what passes)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_document(text: str, label: str) -> dict[str, dict[str, Any]]:
    """Parse one registry file and check its top level; return ``{model name: raw entry}``."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise RegistryError(
            f"registry file {label}: key {exc.key!r} appears twice in the same JSON object "
            f"(keys there: {', '.join(dict.fromkeys(exc.keys))}); keep one of them"
        ) from None
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"registry file {label} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise RegistryError(f"registry file {label}: {exc}") from None
    except RecursionError:
        raise RegistryError(
            f"registry file {label} is nested too deeply to be a registry (more than {MAX_DEPTH} levels)"
        ) from None
    if _depth(doc) > MAX_DEPTH:
        raise RegistryError(
            f"registry file {label} is nested too deeply to be a registry (more than {MAX_DEPTH} levels)"
        )
    if not isinstance(doc, dict):
        raise RegistryError(f"registry file {label}: the top level must be a JSON object, got {_kind(doc)}")
    unknown = sorted(set(doc) - DOCUMENT_FIELDS)
    if unknown:
        raise RegistryError(
            f"registry file {label}: unknown top-level field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: schema_version, models"
        )
    version = doc.get("schema_version", _MISSING)
    if version is _MISSING:
        raise RegistryError(
            f"registry file {label}: field 'schema_version' is missing; add \"schema_version\": 1"
        )
    if type(version) is not int or version != SCHEMA_VERSION:
        raise RegistryError(
            f"registry file {label}: schema_version {version!r} is not supported; this paddlehub_cls "
            f"reads schema_version {SCHEMA_VERSION} ({_DOCS})"
        )
    models = doc.get("models", _MISSING)
    if not isinstance(models, dict):
        got = "nothing" if models is _MISSING else _kind(models)
        raise RegistryError(
            f"registry file {label}: field 'models' must be an object of model entries, got {got}"
        )
    seen: dict[str, str] = {}
    for name, entry in models.items():
        if not _NAME_RE.match(name):
            raise RegistryError(
                f"registry file {label}: model name {name!r} is not allowed; use letters, digits, '_' and "
                f"'-' only (no '.', which separates a model from its weight tag)"
            )
        if name.lower() in seen:
            raise RegistryError(
                f"registry file {label}: models {seen[name.lower()]!r} and {name!r} differ only in case; "
                f"names are case-insensitive, keep one"
            )
        seen[name.lower()] = name
        if not isinstance(entry, dict):
            raise RegistryError(
                f"registry file {label}: model {name!r} must be a JSON object, got {_kind(entry)}"
            )
    return models


def merge_entry(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge an extra file's entry over an existing one (fields replace; variants merge per field).

    A variant set to ``null`` in the override removes that weight tag. Inputs are not modified.
    """
    merged = dict(base)
    for key, value in override.items():
        if key == "weights" and isinstance(value, dict) and isinstance(base.get("weights"), dict):
            weights = dict(base["weights"])
            lowered = {t.lower(): t for t in weights}
            for tag, variant in value.items():
                old_tag = lowered.get(tag.lower(), tag)
                old = weights.get(old_tag)
                if variant is None:
                    weights.pop(old_tag, None)
                    continue
                if isinstance(old, dict) and isinstance(variant, dict):
                    variant = {**old, **variant}
                weights[old_tag] = variant  # keeps the packaged spelling and order
            merged["weights"] = weights
        else:
            merged[key] = value
    return merged


class _Where:
    """Where an error is: builds messages that name file(s), model, tag and field."""

    def __init__(self, origin: str, model: str, tag: Optional[str] = None) -> None:
        self.origin, self.model, self.tag = origin, model, tag

    def fail(self, field: str, problem: str, value: Any = _MISSING, fix: str = "") -> NoReturn:
        where = f"model {self.model!r}" + (f", weights {self.tag!r}" if self.tag else "")
        got = "" if value is _MISSING else f"; got {value!r}"
        raise RegistryError(
            f"registry {self.origin}: {where}, field {field!r}: {problem}{got}. "
            f"{fix or 'Fix the entry'} ({_DOCS})"
        )

    def fields(self, entry: Mapping[str, Any], required: frozenset, optional: frozenset) -> None:
        missing = sorted(required - set(entry))
        if missing:
            self.fail(
                missing[0], "is missing", fix=f"Add it (required fields: {', '.join(sorted(required))})"
            )
        unknown = sorted(set(entry) - required - optional)
        if unknown:
            self.fail(
                unknown[0], "is not a known field", fix=f"Allowed: {', '.join(sorted(required | optional))}"
            )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is an int subclass and never a valid count here


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and math.isfinite(v)


def _text(w: _Where, entry: Mapping[str, Any], field: str, *, required: bool = True) -> None:
    value = entry.get(field)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        w.fail(field, "must be a non-empty string" + ("" if required else " or null"), value)


def _identifier(w: _Where, entry: Mapping[str, Any], field: str) -> None:
    value = entry.get(field)
    if not isinstance(value, str) or not value.isidentifier():
        w.fail(field, "must be a Python identifier naming a registered builder", value)


def _positive_int(w: _Where, entry: Mapping[str, Any], field: str, *, required: bool = True) -> None:
    value = entry.get(field)
    if value is None and not required:
        return
    if not _is_int(value) or value <= 0:
        w.fail(field, "must be a positive integer" + ("" if required else " or null"), value)


def _kwargs(w: _Where, entry: Mapping[str, Any], field: str = "arch_kwargs") -> None:
    value = entry.get(field, {})
    if not isinstance(value, dict):
        w.fail(field, "must be an object of builder keyword arguments", value)
    for key in value:
        if not key.isidentifier():
            w.fail(field, f"key {key!r} is not a valid keyword argument name", value)


def _record(w: _Where, entry: Mapping[str, Any], field: str, spec: Mapping[str, str]) -> None:
    """Check an optional sub-object: ``spec`` maps key -> 'int' | 'number' | 'text' | 'url' | 'opt-text'."""
    value = entry.get(field)
    if value is None:
        return
    if not isinstance(value, dict):
        w.fail(field, f"must be an object with keys {', '.join(spec)} or null", value)
    unknown = sorted(set(value) - set(spec))
    if unknown:
        w.fail(f"{field}.{unknown[0]}", f"is not a known field (allowed: {', '.join(spec)})")
    for key, kind in spec.items():
        item = value.get(key)
        name = f"{field}.{key}"
        if kind == "opt-text":
            if item is not None and not (isinstance(item, str) and item.strip()):
                w.fail(name, "must be a non-empty string or absent", item)
        elif kind == "int":
            if not _is_int(item) or item < 0:
                w.fail(name, "must be a non-negative integer", item)
        elif kind in ("percent", "opt-percent"):
            if item is None and kind == "opt-percent":
                continue
            if not _is_number(item) or not 0 <= item <= 100:
                w.fail(
                    name,
                    "must be a number from 0 to 100 (percent)"
                    + (" or absent" if kind == "opt-percent" else ""),
                    item,
                )
        elif kind == "url":
            if (
                not isinstance(item, str)
                or urlsplit(item).scheme not in ("http", "https")
                or not urlsplit(item).netloc
            ):
                w.fail(name, "must be an http(s) URL", item)
        elif not isinstance(item, str) or not item.strip():
            w.fail(name, "must be a non-empty string", item)


def _preprocess(w: _Where, value: Any, field: str, *, export: bool = False) -> None:
    """Check a ``preprocess`` object (or, with ``export``, its partial ``export`` override)."""
    if not isinstance(value, dict):
        w.fail(
            field,
            "must be an object (resize, resize_size, crop, interpolation, backend, channel_order, "
            "scale, mean, std, source)",
            value,
        )
    allowed = (PREPROCESS_REQUIRED | PREPROCESS_OPTIONAL) - ({"source", "export"} if export else set())
    if not export:
        missing = sorted(PREPROCESS_REQUIRED - set(value))
        if missing:
            w.fail(
                f"{field}.{missing[0]}",
                "is missing",
                fix=f"Add it (required: {', '.join(sorted(PREPROCESS_REQUIRED))})",
            )
    unknown = sorted(set(value) - allowed)
    if unknown:
        w.fail(f"{field}.{unknown[0]}", f"is not a known field (allowed: {', '.join(sorted(allowed))})")
    choices = {
        "resize": PREPROCESS_RESIZE,
        "interpolation": PREPROCESS_INTERPOLATIONS,
        "backend": PREPROCESS_BACKENDS,
        "channel_order": PREPROCESS_CHANNEL_ORDERS,
    }
    for key, allowed_values in choices.items():
        if key in value and value[key] not in allowed_values:
            w.fail(f"{field}.{key}", f"must be one of {', '.join(sorted(allowed_values))}", value[key])
    for key in ("resize_size", "crop"):
        if key in value and (not _is_int(value[key]) or value[key] <= 0):
            w.fail(f"{field}.{key}", "must be a positive integer (pixels)", value[key])
    if "scale" in value and (not _is_number(value["scale"]) or value["scale"] <= 0):
        w.fail(f"{field}.scale", "must be a positive number (1/255 or 1.0)", value["scale"])
    for key in ("mean", "std"):
        if key in value:
            item = value[key]
            if not isinstance(item, list) or len(item) not in (1, 3) or not all(_is_number(v) for v in item):
                w.fail(f"{field}.{key}", "must be 1 or 3 numbers, one per channel", item)
    if "std" in value and not all(v > 0 for v in value["std"]):
        w.fail(f"{field}.std", "every value must be positive", value["std"])
    resize, size, crop = value.get("resize"), value.get("resize_size"), value.get("crop")
    if _is_int(size) and _is_int(crop) and crop > size:
        w.fail(
            f"{field}.crop",
            f"must not exceed resize_size ({size}): the crop is taken from the resized image",
            crop,
        )
    if resize == "squash" and _is_int(size) and _is_int(crop) and crop != size:
        w.fail(
            f"{field}.crop", f"must equal resize_size ({size}) for a squash resize, which crops nothing", crop
        )
    if not export:
        for key in ("source", "note"):
            item = value.get(key)
            if (key == "source" or item is not None) and not (isinstance(item, str) and item.strip()):
                w.fail(f"{field}.{key}", "must be a non-empty string", item)
        if "export" in value:
            _preprocess(w, value["export"], f"{field}.export", export=True)


def _urls(w: _Where, variant: Mapping[str, Any]) -> None:
    urls = variant.get("urls")
    if not isinstance(urls, list) or not urls:
        w.fail("urls", "must be a non-empty array of URLs", urls)
    for url in urls:
        if not isinstance(url, str) or not url or any(c.isspace() for c in url):
            w.fail("urls", "every URL must be a string without spaces", url)
        parts = urlsplit(url)
        if parts.scheme not in URL_SCHEMES:
            w.fail("urls", f"URL scheme {parts.scheme!r} is not allowed (only {', '.join(URL_SCHEMES)})", url)
        if parts.scheme in ("http", "https") and not parts.netloc:
            w.fail("urls", "an http(s) URL needs a host", url)
        if parts.scheme == "file" and not parts.path:
            w.fail("urls", "a file URL needs a path", url)


def _validate_variant(w: _Where, variant: Any, default_classes: int) -> dict[str, Any]:
    if not isinstance(variant, dict):
        w.fail("weights", "each weight variant must be a JSON object", variant)
    w.fields(variant, VARIANT_REQUIRED, VARIANT_OPTIONAL)
    _urls(w, variant)
    out = dict(variant)
    checksum = variant["checksum"]
    if checksum is None:
        note = variant.get("checksum_note")
        if not isinstance(note, str) or not note.strip():
            w.fail(
                "checksum_note",
                "must say why no checksum is given when checksum is null",
                note,
                fix="Add the published checksum, or a checksum_note",
            )
    elif not isinstance(checksum, str) or not _CHECKSUM_RE.match(checksum):
        w.fail(
            "checksum",
            "must be 'md5:<32 hex digits>', 'sha256:<64 hex digits>' or null",
            checksum,
            fix="Copy the checksum exactly as published, with its algorithm prefix",
        )
    else:
        out["checksum"] = checksum.lower()
    _text(w, variant, "checksum_note", required=False)
    _positive_int(w, variant, "size", required=False)
    container = variant["container"]
    if container not in CONTAINERS:
        w.fail("container", f"must be one of {', '.join(sorted(CONTAINERS))}", container)
    if variant["layout"] not in LAYOUTS:
        w.fail("layout", f"must be one of {', '.join(sorted(LAYOUTS))}", variant["layout"])
    root = variant.get("archive_root")
    if container in ARCHIVE_CONTAINERS:
        if not isinstance(root, str) or not root.strip():
            w.fail(
                "archive_root",
                f"is required for a {container} container: the directory inside the archive",
                root,
            )
        if root.startswith("/") or "\\" in root or ".." in root.split("/"):
            w.fail("archive_root", "must be a relative path inside the archive, without '..'", root)
    elif root is not None:
        w.fail("archive_root", f"only applies to archives, not to a {container} container; use null", root)
    _positive_int(w, variant, "num_classes", required=False)
    out.setdefault("num_classes", default_classes)
    _kwargs(w, variant)
    _record(
        w,
        variant,
        "metrics",
        {"top1": "percent", "top5": "opt-percent", "source": "text", "note": "opt-text"},
    )
    metrics = variant.get("metrics")
    if metrics is not None and metrics.get("top5") is not None and metrics["top5"] < metrics["top1"]:
        w.fail("metrics", "top5 must not be below top1 (are the columns swapped?)", metrics)
    _text(w, variant, "source", required=False)
    _text(w, variant, "note", required=False)
    if "preprocess" in variant:
        _preprocess(w, variant["preprocess"], "preprocess")
    return out


def validate_model(name: str, entry: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Validate one model entry; return it with checksums normalised and defaults filled in."""
    w = _Where(origin, name)
    w.fields(entry, MODEL_REQUIRED, MODEL_OPTIONAL)
    _identifier(w, entry, "architecture")
    _identifier(w, entry, "family")
    _kwargs(w, entry)
    _positive_int(w, entry, "num_classes")
    size = entry["input_size"]
    if not isinstance(size, list) or len(size) != 3 or not all(_is_int(v) and v > 0 for v in size):
        w.fail("input_size", "must be [channels, height, width] of positive integers", size)
    for field in ("mean", "std"):
        value = entry[field]
        if not isinstance(value, list) or len(value) != size[0] or not all(_is_number(v) for v in value):
            w.fail(field, f"must be {size[0]} numbers, one per input channel", value)
    if not all(v > 0 for v in entry["std"]):
        w.fail("std", "every value must be positive", entry["std"])
    if entry["interpolation"] not in INTERPOLATIONS:
        w.fail("interpolation", f"must be one of {', '.join(sorted(INTERPOLATIONS))}", entry["interpolation"])
    crop = entry["crop_pct"]
    if not _is_number(crop) or not 0 < crop <= 1:
        w.fail("crop_pct", "must be a number in (0, 1], e.g. 0.875 for a 224 crop of 256", crop)
    _text(w, entry, "license")
    _text(w, entry, "preprocess_source", required=False)
    if "preprocess" in entry:
        _preprocess(w, entry["preprocess"], "preprocess")
    _record(w, entry, "num_params", {"value": "int", "source": "text", "note": "opt-text"})
    _record(w, entry, "flops", {"value": "int", "unit": "text", "source": "text", "note": "opt-text"})
    _record(w, entry, "paper", {"title": "text", "url": "url"})

    weights = entry["weights"]
    if not isinstance(weights, dict):
        w.fail("weights", "must be an object mapping weight tags to variants", weights)
    seen: dict[str, str] = {}
    out_weights = {}
    for tag, variant in weights.items():
        if not _TAG_RE.match(tag):
            w.fail("weights", f"tag {tag!r} is not allowed: use letters, digits, '_' and '-' (no '.')")
        if tag.lower() in seen:
            w.fail("weights", f"tags {seen[tag.lower()]!r} and {tag!r} differ only in case; keep one")
        seen[tag.lower()] = tag
        out_weights[tag] = _validate_variant(_Where(origin, name, tag), variant, entry["num_classes"])
    default = entry.get("default_weights")
    if weights and default not in weights:
        w.fail("default_weights", f"must be one of the model's weight tags ({', '.join(weights)})", default)
    if not weights and default is not None:
        w.fail("default_weights", "must be null when the model has no weights", default)
    return {**entry, "weights": out_weights}
