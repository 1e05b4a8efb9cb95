"""Type aliases shared by the whole package (defined once, imported everywhere)."""

from __future__ import annotations

import os
from typing import Union

#: A filesystem path as users pass it: a ``str`` or any ``os.PathLike`` (``pathlib.Path``).
PathLike = Union[str, "os.PathLike[str]"]
