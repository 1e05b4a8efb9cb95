"""safetensors files in numpy: bounds-checked reader (memory-mapped) and atomic writer.

Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header size
``N``, ``N`` bytes of UTF-8 JSON, then the data buffer. The JSON maps each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data buffer)
and may hold ``"__metadata__"``, a str -> str map.

The reader is our own rather than ``safetensors.numpy`` so that it needs no extra package,
returns zero-copy memory-mapped arrays, and reports every malformation as
:class:`~paddlehub_cls.errors.WeightsFormatError` with the file and byte offset. It is
stricter than the format requires in one way: tensors must tile the data buffer exactly
(no holes, no overlap, nothing after the last tensor), which every writer we know produces.
"""

from __future__ import annotations

import contextlib
import json
import mmap as _mmap
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, overload

import numpy as np

from paddlehub_cls._dtypes import DIRECT_DTYPES, SAFETENSORS_DTYPES
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import WeightsFormatError
from paddlehub_cls.formats._io import open_regular


# safetensors' own limit on the header size.
MAX_HEADER_SIZE = 100_000_000
_MAX_RANK = 32
_DTYPES = SAFETENSORS_DTYPES
_CODES: Dict[np.dtype, str] = {np.dtype(v).newbyteorder("="): k for k, v in DIRECT_DTYPES.items()}
_HEADER_FMT = "<Q"


def _fail(path: PathLike, offset: int, message: str) -> WeightsFormatError:
    return WeightsFormatError(
        f"{os.fspath(path)}: byte offset {offset}: {message}. Not a valid safetensors file "
        "(truncated or corrupted?): delete it and download or convert it again."
    )


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass and is not a size


def read_header(path: PathLike) -> Tuple[int, Dict[str, Any], Dict[str, str], int]:
    """Reads and validates the header of a safetensors file.

    Args:
        path: the file.

    Returns:
        ``(data_start, entries, metadata, file_size)`` where ``entries`` maps tensor names to
        ``(dtype_code, shape, begin, end)`` with offsets absolute in the file, sorted by begin.

    Raises:
        WeightsFormatError: the header is missing, too large, not JSON, or inconsistent with
            the data buffer.
    """
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise _fail(path, 0, f"expected an 8-byte header size, found a file of {size} bytes")
        (n,) = struct.unpack(_HEADER_FMT, head)
        if n > min(MAX_HEADER_SIZE, size - 8):
            raise _fail(
                path, 0, f"header size {n} exceeds the {size - 8} bytes after it (limit {MAX_HEADER_SIZE})"
            )
        raw = fh.read(n)
    if len(raw) != n:
        raise _fail(path, 8, f"expected {n} header bytes, found {len(raw)} (file changed while reading?)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(path, 8, f"header is not valid UTF-8 JSON ({err})") from err
    if not isinstance(header, dict):
        raise _fail(path, 8, f"header must be a JSON object, found {type(header).__name__}")
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(path, 8, "__metadata__ must map str to str")
    entries: Dict[str, Any] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _fail(
                path, 8, f"tensor {name!r}: expected keys dtype, shape, data_offsets, found {info!r:.200}"
            )
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in _DTYPES:
            raise _fail(
                path,
                8,
                f"tensor {name!r}: dtype {code!r:.40} not supported (supported: {', '.join(_DTYPES)})",
            )
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_RANK
            or not all(_is_int(d) and d >= 0 for d in shape)
        ):
            raise _fail(
                path,
                8,
                f"tensor {name!r}: shape must be a list of at most {_MAX_RANK} non-negative ints, "
                f"found {shape!r:.200}",
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise _fail(
                path,
                8,
                f"tensor {name!r}: data_offsets {offsets!r:.100} outside the data buffer " f"[0, {data_len}]",
            )
        numel = 1
        for dim in shape:
            numel *= dim
        need = numel * np.dtype(_DTYPES[code]).itemsize
        if offsets[1] - offsets[0] != need:
            raise _fail(
                path,
                data_start + offsets[0],
                f"tensor {name!r}: {code} {shape} needs {need} bytes, "
                f"data_offsets span {offsets[1] - offsets[0]}",
            )
        entries[name] = (code, tuple(shape), data_start + offsets[0], data_start + offsets[1])
    expected = data_start
    ordered = dict(sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])))
    for name, (_, _, begin, end) in ordered.items():
        if begin != expected:
            what = (
                "overlaps the previous tensor"
                if begin < expected
                else f"leaves a hole of {begin - expected} bytes"
            )
            raise _fail(path, begin, f"tensor {name!r} {what}; tensors must tile the data buffer")
        expected = end
    if expected != size:
        raise _fail(path, expected, f"{size - expected} bytes after the last tensor")
    return data_start, ordered, metadata, size


