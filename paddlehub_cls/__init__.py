"""paddlehub_cls: name a PaddlePaddle image classifier, get it with its ImageNet weights.

Importing this package is cheap: paddle is imported only when a network is built.
"""

from __future__ import annotations

__version__ = "0.1.0"

from paddlehub_cls.api import download, list_models, load_model, model_info  # noqa: E402

__all__ = ["__version__", "Predictor", "download", "export", "list_models", "load_model", "model_info"]


def __getattr__(name: str) -> object:
    # export and Predictor live in modules that import paddle when used; loading them lazily
    # keeps `import paddlehub_cls` paddle-free.
    if name == "export":
        from paddlehub_cls.exporting import export

        return export
    if name == "Predictor":
        from paddlehub_cls.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'paddlehub_cls' has no attribute {name!r}")
