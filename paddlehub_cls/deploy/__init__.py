"""Deployment: ONNX export and its ONNX Runtime backend (:mod:`.onnx`), the HTTP service (:mod:`.serve`).

Both rest on optional extras: ``pip install "paddlehub_cls[onnx]"`` (paddle2onnx, onnxruntime) and
``pip install "paddlehub_cls[serve]"`` (FastAPI, uvicorn). Importing this package imports neither.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from paddlehub_cls.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or say which extra installs it.

    Raises:
        MissingExtraError: ``module`` is not installed (or fails to import).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the Python package {module!r}, which is not installed or cannot be imported "
            f'({exc}); install it with: pip install "paddlehub_cls[{extra}]"',
            extra,
        ) from exc
