"""File opening shared by the readers."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, Union

from paddlehub_cls.errors import WeightsFormatError


def open_regular(path: Union[str, os.PathLike]) -> BinaryIO:
    """Opens ``path`` for binary reading if, and only if, it is a regular file.

    The check is made on the opened descriptor, so a FIFO or device swapped in after a stat
    is still refused, and ``O_NONBLOCK`` keeps opening a FIFO from blocking forever.

    Raises:
        WeightsFormatError: ``path`` is a directory, FIFO, socket or device.
        OSError: the file is missing or unreadable.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise WeightsFormatError(
                f"{os.fspath(path)}: not a regular file (mode {stat.filemode(mode)}); "
                "a weight file must be a "
                "plain file (a directory of variable files goes to read_fluid_dir / read_weights)."
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
