"""Architecture registry: ``@register_model`` builders looked up by name.

Registration happens when :mod:`paddlehub_cls.models` imports its family modules;
that package import is the only place with this side effect.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, TypeVar

from paddlehub_cls.errors import PaddleHubClsError, UnknownModelError

BuilderT = TypeVar("BuilderT", bound=Callable[..., Any])

# Filled once by the family modules' decorators at import; read-only afterwards.
_BUILDERS: Dict[str, Callable[..., Any]] = {}


def register_model(fn: BuilderT) -> BuilderT:
    """Register ``fn`` as the builder of the architecture named ``fn.__name__``.

    Raises:
        PaddleHubClsError: if an architecture of that name is already registered.
    """
    name = fn.__name__
    if name in _BUILDERS and _BUILDERS[name] is not fn:
        raise PaddleHubClsError(
            f"architecture {name!r} is registered twice ({_BUILDERS[name].__module__} and "
            f"{fn.__module__}); give one of the builders another name"
        )
    _BUILDERS[name] = fn
    return fn


def get_builder(name: str) -> Callable[..., Any]:
    """Return the builder registered as ``name``.

    Raises:
        UnknownModelError: listing the closest registered names.
    """
    from paddlehub_cls import models  # noqa: F401  (imports every family, filling _BUILDERS)

    try:
        return _BUILDERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"no architecture named {name!r} is registered.{hint} "
            f"Known architectures: {', '.join(sorted(_BUILDERS))}"
        ) from None


def list_architectures() -> List[str]:
    """Names of every registered architecture, sorted."""
    from paddlehub_cls import models  # noqa: F401

    return sorted(_BUILDERS)
