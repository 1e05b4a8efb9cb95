"""Exception hierarchy of paddlehub_cls.

Every exception derives from :class:`PaddleHubClsError` and from the builtin that
matches its meaning, so callers can catch either ``PaddleHubClsError`` or, say,
``OSError`` / ``LookupError``. Messages say what was wrong, the value received and
how to fix it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class PaddleHubClsError(Exception):
    """Base class of every error raised by paddlehub_cls."""


class UnknownModelError(PaddleHubClsError, LookupError):
    """A model name or weight tag is not in the registry."""

    def __str__(self) -> str:  # LookupError/KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RegistryError(PaddleHubClsError, ValueError):
    """A registry file is malformed; the message names the entry and field."""


class DownloadError(PaddleHubClsError, OSError):
    """A weight artifact could not be fetched."""


class ChecksumError(DownloadError):
    """Downloaded or cached bytes do not match the expected checksum."""


class OfflineError(DownloadError):
    """Offline mode is on and the artifact is not in any cache."""


class LockTimeoutError(DownloadError, TimeoutError):
    """Waiting for another process's download took longer than allowed."""


class CacheError(PaddleHubClsError, OSError):
    """The cache directory cannot be used (not writable, full disk, bad bundle)."""


class UnsafeArchiveError(PaddleHubClsError, ValueError):
    """An archive member would escape its directory or is otherwise unsafe."""


class UnsafeWeightsError(PaddleHubClsError, ValueError):
    """A weight file asks to execute code or build objects that are not allowed."""


class WeightsFormatError(PaddleHubClsError, ValueError):
    """A weight file is malformed; the message names the file and byte offset."""


class WeightsMismatchError(PaddleHubClsError, RuntimeError):
    """Weights do not fit the network: lists missing, unexpected and mis-shaped keys."""


class ImageReadError(PaddleHubClsError, OSError):
    """An image file could not be read or decoded; the message names the file."""


class PredictionError(PaddleHubClsError, OSError):
    """Some inputs of :func:`paddlehub_cls.predict.predict` could not be read; the others were classified.

    Attributes:
        errors: input name -> error message, for each input that failed.
        results: one entry per input, in order: the predictions, or None where it failed.
        names: the input names (paths, or ``<image 3>`` for in-memory images).
    """

    def __init__(
        self,
        message: str,
        errors: Dict[str, str],
        results: List[Optional[List[Dict[str, Any]]]],
        names: List[str],
    ) -> None:
        super().__init__(message)
        self.errors = errors
        self.results = results
        self.names = names

    def __str__(self) -> str:  # OSError would format (errno, strerror) from several args
        return str(self.args[0]) if self.args else ""


class DatasetError(PaddleHubClsError, ValueError):
    """The fine-tuning image folder is not laid out as one sub-folder of images per class."""


class ExportedModelError(PaddleHubClsError, OSError):
    """A path given to :class:`paddlehub_cls.inference.Predictor` is not a usable export directory.

    Its ``paddlehub_cls.json``, program or parameters file is missing, or the JSON cannot be read,
    lacks its fields or comes from a newer paddlehub_cls. An ``OSError``, like a missing or
    damaged file (:class:`ImageReadError`): the remedy is to write the directory again.
    """


class MissingExtraError(PaddleHubClsError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra.

    Attributes:
        extra: the ``pip install "paddlehub_cls[EXTRA]"`` extra that provides it.
    """

    def __init__(self, message: str, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class ExportError(PaddleHubClsError, RuntimeError):
    """A converter (paddle2onnx) failed on an exported program; the message names the model and file."""


class InputSizeError(PaddleHubClsError, ValueError):
    """An input image is smaller than the network can take (unpadded stems such as Inception's
    reduce a small map to nothing, and Paddle would return meaningless logits)."""


__all__ = [
    "PaddleHubClsError",
    "UnknownModelError",
    "RegistryError",
    "DownloadError",
    "ChecksumError",
    "OfflineError",
    "LockTimeoutError",
    "CacheError",
    "UnsafeArchiveError",
    "UnsafeWeightsError",
    "WeightsFormatError",
    "WeightsMismatchError",
    "ImageReadError",
    "PredictionError",
    "DatasetError",
    "ExportedModelError",
    "MissingExtraError",
    "ExportError",
    "InputSizeError",
]
