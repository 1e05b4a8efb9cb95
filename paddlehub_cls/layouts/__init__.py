"""Name maps from each weight source to our parameter names, applied strictly.

A layout is a function ``fn(model) -> {our_key: source_key | OptionalSource}`` registered
for a (family, layout name) pair with :func:`register_layout`. :func:`match_layout`
checks a source against it: every parameter of the network must be filled with a
tensor of the right shape, or :class:`~paddlehub_cls.errors.WeightsMismatchError`
lists what is missing, unexpected and mis-shaped. Paddle's own ``set_state_dict``
only logs a warning and keeps random values; we never do that.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Tuple, Union

import numpy as np

from paddlehub_cls.errors import PaddleHubClsError, WeightsMismatchError

# Our own state_dict names, as written by ``paddle.save(model.state_dict())``.
NATIVE = "native"


@dataclass(frozen=True)
class OptionalSource:
    """A source tensor that some releases lack; absent, it is filled with ``fill`` and reported."""

    key: str
    fill: float = 0.0
    reason: str = ""


Source = Union[str, OptionalSource]
LayoutFn = Callable[..., Dict[str, Source]]

# Filled by the family modules' decorators at import; read-only afterwards.
_LAYOUTS: Dict[Tuple[str, str], LayoutFn] = {}


def register_layout(family: str, layout: str) -> Callable[[LayoutFn], LayoutFn]:
    """Register ``fn(model) -> {our_key: source}`` as ``layout`` of ``family``."""

    def deco(fn: LayoutFn) -> LayoutFn:
        key = (family, layout)
        if key in _LAYOUTS and _LAYOUTS[key] is not fn:
            raise PaddleHubClsError(f"layout {layout!r} of family {family!r} is registered twice")
        _LAYOUTS[key] = fn
        return fn

    return deco


def _import_families() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def layouts_for(family: str) -> List[str]:
    """Layout names registered for ``family`` (``native`` always applies)."""
    _import_families()
    return [NATIVE] + sorted(name for fam, name in _LAYOUTS if fam == family)


def get_layout(family: str, layout: str) -> LayoutFn:
    """The map function of ``layout`` for ``family``; ``native`` is the identity."""
    if layout == NATIVE:
        return same_names
    _import_families()
    try:
        return _LAYOUTS[(family, layout)]
    except KeyError:
        raise PaddleHubClsError(
            f"no layout {layout!r} for family {family!r}; known layouts: {', '.join(layouts_for(family))}"
        ) from None


@dataclass
class LayoutMatch:
    """The outcome of matching a source against a layout: ready to assign."""

    layout: str
    arrays: Dict[str, np.ndarray]  # our key -> array in our shape (dtype not yet cast)
    filled: Dict[str, str] = field(default_factory=dict)  # our key -> why it was filled
    cast: Dict[str, str] = field(default_factory=dict)  # our key -> "float16->float32"


def _describe(missing: List[str], unexpected: List[str], misshaped: List[str], limit: int = 20) -> str:
    def part(title: str, items: List[str]) -> str:
        if not items:
            return ""
        shown = ", ".join(items[:limit]) + (
            f", ... ({len(items) - limit} more)" if len(items) > limit else ""
        )
        return f"\n  {title} ({len(items)}): {shown}"

    return part("missing", missing) + part("unexpected", unexpected) + part("mis-shaped", misshaped)


def match_layout(
    model,
    tensors: Mapping[str, np.ndarray],
    layout: str,
    family: str,
    *,
    origin: str = "the weights",
    adapt: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {},
) -> LayoutMatch:
    """Map ``tensors`` (source names) onto ``model``'s state_dict keys strictly.

    Args:
        model: the network (its state_dict gives our keys and shapes; values are not read).
        tensors: source name -> array.
        layout: layout name, e.g. ``fluid2019``.
        family: model family, e.g. ``resnet``.
        origin: file or URL for error messages.
        adapt: our key -> function applied to the source array before the shape
            check (e.g. the first conv for ``in_chans != 3``); recorded as adapted.

    Raises:
        WeightsMismatchError: listing missing, unexpected and mis-shaped keys.
    """
    mapping = get_layout(family, layout)(model)
    ours = model.state_dict()
    not_covered = [k for k in ours if k not in mapping]
    if not_covered:
        raise PaddleHubClsError(
            f"layout {layout!r} of family {family!r} does not cover {not_covered[:10]}; this is a bug in paddlehub_cls"
        )
    result = LayoutMatch(layout=layout, arrays={})
    missing: List[str] = []
    misshaped: List[str] = []
    used = set()
    for key, param in ours.items():
        src = mapping[key]
        want = tuple(param.shape)
        src_key = src.key if isinstance(src, OptionalSource) else src
        if src_key not in tensors:
            if isinstance(src, OptionalSource):
                result.arrays[key] = np.full(want, src.fill, dtype=np.float32)
                result.filled[key] = f"{src_key} absent from the source; filled with {src.fill}" + (
                    f" ({src.reason})" if src.reason else ""
                )
                continue
            missing.append(f"{src_key} (for {key})")
            continue
        used.add(src_key)
        arr = tensors[src_key]
        if key in adapt:
            arr = adapt[key](arr)
        if tuple(arr.shape) != want:
            misshaped.append(f"{src_key}: source {list(arr.shape)} vs network {list(want)} ({key})")
            continue
        want_dtype = str(param.dtype).replace("paddle.", "")
        if arr.dtype.kind != "f" and want_dtype.startswith(("float", "bfloat")):
            # Integer bits cannot stand for float weights: paddle.save stores bfloat16 as
            # uint16, and casting those values would silently corrupt the network.
            misshaped.append(f"{src_key}: dtype {arr.dtype} cannot fill the {want_dtype} parameter {key}")
            continue
        if str(arr.dtype) != want_dtype:
            result.cast[key] = f"{arr.dtype}->{want_dtype}"
        result.arrays[key] = arr
    unexpected = sorted(k for k in tensors if k not in used)
    if missing or unexpected or misshaped:
        raise WeightsMismatchError(
            f"{origin} does not fit {type(model).__name__} with layout {layout!r}:"
            + _describe(missing, unexpected, misshaped)
            + "\nCheck that the file belongs to this model and weight variant (weights=...), "
            "or pass a layout that matches it."
        )
    return result


def detect_layout(
    model,
    tensors: Mapping[str, np.ndarray],
    family: str,
    *,
    origin: str,
    adapt: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {},
) -> LayoutMatch:
    """Try every layout of ``family`` and return the first that fits exactly.

    Raises:
        WeightsMismatchError: listing every layout tried and why it did not fit.
    """
    reasons = []
    for name in layouts_for(family):
        try:
            return match_layout(model, tensors, name, family, origin=origin, adapt=adapt)
        except WeightsMismatchError as err:
            first_line = str(err).splitlines()
            reasons.append(f"{name}: {' '.join(s.strip() for s in first_line[1:3])}")
    raise WeightsMismatchError(
        f"{origin} fits none of the layouts of family {family!r}. Tried:\n  " + "\n  ".join(reasons)
    )


# Key suffixes of our BN layers (paddle.nn.BatchNorm2D) and of the 2019 fluid batch_norm.
OUR_BN = ("weight", "bias", "_mean", "_variance")
FLUID_BN = ("scale", "offset", "mean", "variance")


def fluid_convbn(ours: str, weights: str, bn: Union[str, None] = None) -> Dict[str, Source]:
    """Our conv-BN ``<ours>.conv.weight`` / ``<ours>.bn.*`` from ``<weights>_weights`` and
    ``<bn>_{scale,offset,mean,variance}`` (the 2019 fluid names; ``bn`` defaults to ``<weights>_bn``)."""
    bn = f"{weights}_bn" if bn is None else bn
    out: Dict[str, Source] = {f"{ours}.conv.weight": f"{weights}_weights"}
    for a, b in zip(OUR_BN, FLUID_BN):
        out[f"{ours}.bn.{a}"] = f"{bn}_{b}"
    return out


def dygraph_convbn(ours: str, conv: str, bn: str) -> Dict[str, Source]:
    """Our conv-BN from a ``paddle.nn`` conv ``<conv>.weight`` and BN ``<bn>.{weight,bias,_mean,_variance}``."""
    out: Dict[str, Source] = {f"{ours}.conv.weight": f"{conv}.weight"}
    for a in OUR_BN:
        out[f"{ours}.bn.{a}"] = f"{bn}.{a}"
    return out


def same_names(model) -> Dict[str, Source]:
    """Every key maps to itself: our own files, and sources whose structure we mirror name for name."""
    return {k: k for k in model.state_dict()}


def optional_keys(mapping: Mapping[str, Source]) -> List[str]:
    """Source keys a layout marks optional (for docs and tests)."""
    return [s.key for s in mapping.values() if isinstance(s, OptionalSource)]


__all__ = [
    "NATIVE",
    "LayoutMatch",
    "OptionalSource",
    "detect_layout",
    "dygraph_convbn",
    "fluid_convbn",
    "get_layout",
    "layouts_for",
    "match_layout",
    "optional_keys",
    "register_layout",
    "same_names",
]
