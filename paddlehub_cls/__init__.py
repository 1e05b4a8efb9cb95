"""paddlehub_cls: name a PaddlePaddle image classifier, get it with its ImageNet weights.

Importing this package is cheap: paddle is imported only when a network is built.
"""

from __future__ import annotations

__version__ = "0.1.0"

from paddlehub_cls.api import download, list_models, load_model, model_info  # noqa: E402

__all__ = ["__version__", "download", "list_models", "load_model", "model_info"]
