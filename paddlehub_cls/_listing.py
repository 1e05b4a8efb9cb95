"""Filtering, sorting and summarising registry entries for ``list_models`` and ``paddlehub-cls list``.

Reads only the registry (never imports paddle). Accuracy belongs to a weight file: a variant
without its own published top-1 shows the figure published for the same file (same URL or
same checksum) under another model or tag, and says where it came from.
"""

from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional, Tuple

from paddlehub_cls.errors import UnknownModelError
from paddlehub_cls.registry import ModelInfo, Registry

__all__ = ["SORT_KEYS", "find_models", "published_top1", "summary"]

SORT_KEYS = ("top1", "params")


# id(registry) -> (registry, index); the registry object is kept so that its id is not reused.
_FIGURES: Dict[int, Tuple[Registry, Dict[str, Tuple[float, str]]]] = {}


def _figures_by_file(reg: Registry) -> Dict[str, Tuple[float, str]]:
    """URL or checksum -> (top-1, "Model.tag") for every variant with a published top-1."""
    cached = _FIGURES.get(id(reg))
    if cached is not None and cached[0] is reg:
        return cached[1]
    found: Dict[str, Tuple[float, str]] = {}
    for name in reg.names():
        for tag, variant in reg.get(name).weights.items():
            top1 = (variant.metrics or {}).get("top1")
            if top1 is None:
                continue
            for key in (*variant.urls, variant.checksum):
                if key:
                    found.setdefault(key, (float(top1), f"{name}.{tag}"))
    if len(_FIGURES) > 8:  # load_registry re-reads edited files: drop old registries
        _FIGURES.clear()
    _FIGURES[id(reg)] = (reg, found)
    return found


def published_top1(reg: Registry, info: ModelInfo, tag: Optional[str] = None) -> Optional[Tuple[float, str]]:
    """The top-1 (%) of variant ``tag`` (None: the default) and the ``Model.tag`` it was published for.

    The variant's own figure when it has one, else the figure published for the same file
    (an identical URL or checksum elsewhere in the registry); None when neither exists or the
    model has no weights.
    """
    if not info.weights or (tag is None and info.default_weights is None):
        return None
    variant = info.variant(tag)
    own = (variant.metrics or {}).get("top1")
    if own is not None:
        return float(own), f"{info.name}.{variant.tag}"
    figures = _figures_by_file(reg)
    for key in (*variant.urls, variant.checksum):
        if key and key in figures:
            return figures[key]
    return None


def _check_choice(what: str, value: str, known: List[str]) -> str:
    """``value`` spelled as in the registry (case-insensitive), or UnknownModelError naming the choices."""
    lowered = {k.lower(): k for k in known}
    if value.lower() in lowered:
        return lowered[value.lower()]
    close = difflib.get_close_matches(value.lower(), list(lowered), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(lowered[c] for c in close)}?" if close else ""
    raise UnknownModelError(f"no model has {what} {value!r}.{hint} Known: {', '.join(sorted(known))}")


def find_models(
    reg: Registry,
    pattern: str = "*",
    *,
    pretrained: Optional[bool] = None,
    family: Optional[str] = None,
    tag: Optional[str] = None,
    sort: Optional[str] = None,
) -> List[str]:
    """Names matching every filter, in natural order or sorted by ``sort``.

    Args:
        reg: the registry.
        pattern: case-insensitive shell wildcard on the name.
        pretrained: True keeps models with weights, False those without, None all.
        family: keep one family (``"resnet"``, case-insensitive).
        tag: keep models that have a weight variant with this tag (``"paddleclas_ssld"``).
        sort: ``"top1"`` (highest first; the ``tag`` variant's figure when ``tag`` is given, else
            the default weights'), ``"params"`` (fewest first), or None (name order). Models
            without the figure come last, in name order.

    Raises:
        UnknownModelError: no model has that family or tag (the message lists the known ones).
        ValueError: ``sort`` is not one of :data:`SORT_KEYS`.
    """
    if sort is not None and sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)} or None, got {sort!r}")
    infos = [reg.get(n) for n in reg.names()]
    if family is not None:
        family = _check_choice("family", family, sorted({i.family for i in infos}))
    if tag is not None:
        tag = _check_choice("weight tag", tag, sorted({t for i in infos for t in i.weights}))
    matched = set(reg.find(pattern, pretrained=pretrained))
    names = [
        info.name
        for info in infos
        if info.name in matched
        and (family is None or info.family == family)
        and (tag is None or tag in info.weights)
    ]
    if sort is None:
        return names

    def figure(name: str) -> Optional[float]:
        info = reg.get(name)
        if sort == "params":
            return float(info.num_params["value"]) if info.num_params else None
        top1 = published_top1(reg, info, tag)
        return -top1[0] if top1 else None  # negated: highest accuracy first

    with_figure = [n for n in names if figure(n) is not None]
    return sorted(with_figure, key=lambda n: figure(n)) + [n for n in names if figure(n) is None]


def summary(reg: Registry, info: ModelInfo) -> Dict[str, Any]:
    """One model's listing row: name, family, default tag, top-1s per variant, params, input size."""
    top1 = {t: published_top1(reg, info, t) for t in info.weights}
    pre = info.preprocess_for(None)
    default = top1.get(info.default_weights) if info.default_weights else None
    return {
        "name": info.name,
        "architecture": info.architecture,
        "family": info.family,
        "default_weights": info.default_weights,
        "weights": list(info.weights),
        "num_params": info.num_params["value"] if info.num_params else None,
        "input_size": pre["crop"] if pre else info.input_size[1],
        "top1": default[0] if default else None,
        "top1_by_weights": {t: (v[0] if v else None) for t, v in top1.items()},
        # Where a variant's figure was published, when it is another variant's (the same file).
        "top1_from": {t: v[1] for t, v in top1.items() if v and v[1] != f"{info.name}.{t}"},
    }
