"""Read and validate the model registry (``registry.json``) into frozen dataclasses.

The registry is data only: every URL, checksum and piece of metadata lives in JSON, and no code
builds a URL by convention. This module parses the packaged ``registry.json`` plus any extra files
named by ``$PADDLEHUB_CLS_REGISTRY`` (an ``os.pathsep``-separated list), validates every entry, and
answers lookups. It never imports paddle.

An extra file uses the same schema. A model it names that is not packaged must be complete; a model
that is already packaged is merged field by field (``weights`` per tag, and each variant per field),
so a site can pin a checksum or add a mirror URL without copying the whole entry. The merged
result is validated like any other entry.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib.resources
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from paddlehub_cls import _registry_schema as _schema
from paddlehub_cls.errors import RegistryError, UnknownModelError

logger = logging.getLogger(__name__)

ENV_REGISTRY = "PADDLEHUB_CLS_REGISTRY"
SCHEMA_VERSION = _schema.SCHEMA_VERSION

__all__ = [
    "ENV_REGISTRY",
    "SCHEMA_VERSION",
    "FrozenMapping",
    "WeightVariant",
    "ModelInfo",
    "Registry",
    "load_registry",
    "split_name",
]


def split_name(name: str, known: Optional[Any] = None) -> tuple[str, Optional[str]]:
    """Split ``"Name.tag"`` into ``(name, tag)``; ``(name, None)`` when it names no tag.

    The tag follows the last dot. A name found in ``known`` (a registry, or any container of
    lower-case names) is never split, so a registered name holding a dot keeps it.

    Example:
        >>> split_name("ResNet50.paddleclas")
        ('ResNet50', 'paddleclas')
    """
    if (known is not None and name.lower() in known) or "." not in name:
        return name, None
    base, tag = name.rsplit(".", 1)
    return base, tag


class FrozenMapping(Mapping):
    """A read-only, hashable mapping (nested dicts and lists are frozen too)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] = ()) -> None:
        self._data = {k: _freeze(v) for k, v in dict(data).items()}
        self._hash: Optional[int] = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMapping) else FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Turn frozen values back into plain JSON types (dict, list)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class WeightVariant:
    """One published set of weights for a model (a file or an archive, with its metadata).

    Attributes:
        tag: The variant's name within its model, e.g. ``"fluid2019"``.
        urls: Where the artifact can be fetched, tried in order.
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"`` as published, or None.
        checksum_note: Why no checksum is recorded (set exactly when ``checksum`` is None).
        size: Size of the artifact in bytes, when known.
        container: ``pdparams``, ``fluid-tar``, ``fluid-zip`` or ``safetensors``.
        layout: Parameter-name layout of the file (see ``paddlehub_cls.layouts``).
        archive_root: Directory inside the archive that holds the weights (archives only).
        num_classes: Size of the checkpoint's classifier.
        arch_kwargs: Builder keyword arguments this variant's graph needs.
        metrics: Reported ``top1``/``top5`` (percent) with their ``source``, or None.
        source: Where the URL and checksum were published.
        note: Anything else a user should know about this file.
        preprocess: This file's own eval preprocessing, replacing the model's ``preprocess``
            (see :meth:`ModelInfo.preprocess_for`), or None.
    """

    tag: str
    urls: tuple[str, ...]
    checksum: Optional[str]
    checksum_note: Optional[str]
    size: Optional[int]
    container: str
    layout: str
    archive_root: Optional[str]
    num_classes: int
    arch_kwargs: Mapping[str, Any]
    metrics: Optional[Mapping[str, Any]]
    source: Optional[str]
    note: Optional[str] = None
    preprocess: Optional[Mapping[str, Any]] = None

    @property
    def checksum_algo(self) -> Optional[str]:
        """``"md5"``, ``"sha256"`` or None when no checksum is pinned."""
        return self.checksum.split(":", 1)[0] if self.checksum else None

    @property
    def checksum_hex(self) -> Optional[str]:
        """The lower-case hex digest, or None when no checksum is pinned."""
        return self.checksum.split(":", 1)[1] if self.checksum else None

    @property
    def is_archive(self) -> bool:
        """True when the artifact is an archive that is unpacked after download."""
        return self.container in _schema.ARCHIVE_CONTAINERS

    def to_dict(self) -> dict[str, Any]:
        """Return the variant as plain JSON types, with its ``tag``."""
        return {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A registry entry: how to build a model, how to preprocess for it, and its weights.

    Attributes mirror the registry schema (see ``docs/registry.md``); ``weights`` maps each tag
    to its :class:`WeightVariant`, and ``registry_files`` lists the files the entry came from.
    """

    name: str
    architecture: str
    family: str
    arch_kwargs: Mapping[str, Any]
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float
    num_params: Optional[Mapping[str, Any]]
    flops: Optional[Mapping[str, Any]]
    paper: Optional[Mapping[str, Any]]
    license: str
    default_weights: Optional[str]
    weights: Mapping[str, WeightVariant]
    preprocess_source: Optional[str] = None
    preprocess: Optional[Mapping[str, Any]] = None
    registry_files: tuple[str, ...] = ()

    @property
    def has_weights(self) -> bool:
        """True when at least one pretrained weight variant is registered."""
        return bool(self.weights)

    def variant(self, tag: Optional[str] = None) -> WeightVariant:
        """Return the weight variant ``tag`` (case-insensitive), or the default when None.

        Raises:
            UnknownModelError: the model has no such variant, or no weights at all.
        """
        if tag is None:
            if self.default_weights is None:
                raise UnknownModelError(
                    f"model {self.name!r} has no pretrained weights in the registry; "
                    f"build it with pretrained=False or add a weight variant to its entry"
                )
            return self.weights[self.default_weights]
        if tag in self.weights:
            return self.weights[tag]
        for known, variant in self.weights.items():
            if known.lower() == tag.lower():
                return variant
        available = ", ".join(self.weights) or "none"
        close = difflib.get_close_matches(tag.lower(), [t.lower() for t in self.weights], n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"model {self.name!r} has no weights {tag!r}.{hint} Available: {available} "
            f"(default: {self.default_weights})."
        )

    def preprocess_for(self, tag: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The eval preprocessing of variant ``tag`` (None: default) as plain JSON types.

        A variant's own ``preprocess`` object replaces the model's whole; None when neither
        has one (then ``input_size``, ``crop_pct``, ``interpolation``, ``mean`` and ``std`` apply).
        """
        if self.weights and (tag is not None or self.default_weights is not None):
            own = self.variant(tag).preprocess
            if own is not None:
                return _thaw(own)
        return _thaw(self.preprocess) if self.preprocess is not None else None

    def build_kwargs(self, tag: Optional[str] = None) -> dict[str, Any]:
        """Builder kwargs for variant ``tag`` (None: default): the model's merged with the variant's."""
        merged = _thaw(self.arch_kwargs)
        if self.weights or tag is not None:
            merged.update(_thaw(self.variant(tag).arch_kwargs))
        return merged

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as plain JSON types, with its ``name`` and every variant."""
        out = {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "weights"}
        out["weights"] = {tag: v.to_dict() for tag, v in self.weights.items()}
        return out


def _natural_key(name: str) -> tuple:
    # ResNet18 < ResNet50 < ResNet101: compare digit runs as numbers.
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower()))


@dataclasses.dataclass(frozen=True)
class Registry:
    """Every registered model, looked up case-insensitively."""

    models: Mapping[str, ModelInfo]
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {name.lower(): name for name in self.models})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.models)

    def split_name(self, name: str) -> tuple[str, Optional[str]]:
        """:func:`split_name` that never splits a registered name."""
        return split_name(name, self._index)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """All model names, in natural order (ResNet18 before ResNet101)."""
        return sorted(self.models, key=_natural_key)

    def find(self, pattern: str = "*", *, pretrained: Optional[bool] = None) -> list[str]:
        """Names matching a case-insensitive fnmatch ``pattern``, in natural order.

        Args:
            pattern: Shell-style wildcard, e.g. ``"resnet*"``.
            pretrained: True keeps models with weights, False those without, None all.
        """
        pat = pattern.lower()
        return [
            name
            for name in self.names()
            if fnmatch.fnmatchcase(name.lower(), pat)
            and (pretrained is None or self.models[name].has_weights == bool(pretrained))
        ]

    def get(self, name: str) -> ModelInfo:
        """Return the entry for ``name`` (case-insensitive).

        Raises:
            UnknownModelError: no such model; the message lists the closest names.
        """
        if not isinstance(name, str):
            raise TypeError(f"model name must be a str, got {type(name).__name__}: {name!r}")
        canonical = self._index.get(name.lower())  # type: ignore[attr-defined]
        if canonical is None:
            raise UnknownModelError(self._unknown_message(name))
        return self.models[canonical]

    def resolve(self, name: str, weights: Optional[str] = None) -> tuple[ModelInfo, WeightVariant]:
        """Return the entry and weight variant for ``name`` or ``"Name.tag"``.

        Args:
            name: A model name, optionally suffixed with ``.tag``.
            weights: A variant tag; None selects the tag in ``name`` or the model's default.

        Raises:
            UnknownModelError: unknown model or tag.
            ValueError: ``name`` carries a tag that disagrees with ``weights``.
        """
        if not isinstance(name, str):
            raise TypeError(f"model name must be a str, got {type(name).__name__}: {name!r}")
        base, tag = self.split_name(name)
        if tag is not None:
            info = self.get(base)
            if weights is not None and weights.lower() != tag.lower():
                raise ValueError(
                    f"{name!r} names weights {tag!r} but weights={weights!r} was also given; "
                    f"pass only one of them"
                )
            return info, info.variant(tag)
        info = self.get(name)
        return info, info.variant(weights)

    def _unknown_message(self, name: str) -> str:
        lowered = {n.lower(): n for n in self.models}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        if not close:
            close = [low for low in lowered if name.lower() in low][:3]
        hint = f" Did you mean {', '.join(lowered[c] for c in close)}?" if close else ""
        return (
            f"unknown model {name!r}.{hint} Run `paddlehub-cls list` to see all {len(self.models)} "
            f"models, or add it to a file named by ${ENV_REGISTRY}."
        )


# ---------------------------------------------------------------------------------------------
# Loading


def _packaged_path() -> Any:
    return importlib.resources.files("paddlehub_cls").joinpath("registry.json")


def _file_key(path: Any, origin: str) -> tuple[str, int, int]:
    # Cache key (path, mtime_ns, size): an edited file is re-read, an unchanged one is not.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RegistryError(
            f"registry file {str(path)!r} ({origin}) does not exist; {_fix_hint(origin)}"
        ) from None
    except OSError as exc:
        raise RegistryError(
            f"registry file {str(path)!r} ({origin}) cannot be read: {exc}; {_fix_hint(origin)}"
        ) from exc
    return (str(path), st.st_mtime_ns, st.st_size)


def _fix_hint(origin: str) -> str:
    if origin == ENV_REGISTRY:
        return f"fix or unset ${ENV_REGISTRY}"
    return "reinstall paddlehub_cls (the wheel must contain paddlehub_cls/registry.json)"


def _extra_paths() -> list[str]:
    raw = os.environ.get(ENV_REGISTRY, "")
    return [os.path.expanduser(p) for p in raw.split(os.pathsep) if p.strip()]


def load_registry() -> Registry:
    """Load the packaged registry plus the files in ``$PADDLEHUB_CLS_REGISTRY``.

    The environment variable is read on every call; parsed results are cached per set of files,
    keyed by each file's path, modification time and size.

    Raises:
        RegistryError: a file is missing, not valid JSON, or an entry breaks the schema; the message
            names the file, model, weight tag and field.
    """
    packaged = _packaged_path()
    if isinstance(packaged, Path):
        keys = [_file_key(packaged, "packaged registry")]
    else:  # e.g. imported from a zip: no stat, read it once per process
        keys = [("<packaged>", 0, 0)]
    keys += [_file_key(p, ENV_REGISTRY) for p in _extra_paths()]
    return _build_registry(tuple(keys))


@functools.lru_cache(maxsize=16)
def _build_registry(keys: tuple[tuple[str, int, int], ...]) -> Registry:
    merged: dict[str, dict[str, Any]] = {}
    origins: dict[str, list[str]] = {}
    for path, _mtime, _size in keys:
        if path == "<packaged>":
            text = _packaged_path().read_text(encoding="utf-8")
            label = "paddlehub_cls/registry.json"
        else:
            text = _read_text(path)
            label = path
        models = _schema.parse_document(text, label)
        lowered = {name.lower(): name for name in merged}
        for name, entry in models.items():
            existing = lowered.get(name.lower())
            if existing is None:
                merged[name] = entry
                origins[name] = [label]
            else:
                logger.debug("registry file %s overrides model %s", label, existing)
                merged[name] = _schema.merge_entry(merged.pop(existing), entry)
                origins[name] = origins.pop(existing) + [label]
    infos = {
        name: _make_info(name, _schema.validate_model(name, entry, " + ".join(origins[name])), origins[name])
        for name, entry in merged.items()
    }
    return Registry(models=FrozenMapping(infos), files=tuple(k[0] for k in keys))


def _read_text(path: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RegistryError(
            f"registry file {path!r} ({ENV_REGISTRY}) cannot be read: {exc}; {_fix_hint(ENV_REGISTRY)}"
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"registry file {path!r} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
            "save it as UTF-8 JSON"
        ) from None


def _make_info(name: str, entry: Mapping[str, Any], files: list[str]) -> ModelInfo:
    variants = {
        tag: WeightVariant(
            tag=tag,
            urls=tuple(v["urls"]),
            checksum=v["checksum"],
            checksum_note=v.get("checksum_note"),
            size=v.get("size"),
            container=v["container"],
            layout=v["layout"],
            archive_root=v.get("archive_root"),
            num_classes=v.get("num_classes", entry["num_classes"]),
            arch_kwargs=FrozenMapping(v.get("arch_kwargs") or {}),
            metrics=_freeze(v.get("metrics")),
            source=v.get("source"),
            note=v.get("note"),
            preprocess=_freeze(v.get("preprocess")),
        )
        for tag, v in entry["weights"].items()
    }
    return ModelInfo(
        name=name,
        architecture=entry["architecture"],
        family=entry["family"],
        arch_kwargs=FrozenMapping(entry.get("arch_kwargs") or {}),
        num_classes=entry["num_classes"],
        input_size=tuple(entry["input_size"]),
        mean=tuple(entry["mean"]),
        std=tuple(entry["std"]),
        interpolation=entry["interpolation"],
        crop_pct=entry["crop_pct"],
        num_params=_freeze(entry.get("num_params")),
        flops=_freeze(entry.get("flops")),
        paper=_freeze(entry.get("paper")),
        license=entry["license"],
        default_weights=entry.get("default_weights"),
        weights=FrozenMapping(variants),
        preprocess_source=entry.get("preprocess_source"),
        preprocess=_freeze(entry.get("preprocess")),
        registry_files=tuple(files),
    )
