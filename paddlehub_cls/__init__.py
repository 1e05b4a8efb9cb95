"""paddlehub_cls: name a PaddlePaddle image classifier, get it with its ImageNet weights.

Importing this package is cheap: paddle is imported only when a network is built.
"""

from __future__ import annotations

__version__ = "0.1.0"

# None of these modules imports paddle at import time.
from paddlehub_cls.api import download, list_models, load_model, model_info  # noqa: E402
from paddlehub_cls.exporting import export  # noqa: E402
from paddlehub_cls.inference import Predictor  # noqa: E402
from paddlehub_cls.predict import predict  # noqa: E402

__all__ = [
    "__version__",
    "Predictor",
    "cache_add",
    "create_transform",
    "download",
    "export",
    "list_models",
    "load_model",
    "model_info",
    "predict",
]


def __getattr__(name: str) -> object:
    # transforms builds on paddle.vision.transforms; loading it on first use keeps
    # `import paddlehub_cls` paddle-free.
    if name == "create_transform":
        from paddlehub_cls.transforms import create_transform

        return create_transform
    if name == "cache_add":  # the hub's modules are imported only when the cache is used
        from paddlehub_cls.hub import cache_add

        return cache_add
    raise AttributeError(f"module 'paddlehub_cls' has no attribute {name!r}")
