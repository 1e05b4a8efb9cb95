"""Weight file readers: ``{source name: ndarray}`` from any supported format, without paddle.

* ``fluid``: a directory with one LoDTensor file per variable (the 2019 releases), see
  :mod:`paddlehub_cls.formats.fluid`;
* ``fluid-var``: a single such variable file (named after the file);
* ``pdparams``: a pickled state_dict (``paddle.save``), read by a restricted unpickler, see
  :mod:`paddlehub_cls.formats.pdparams`;
* ``safetensors``: see :mod:`paddlehub_cls.formats.safetensors_io`.

:func:`read_weights` detects the format from the content, never from the file name.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import WeightsFormatError
from paddlehub_cls.formats._io import open_regular
from paddlehub_cls.formats.fluid import read_fluid_dir, read_var_file, scan_fluid_dir, write_var_file
from paddlehub_cls.formats.pdparams import load_pdparams
from paddlehub_cls.formats.safetensors_io import MAX_HEADER_SIZE, load_safetensors, save_safetensors


FORMATS = ("fluid", "fluid-var", "pdparams", "safetensors")


@dataclass(frozen=True)
class WeightsSource:
    """Tensors read from one weight file or directory.

    Attributes:
        tensors: ``{source name: array}``; names as the file stores them.
        format: one of :data:`FORMATS`.
        path: the file or directory that was read.
        metadata: format-specific extras: ``structured_to_parameter_name`` (pdparams),
            ``skipped`` program files (fluid), ``header_metadata``: the ``__metadata__`` map (safetensors).
    """

    tensors: Dict[str, np.ndarray]
    format: str
    path: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _archive_kind(head: bytes) -> str:
    if head[257:262] == b"ustar":
        return "tar"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return ""


def read_weights(path: PathLike) -> WeightsSource:
    """Reads a weight file or directory, detecting its format from the content.

    Args:
        path: a ``<Model>_pretrained/`` directory of variable files, a single variable file,
            a ``.pdparams`` pickle or a safetensors file (any file name).

    Returns:
        The tensors with the detected format.

    Raises:
        WeightsFormatError: the path is missing, is an archive that must be unpacked first,
            matches no format (the message says why each one did not match), or is malformed.
        UnsafeWeightsError: a pickle asks to run code or build objects (nothing was run).
    """
    p = Path(path)
    if p.is_dir():
        files, skipped = scan_fluid_dir(p)
        tensors = {name: read_var_file(f) for name, f in files.items()}
        return WeightsSource(tensors, "fluid", p, {"skipped": skipped})
    if not p.exists():
        raise WeightsFormatError(f"{p}: no such weight file or directory; check the path")
    with open_regular(p) as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(512)

    tried: List[str] = []
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        tensors, meta = load_pdparams(p, with_meta=True)
        return WeightsSource(tensors, "pdparams", p, meta)
    tried.append(
        "pdparams: expected pickle PROTO opcode 0x80 and protocol 2-5, "
        f"found {head[:2].hex() or 'empty file'}"
    )

    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n <= min(MAX_HEADER_SIZE, size - 8) and head[8:9] == b"{":
            tensors, meta = load_safetensors(p, with_metadata=True)
            return WeightsSource(tensors, "safetensors", p, {"header_metadata": meta})
        tried.append(
            f"safetensors: header size {n} with first header byte {head[8:9]!r} is not an 8-byte "
            f"length below {min(MAX_HEADER_SIZE, size - 8)} followed by '{{'"
        )
    else:
        tried.append(f"safetensors: {size} bytes is too short for a header")

    if len(head) >= 20 and head[:4] == b"\0\0\0\0":
        return WeightsSource({p.name: read_var_file(p)}, "fluid-var", p, {})
    tried.append(
        f"fluid variable file: expected uint32 version 0 in the first 4 bytes of 20+, found {head[:4].hex()}"
    )

    kind = _archive_kind(head)
    if kind:
        raise WeightsFormatError(
            f"{p}: this is a {kind} archive, not a weight file. "
            "Unpack it first (download() and load_model() do "
            "this for registry weights) and pass the unpacked <Model>_pretrained/ directory."
        )
    tried.append("archive: no tar, zip, gzip, bzip2 or xz signature")
    raise WeightsFormatError(f"{p}: not a recognised weight file. Tried: " + "; ".join(tried) + ".")


__all__ = [
    "FORMATS",
    "WeightsSource",
    "load_pdparams",
    "load_safetensors",
    "read_fluid_dir",
    "read_var_file",
    "read_weights",
    "save_safetensors",
    "write_var_file",
]
