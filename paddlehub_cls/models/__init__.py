"""Network definitions, one family per module.

Importing this package imports every family module so that their
``@register_model`` builders are known. It imports paddle.
"""

from __future__ import annotations

import importlib
import pkgutil

from paddlehub_cls.models._base import ClassifierNet
from paddlehub_cls.models._registry import get_builder, list_architectures, register_model


def _import_families() -> None:
    # Discovering the family modules keeps this file free of a list that every
    # new family would have to edit.
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "layers":
            importlib.import_module(f"{__name__}.{info.name}")


_import_families()

__all__ = ["ClassifierNet", "get_builder", "list_architectures", "register_model"]
