"""The 2019 fluid weight format: one LoDTensor file per variable, read with numpy only.

The byte layout (``SerializeToStream`` of the fluid ``save`` op; docs/formats.md has the table):

====================  =======  ===========================================================
field                 size     meaning
====================  =======  ===========================================================
version               uint32   LoDTensor version, must be 0
lod_level             uint64   number of LoD levels (0 for parameters)
per LoD level         8 + n    uint64 byte size n, then n bytes of uint64 offsets
tensor version        uint32   must be 0
desc_size             int32    size of the protobuf ``TensorDesc`` that follows
desc                  n        ``TensorDesc``: field 1 ``data_type`` (enum), field 2 ``dims``
data                  rest     ``numel * itemsize`` bytes, C order, little-endian
====================  =======  ===========================================================

Every size read from the file is checked against the bytes that remain before anything is
allocated, and the data must end exactly at the end of the file. Any malformation raises
:class:`~paddlehub_cls.errors.WeightsFormatError` naming the file, the byte offset, what was
expected and what was found. No paddle import is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO, Dict, List, Tuple

import numpy as np

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import WeightsFormatError
from paddlehub_cls.formats._io import open_regular

logger = logging.getLogger(__name__)


# VarType.Type enum values of paddle/fluid/framework/framework.proto that can hold tensor data.
# BF16 has no numpy dtype: its 16 bits are the top half of a float32, so it is widened to
# float32 exactly (lossless) on read.
_BF16 = 22
_DTYPES: Dict[int, Tuple[str, str]] = {
    0: ("BOOL", "|b1"),
    1: ("INT16", "<i2"),
    2: ("INT32", "<i4"),
    3: ("INT64", "<i8"),
    4: ("FP16", "<f2"),
    5: ("FP32", "<f4"),
    6: ("FP64", "<f8"),
    20: ("UINT8", "|u1"),
    21: ("INT8", "|i1"),
    _BF16: ("BF16", "<u2"),
    23: ("COMPLEX64", "<c8"),
    24: ("COMPLEX128", "<c16"),
}
_DTYPE_CODES: Dict[np.dtype, int] = {
    np.dtype(spec).newbyteorder("="): code for code, (_, spec) in _DTYPES.items() if code != _BF16
}
SUPPORTED_DTYPES: Tuple[str, ...] = tuple(name for name, _ in _DTYPES.values())

# A TensorDesc holds a varint dtype and a few varint dims (Paddle allows rank <= 9): a few
# dozen bytes. 64 KiB leaves room for unknown future fields while bounding the parse.
MAX_DESC_SIZE = 1 << 16
# numpy 1.x supports at most 32 dimensions (2.x: 64); Paddle itself stops at 9.
MAX_RANK = 32
_INT64_MAX = (1 << 63) - 1

# Files in a variable directory that are program descriptions, not variables.
_PROGRAM_FILES = ("__model__",)
_PROGRAM_SUFFIXES = (".pdmodel",)
# Files that hold parameters in another layout: refused with advice rather than misread.
_COMBINED_FILES = ("__params__",)
_COMBINED_SUFFIXES = (".pdiparams", ".pdparams", ".pdopt", ".safetensors")


def _fail(path: PathLike, offset: int, what: str, expected: str, found: str) -> WeightsFormatError:
    return WeightsFormatError(
        f"{os.fspath(path)}: byte offset {offset}: bad {what}: expected {expected}, found {found}. "
        "This is not a valid Paddle LoDTensor variable file (truncated or corrupted download?): "
        "delete it and download or unpack the weights again."
    )


class _Cursor:
    """Reads fixed-size fields from an open file, checked against the file size."""

    def __init__(self, path: PathLike, fh: BinaryIO, size: int) -> None:
        self.path = path
        self.fh = fh
        self.size = size
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise _fail(self.path, self.pos, what, f"{n} bytes", f"only {self.remaining} before end of file")
        data = self.fh.read(n)
        if len(data) != n:  # the file shrank while we read it
            raise _fail(self.path, self.pos, what, f"{n} bytes", f"{len(data)} (file changed while reading?)")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n > self.remaining:
            raise _fail(self.path, self.pos, what, f"{n} bytes", f"only {self.remaining} before end of file")
        self.fh.seek(n, os.SEEK_CUR)
        self.pos += n


def _read_varint(path: PathLike, buf: bytes, pos: int, base: int, what: str) -> Tuple[int, int]:
    """Decodes one protobuf varint of at most 10 bytes (64 bits); returns (value, next pos)."""
    value = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise _fail(path, base + pos + i, what, "a varint continuation byte", "end of TensorDesc")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value >> 64:
                raise _fail(
                    path, base + pos, what, "a varint of at most 64 bits", f"{value.bit_length()} bits"
                )
            return value, pos + i + 1
    raise _fail(path, base + pos, what, "a varint of at most 10 bytes", "a longer run of continuation bytes")


def _as_int64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _parse_desc(path: PathLike, desc: bytes, base: int) -> Tuple[int, List[int]]:
    """Parses a protobuf ``VarType.TensorDesc``; ``base`` is its file offset (for messages)."""
    data_type = None
    dims: List[int] = []
    pos = 0
    while pos < len(desc):
        key_pos = pos
        key, pos = _read_varint(path, desc, pos, base, "TensorDesc field key")
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _fail(path, base + key_pos, "TensorDesc field key", "a field number >= 1", f"key {key}")
        if field == 1:
            if wire != 0:
                raise _fail(
                    path, base + key_pos, "TensorDesc data_type", "wire type 0 (varint)", f"wire type {wire}"
                )
            value, pos = _read_varint(path, desc, pos, base, "TensorDesc data_type")
            data_type = value
        elif field == 2 and wire == 0:  # proto2 default: one key per dim
            value, pos = _read_varint(path, desc, pos, base, "TensorDesc dims")
            dims.append(_as_int64(value))
        elif field == 2 and wire == 2:  # packed encoding, accepted for robustness
            length, pos = _read_varint(path, desc, pos, base, "TensorDesc packed dims length")
            end = pos + length
            if end > len(desc):
                raise _fail(
                    path, base + pos, "TensorDesc packed dims", f"{length} bytes", f"{len(desc) - pos} left"
                )
            while pos < end:
                value, pos = _read_varint(path, desc[:end], pos, base, "TensorDesc packed dims")
                dims.append(_as_int64(value))
        elif field == 2:
            raise _fail(path, base + key_pos, "TensorDesc dims", "wire type 0 or 2", f"wire type {wire}")
        elif wire == 0:  # unknown fields are skipped, as protobuf does
            _, pos = _read_varint(path, desc, pos, base, f"TensorDesc field {field}")
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(desc):
                raise _fail(
                    path, base + pos, f"TensorDesc field {field}", f"{width} bytes", f"{len(desc) - pos} left"
                )
            pos += width
        elif wire == 2:
            length, pos = _read_varint(path, desc, pos, base, f"TensorDesc field {field} length")
            if pos + length > len(desc):
                raise _fail(
                    path,
                    base + pos,
                    f"TensorDesc field {field}",
                    f"{length} bytes",
                    f"{len(desc) - pos} left",
                )
            pos += length
        else:  # 3/4 are deprecated groups, 6/7 do not exist
            raise _fail(
                path,
                base + key_pos,
                f"TensorDesc field {field}",
                "wire type 0, 1, 2 or 5",
                f"wire type {wire}",
            )
        if len(dims) > MAX_RANK:
            raise _fail(path, base + key_pos, "TensorDesc dims", f"at most {MAX_RANK} dims", "more")
    if data_type is None:
        raise _fail(path, base, "TensorDesc", "a data_type field (tag 0x08)", "none")
    return data_type, dims


def read_var_file(path: PathLike) -> np.ndarray:
    """Reads one variable file written by the fluid ``save`` op (or :func:`write_var_file`).

    Args:
        path: the variable file, e.g. ``ResNet50_pretrained/conv1_weights``.

    Returns:
        The tensor as a C-contiguous, writable array in native byte order. LoD information,
        which parameters never carry, is validated and dropped. BF16 tensors are widened to
        float32 exactly.

    Raises:
        WeightsFormatError: the file is truncated, has trailing bytes, an unsupported version
            or dtype, or a malformed header (the message names the file and byte offset), or
            is not a regular file.
        OSError: the file is missing or unreadable.
    """
    with open_regular(path) as fh:
        cur = _Cursor(path, fh, os.fstat(fh.fileno()).st_size)
        (version,) = struct.unpack("<I", cur.take(4, "LoDTensor version (uint32)"))
        if version != 0:
            raise _fail(path, 0, "LoDTensor version", "0", str(version))
        (lod_level,) = struct.unpack("<Q", cur.take(8, "lod_level (uint64)"))
        if lod_level * 8 > cur.remaining:  # each level needs at least its 8-byte size
            raise _fail(
                path,
                4,
                "lod_level",
                f"at most {cur.remaining // 8} levels for this file size",
                str(lod_level),
            )
        for level in range(lod_level):
            at = cur.pos
            (nbytes,) = struct.unpack("<Q", cur.take(8, f"LoD level {level} byte size (uint64)"))
            if nbytes % 8:
                raise _fail(
                    path, at, f"LoD level {level} byte size", "a multiple of 8 (uint64 offsets)", str(nbytes)
                )
            cur.skip(nbytes, f"LoD level {level} offsets")
        at = cur.pos
        (tensor_version,) = struct.unpack("<I", cur.take(4, "tensor version (uint32)"))
        if tensor_version != 0:
            raise _fail(path, at, "tensor version", "0", str(tensor_version))
        at = cur.pos
        (desc_size,) = struct.unpack("<i", cur.take(4, "TensorDesc size (int32)"))
        limit = min(MAX_DESC_SIZE, cur.remaining)
        if not 0 < desc_size <= limit:
            raise _fail(path, at, "TensorDesc size", f"1..{limit}", str(desc_size))
        desc_at = cur.pos
        data_type, dims = _parse_desc(path, cur.take(desc_size, "TensorDesc"), desc_at)

        if data_type not in _DTYPES:
            raise _fail(
                path,
                desc_at,
                "data_type",
                f"one of {', '.join(SUPPORTED_DTYPES)}",
                f"VarType {data_type} (not a tensor dtype this reader supports)",
            )
        name, spec = _DTYPES[data_type]
        dtype = np.dtype(spec)
        numel = 1
        for i, dim in enumerate(dims):
            if dim < 0:
                raise _fail(path, desc_at, f"dims[{i}]", "a non-negative size", f"{dim} (dims {dims})")
            numel *= dim  # exact: Python ints, at most MAX_RANK factors of 63 bits
        if numel > _INT64_MAX:  # Paddle's numel is an int64
            raise _fail(
                path, desc_at, "dims", "a product that fits in int64", f"dims {dims} (product {numel})"
            )
        data_at = cur.pos
        nbytes = numel * dtype.itemsize
        if nbytes > cur.remaining:
            raise _fail(
                path,
                data_at,
                "tensor data",
                f"{nbytes} bytes for {name} {dims}",
                f"only {cur.remaining} before end of file",
            )
        if nbytes < cur.remaining:
            raise _fail(
                path,
                data_at + nbytes,
                "end of file",
                f"end of data for {name} {dims}",
                f"{cur.remaining - nbytes} trailing bytes",
            )
        read_dtype = np.dtype("u1") if data_type == 0 else dtype
        flat = np.fromfile(fh, dtype=read_dtype, count=numel)
        if flat.size != numel:
            raise _fail(
                path,
                data_at,
                "tensor data",
                f"{numel} elements",
                f"{flat.size} (file changed while reading?)",
            )
    if data_type == 0:
        if flat.size and int(flat.max()) > 1:
            bad = int(np.flatnonzero(flat > 1)[0])
            raise _fail(path, data_at + bad, "BOOL value", "0 or 1", str(int(flat[bad])))
        flat = flat.view(np.bool_)
    elif data_type == _BF16:
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    elif not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat.reshape(dims)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_var(array: np.ndarray) -> bytes:
    """Serialises ``array`` into the bytes of a variable file (header, TensorDesc, data).

    Args:
        array: a numpy array of a dtype listed in :data:`SUPPORTED_DTYPES` (BF16 excepted:
            numpy has no bfloat16).

    Returns:
        The file content, byte-identical to what Paddle's ``save`` op writes.

    Raises:
        WeightsFormatError: the dtype cannot be stored in this format.
    """
    arr = np.asarray(array)
    code = _DTYPE_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise WeightsFormatError(
            f"cannot write dtype {arr.dtype} in the fluid variable format; supported numpy dtypes: "
            f"{', '.join(sorted(str(d) for d in _DTYPE_CODES))}. Cast the array first."
        )
    desc = b"\x08" + _encode_varint(code) + b"".join(b"\x10" + _encode_varint(d) for d in arr.shape)
    data = np.asarray(arr, dtype=np.dtype(_DTYPES[code][1])).tobytes(order="C")
    return struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + data


def write_var_file(path: PathLike, array: np.ndarray) -> None:
    """Writes ``array`` as one variable file, atomically (temporary file, then rename).

    Args:
        path: destination file; its directory must exist.
        array: see :func:`encode_var`.

    Raises:
        WeightsFormatError: the dtype cannot be stored in this format.
    """
    payload = encode_var(array)
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def scan_fluid_dir(dirpath: PathLike) -> Tuple[Dict[str, Path], List[str]]:
    """Lists the variable files of a one-file-per-variable directory.

    Args:
        dirpath: the unpacked directory, e.g. ``ResNet50_pretrained``.

    Returns:
        ``(files, skipped)``: variable name (path relative to ``dirpath`` with ``/``
        separators, as ``paddle.load`` names them) to file, and the program files that were
        skipped (``__model__``, ``*.pdmodel``).

    Raises:
        WeightsFormatError: the directory is missing or holds no variable files, holds a
            symlink or special file, or holds combined parameter files (``__params__``,
            ``*.pdiparams``, ``*.pdparams``...), which are a different format.
    """
    root = Path(dirpath)
    if not root.is_dir():
        raise WeightsFormatError(
            f"{root}: not a directory; expected an unpacked <Model>_pretrained/ directory"
        )
    files: Dict[str, Path] = {}
    skipped: List[str] = []

    def _raise(err: OSError) -> None:
        raise WeightsFormatError(f"{root}: cannot list weights directory: {err}") from err

    for current, subdirs, names in os.walk(root, onerror=_raise, followlinks=False):
        subdirs.sort()
        for entry in sorted(names) + [d for d in subdirs if os.path.islink(os.path.join(current, d))]:
            full = Path(current, entry)
            rel = full.relative_to(root).as_posix()
            if not full.is_file() or full.is_symlink():
                raise WeightsFormatError(
                    f"{full}: not a regular file (symlink, FIFO or device) in weights directory {root}; "
                    "a weights directory holds only plain variable files: remove it and retry."
                )
            if entry in _PROGRAM_FILES or entry.endswith(_PROGRAM_SUFFIXES):
                logger.debug("skipping program file %s in %s", rel, root)
                skipped.append(rel)
                continue
            if entry in _COMBINED_FILES or entry.endswith(_COMBINED_SUFFIXES):
                raise WeightsFormatError(
                    f"{full}: combined parameter file in weights directory {root}. This reader handles "
                    "the one-file-per-variable layout only; pass a .pdparams or .safetensors file "
                    "itself (not its directory), and save combined inference models "
                    "(__params__ / .pdiparams) as a state_dict with paddle.save first."
                )
            files[rel] = full
    if not files:
        raise WeightsFormatError(
            f"{root}: no variable files found (skipped: {skipped or 'none'}); expected the unpacked "
            "<Model>_pretrained/ directory with one file per parameter."
        )
    return files, skipped


def read_fluid_dir(dirpath: PathLike) -> Dict[str, np.ndarray]:
    """Reads every variable of a one-file-per-variable directory (the 2019 release layout).

    Strict: every regular file except program files (``__model__``, ``*.pdmodel``) must be a
    valid variable file, otherwise the error names it.

    Args:
        dirpath: the unpacked directory, e.g. ``ResNet50_pretrained``.

    Returns:
        ``{variable name: array}`` sorted by name; names are paths relative to ``dirpath``
        with ``/`` separators (``conv1_weights``, ``fc_0.w_0``).

    Raises:
        WeightsFormatError: see :func:`scan_fluid_dir` and :func:`read_var_file`.
    """
    files, _ = scan_fluid_dir(dirpath)
    return {name: read_var_file(path) for name, path in files.items()}


__all__ = [
    "MAX_DESC_SIZE",
    "MAX_RANK",
    "SUPPORTED_DTYPES",
    "encode_var",
    "read_fluid_dir",
    "read_var_file",
    "scan_fluid_dir",
    "write_var_file",
]
