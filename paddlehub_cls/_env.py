"""Environment settings read at call time (flags, numbers, the launcher's local rank).

Shared by the cache, the transfers and fastload; imports nothing heavy.
"""

from __future__ import annotations

import os
from typing import Optional

from paddlehub_cls.errors import DownloadError

_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to 1/true/yes/on (read at call time)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def env_number(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum:  # also rejects NaN
        raise DownloadError(
            f"{name}={raw!r} is not a number >= {minimum:g}; unset it or set e.g. {name}={default:g}"
        )
    return value


def download_timeout() -> float:
    """Seconds a process waits for another one's download (``PADDLEHUB_CLS_DOWNLOAD_TIMEOUT``)."""
    return env_number("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", 3600.0)


def local_rank() -> Optional[int]:
    """This process's rank on its node under ``paddle.distributed.launch``, or None.

    Read from ``PADDLE_RANK_IN_NODE``, then ``PADDLE_LOCAL_RANK`` (both set by the
    launcher), then ``PADDLE_TRAINER_ID`` (the global rank, used only when the others
    are absent). Paddle itself is not imported.
    """
    for name in ("PADDLE_RANK_IN_NODE", "PADDLE_LOCAL_RANK", "PADDLE_TRAINER_ID"):
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                return int(raw)
            except ValueError:
                raise DownloadError(
                    f"{name}={raw!r} is not an integer rank; unset it or fix the launcher"
                ) from None
    return None