def _finish(
    name: str, code: str, flat: np.ndarray, shape: Tuple[int, ...], path: PathLike, begin: int
) -> np.ndarray:
    if code == "BOOL":
        if flat.size and int(flat.max()) > 1:
            raise _fail(
                path, begin + int(np.flatnonzero(flat > 1)[0]), f"tensor {name!r}: BOOL byte not 0 or 1"
            )
        flat = flat.view(np.bool_)
    elif code == "BF16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    elif not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat.reshape(shape)


@overload
def load_safetensors(
    path: PathLike, mmap: bool = True, *, with_metadata: Literal[False] = ...
) -> Dict[str, np.ndarray]: ...
@overload
def load_safetensors(
    path: PathLike, mmap: bool = True, *, with_metadata: Literal[True]
) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]: ...


def load_safetensors(path: PathLike, mmap: bool = True, *, with_metadata: bool = False) -> Any:
    """Loads every tensor of a safetensors file.

    Args:
        path: the file.
        mmap: map the file and return read-only zero-copy views (the mapping lives as
            long as any array); ``False`` reads into ordinary writable arrays.
        with_metadata: also return the ``__metadata__`` map.

    Returns:
        ``{name: array}`` in data order, or ``(tensors, metadata)``. BF16 tensors are widened
        to float32 (a copy), BOOL bytes are checked to be 0 or 1.

    Raises:
        WeightsFormatError: see :func:`read_header`.
    """
    _, entries, metadata, size = read_header(path)
    tensors: Dict[str, np.ndarray] = {}
    with open_regular(path) as fh:
        if mmap and size:
            mapped = _mmap.mmap(fh.fileno(), 0, access=_mmap.ACCESS_READ)
            if len(mapped) != size:
                raise _fail(path, 0, "file changed size while being read")
            for name, (code, shape, begin, end) in entries.items():
                raw_dtype = np.dtype("u1") if code == "BOOL" else np.dtype(_DTYPES[code])
                flat = np.frombuffer(
                    mapped, dtype=raw_dtype, count=(end - begin) // raw_dtype.itemsize, offset=begin
                )
                tensors[name] = _finish(name, code, flat, shape, path, begin)
        else:
            for name, (code, shape, begin, end) in entries.items():
                raw_dtype = np.dtype("u1") if code == "BOOL" else np.dtype(_DTYPES[code])
                fh.seek(begin)
                count = (end - begin) // raw_dtype.itemsize
                flat = np.fromfile(fh, dtype=raw_dtype, count=count)
                if flat.size != count:
                    raise _fail(path, begin, "file changed size while being read")
                tensors[name] = _finish(name, code, flat, shape, path, begin)
    return (tensors, dict(metadata)) if with_metadata else tensors


def save_safetensors(
    tensors: Mapping[str, np.ndarray], path: PathLike, metadata: Optional[Mapping[str, str]] = None
) -> None:
    """Writes ``tensors`` as a safetensors file, atomically (temporary file, fsync, rename).

    Tensors are laid out by decreasing itemsize, then name, after a header padded to 8 bytes,
    so every tensor is aligned for zero-copy loads.

    Args:
        tensors: ``{name: array}``; numpy bool, int8-64, uint8-64, float16/32/64, complex64.
        path: destination file; its directory must exist.
        metadata: optional str -> str map stored as ``__metadata__``.

    Raises:
        WeightsFormatError: a name, dtype or metadata value cannot be stored.
    """
    header: Dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise WeightsFormatError(f"safetensors metadata must map str to str, got {dict(metadata)!r:.200}")
        header["__metadata__"] = dict(metadata)
    arrays: Dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        arr = np.asarray(value)
        code = _CODES.get(arr.dtype.newbyteorder("="))
        if not isinstance(name, str) or name == "__metadata__" or code is None:
            raise WeightsFormatError(
                f"cannot store tensor {name!r} of dtype {arr.dtype} in safetensors; names must be str other "
                f"than '__metadata__', dtypes one of {', '.join(sorted(str(d) for d in _CODES))}"
            )
        arrays[name] = np.asarray(arr, dtype=np.dtype(_DTYPES[code]), order="C")  # keeps 0-d shapes
    offset = 0
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    for name in order:
        arr = arrays[name]
        code = _CODES[arr.dtype.newbyteorder("=")]
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(struct.pack(_HEADER_FMT, len(blob)))
            fh.write(blob)
            for name in order:
                fh.write(arrays[name].data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


__all__ = ["MAX_HEADER_SIZE", "load_safetensors", "read_header", "save_safetensors"]
