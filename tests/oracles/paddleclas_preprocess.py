"""PaddleClas 2.6.0's own eval preprocessing operators, imported in this process.

The wheel ships the training-side operators (``ppcls/data``) no more; its deployment copy
``paddleclas/deploy/python/preprocess.py`` has the same ``DecodeImage`` (cv2),
``ResizeImage`` (cv2 or PIL backend), ``CropImage``, ``NormalizeImage`` and ``ToCHWImage``.
They keep no global state, so unlike the model oracle they need no subprocess.
Needs the unpacked wheel (``tests/oracles/fetch_paddleclas.py``) and OpenCV
(``tests/requirements-oracles.txt``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Mapping

import numpy as np

from .paddleclas import require_paddleclas

__all__ = ["paddleclas_ops", "paddleclas_eval"]


def paddleclas_ops() -> Any:
    """The module ``paddleclas.deploy.python.preprocess`` of the unpacked wheel."""
    wheel_root = str(require_paddleclas().parent)  # the folder that holds the ``paddleclas`` package
    if wheel_root not in sys.path:
        sys.path.insert(0, wheel_root)
    return importlib.import_module("paddleclas.deploy.python.preprocess")


def paddleclas_eval(encoded: bytes, pre: Mapping[str, Any]) -> np.ndarray:
    """Run PaddleClas's eval transform_ops that a registry ``preprocess`` object describes on file bytes."""
    ops = paddleclas_ops()
    resize = (
        {"resize_short": pre["resize_size"]} if pre["resize"] == "short" else {"size": pre["resize_size"]}
    )
    # interpolation None is what a config without one gives: cv2 INTER_LINEAR / PIL BILINEAR.
    interpolation = None if pre["interpolation"] == "bilinear" else pre["interpolation"]
    pipeline = [
        ops.DecodeImage(to_rgb=pre["channel_order"] == "RGB", channel_first=False),
        ops.ResizeImage(**resize, interpolation=interpolation, backend=pre["backend"]),
        ops.CropImage(size=pre["crop"]),
        ops.NormalizeImage(scale=pre["scale"], mean=pre["mean"], std=pre["std"], order=""),
        ops.ToCHWImage(),
    ]
    data: Any = encoded
    for op in pipeline:
        data = op(data)
    return np.asarray(data)
