"""``.pdparams`` files (``paddle.save(layer.state_dict(), path)``) through a restricted unpickler.

A ``.pdparams`` file is a pickle, and a pickle can call any importable function. This reader
runs the pure-Python unpickler with an allowlist that covers exactly what ``paddle.save``
writes (measured with paddlepaddle 3.3.1 and numpy 2.x, see docs/formats.md):

* ``numpy._core.multiarray._reconstruct`` / ``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray`` and ``numpy.dtype``: every array of a state_dict;
* ``_codecs.encode`` and ``builtins.bytes`` (no arguments): how protocol 2 stores bytes;
* ``builtins.tuple``: how ``paddle.save`` stores a Tensor that is not in a state_dict
  (``(name, ndarray)``);
* ``numpy._core.numeric._frombuffer``: numpy arrays pickled with protocol 5;
* ``collections.OrderedDict``: older state_dicts.

None of these is the real callable: each name maps to a small function that checks its
arguments (simple numeric dtypes only, sizes bounded by the file size) and builds the value
itself. ``BUILD`` is only allowed on arrays and dtypes, with the same checks, so object
arrays, structured dtypes and oversized buffers are refused before numpy sees them.
Anything else raises :class:`~paddlehub_cls.errors.UnsafeWeightsError` and nothing runs.
"""

from __future__ import annotations

import _compat_pickle
import logging
import os
import pickle
import struct
from typing import Any, BinaryIO, Callable, Dict, Literal, Tuple, overload

import numpy as np

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import PaddleHubClsError, UnsafeWeightsError, WeightsFormatError
from paddlehub_cls.formats._io import open_regular

logger = logging.getLogger(__name__)


STRUCTURED_NAME_KEY = "StructuredToParameterName@@"
BIG_PARAM_KEY = "UnpackBigParamInfor@@"  # sic: Paddle's spelling

# Numeric kinds a weight tensor can have: bool, signed/unsigned int, float, complex.
_ALLOWED_KINDS = frozenset("biufc")
_MAX_RANK = 32
# Arrays are built from bytes stored in the file, and protocol 2 decodes each of them once
# more from a str: a legitimate file never builds more than about twice its size.
_BUDGET_SLACK = 1 << 20


# (module, name) -> the checking method of _RestrictedUnpickler that stands in for it.
_ALLOWLIST: Dict[Tuple[str, str], str] = {
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",  # numpy < 2
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "_dtype",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy.core.numeric", "_frombuffer"): "_frombuffer",  # numpy < 2
    ("_codecs", "encode"): "_encode",
    ("builtins", "tuple"): "_tuple",
    ("builtins", "bytes"): "_bytes",  # protocol < 3 pickles b"" as bytes()
    ("collections", "OrderedDict"): "_ordered_dict",
}
ALLOWED_GLOBALS: Tuple[str, ...] = tuple(f"{m}.{n}" for m, n in _ALLOWLIST)


class _NdarrayToken:
    """Stands in for ``numpy.ndarray``: only ``_reconstruct`` accepts it, nothing can call it."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _unsafe_hint(path: str) -> str:
    return (
        f"Refusing to load {path}: a weight file only needs numpy arrays and plain containers. "
        "Do not load it with paddle.load or pickle unless you trust its origin; if you do, re-save it "
        "as a plain state_dict (paddle.save(layer.state_dict(), path)) or as safetensors."
    )


class _BoundedFile:
    """File wrapper for the unpickler: reads never exceed the bytes left in the file.

    Without it a length field in the pickle (``BINBYTES8``, ``FRAME``...) would make the
    unpickler ask for, and allocate, up to 2**63 bytes.
    """

    def __init__(self, path: str, fh: BinaryIO, size: int) -> None:
        self.path = path
        self.fh = fh
        self.size = size
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.pos
        if n is None or n < 0:
            n = left
        if n > left:
            raise WeightsFormatError(
                f"{self.path}: byte offset {self.pos}: the pickle declares {n} bytes but only {left} remain "
                "(truncated or corrupted file): delete it and download it again."
            )
        data = self.fh.read(n)
        self.pos += len(data)
        return data

    def readline(self) -> bytes:
        line = self.fh.readline(self.size - self.pos)
        self.pos += len(line)
        return line


def _check_dtype(dtype: Any, path: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise WeightsFormatError(f"{path}: array dtype must be a numpy dtype, found {type(dtype).__name__}")
    if dtype.hasobject or dtype.kind not in _ALLOWED_KINDS or dtype.names is not None or dtype.subdtype:
        raise UnsafeWeightsError(
            f"{_unsafe_hint(path)} It holds an array of dtype {dtype!r}; only bool, integer, float and "
            "complex arrays are allowed (object arrays can carry arbitrary Python objects)."
        )
    return dtype


def _check_shape(shape: Any, path: str) -> Tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > _MAX_RANK:
        raise WeightsFormatError(
            f"{path}: array shape must be a tuple of at most {_MAX_RANK} sizes, found {shape!r}"
        )
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise WeightsFormatError(f"{path}: array shape must hold non-negative ints, found {shape!r}")
    return tuple(shape)


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python one: its opcodes can be overridden
    def __init__(self, reader: _BoundedFile) -> None:
        super().__init__(reader, encoding="latin1")
        self._path = reader.path
        self._reader = reader
        self._budget = 2 * reader.size + _BUDGET_SLACK

    # -- allowlist ---------------------------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 names, as the stock unpickler maps them (strings only)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        target = _ALLOWLIST.get((module, name))
        if target is None:
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} At byte offset {self._reader.pos} the pickle asks for "
                f"'{module}.{name}', which is not on the allowlist ({', '.join(ALLOWED_GLOBALS)})."
            )
        return _NDARRAY if target == "ndarray" else getattr(self, target)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeWeightsError(
            f"{_unsafe_hint(self._path)} At byte offset {self._reader.pos} "
            "the pickle refers to a persistent id "
            f"({str(pid)[:80]!r}), which only a custom loader could resolve."
        )

    def _spend(self, nbytes: int) -> None:
        self._budget -= nbytes
        if self._budget < 0:
            raise WeightsFormatError(
                f"{self._path}: byte offset {self._reader.pos}: "
                "the pickle builds more array data than a file of "
                f"{self._reader.size} bytes can hold (data reused many times): refusing it as malformed."
            )

    def _reconstruct(self, subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
        # numpy pickles every array as _reconstruct(ndarray, (0,), b'b') followed by BUILD.
        if subtype is not _NDARRAY or tuple(shape) != (0,) or dtype_code not in (b"b", "b"):
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} _reconstruct was called with unexpected arguments "
                f"({subtype!r}, {shape!r}, {dtype_code!r})."
            )
        return np.empty((0,), dtype=np.int8)

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if not isinstance(spec, str) or len(spec) > 8:
            raise UnsafeWeightsError(f"{_unsafe_hint(self._path)} numpy.dtype was called with {spec!r}.")
        try:
            # copy=True always: BUILD mutates the dtype, which must never be numpy's shared one.
            dtype = np.dtype(spec, align=bool(align), copy=True)
        except TypeError as err:
            raise WeightsFormatError(f"{self._path}: invalid numpy dtype {spec!r}: {err}") from err
        return _check_dtype(dtype, self._path)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F"):
            raise WeightsFormatError(
                f"{self._path}: _frombuffer expects bytes and order 'C'/'F', found "
                f"{type(buf).__name__} and {order!r}"
            )
        dtype = _check_dtype(dtype, self._path)
        shape = _check_shape(shape, self._path)
        if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(buf):
            raise WeightsFormatError(
                f"{self._path}: array of shape {shape} and dtype {dtype} needs "
                f"{int(np.prod(shape, dtype=object)) * dtype.itemsize} bytes, found {len(buf)}"
            )
        self._spend(len(buf))
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)

    def _encode(self, obj: Any, encoding: Any = "utf-8") -> bytes:
        # Protocol 2 stores bytes as _codecs.encode(<latin-1 str>, 'latin1').
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} _codecs.encode was called with "
                f"({type(obj).__name__}, {encoding!r}) instead of (str, 'latin1')."
            )
        self._spend(len(obj))
        return obj.encode("latin1")

    def _bytes(self, *args: Any) -> bytes:
        if args:
            raise UnsafeWeightsError(f"{_unsafe_hint(self._path)} builtins.bytes was called with arguments.")
        return b""

    def _tuple(self, items: Any = ()) -> tuple:
        # paddle.save stores a Tensor as tuple(((name, ndarray),)); nothing else needs tuple().
        if not isinstance(items, (tuple, list)) or len(items) > 2:
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} builtins.tuple was called with "
                f"{type(items).__name__} of length {len(items) if hasattr(items, '__len__') else '?'}; "
                "only (name, array) pairs are expected."
            )
        return tuple(items)

    def _ordered_dict(self, *args: Any) -> dict:
        if args:  # pickle fills an OrderedDict with SETITEMS, never through its constructor
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} collections.OrderedDict was called with arguments."
            )
        return {}

    # -- opcodes -----------------------------------------------------------------------------

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            self._build_array(inst, state)
        elif isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
        else:
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} At byte offset {self._reader.pos} "
                "the pickle sets the state of a "
                f"{type(inst).__name__}; only numpy arrays and dtypes have state in a weight file."
            )

    def _build_array(self, inst: np.ndarray, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise WeightsFormatError(
                f"{self._path}: byte offset {self._reader.pos}: bad ndarray state {type(state).__name__}"
            )
        shape, dtype, fortran, raw = state[-4:]
        dtype = _check_dtype(dtype, self._path)
        shape = _check_shape(shape, self._path)
        if not isinstance(raw, (bytes, bytearray)) or not isinstance(fortran, (bool, int)):
            raise WeightsFormatError(
                f"{self._path}: byte offset {self._reader.pos}: ndarray data must be bytes, "
                f"found {type(raw).__name__}"
            )
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need != len(raw):
            raise WeightsFormatError(
                f"{self._path}: byte offset {self._reader.pos}: array of shape {shape} and "
                f"dtype {dtype} needs {need} bytes, found {len(raw)}"
            )
        self._spend(need)
        inst.__setstate__(state)

    def _build_dtype(self, inst: np.dtype, state: Any) -> None:
        # numpy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]);
        # simple numeric dtypes have no subarray, names or fields, and -1 sizes.
        ok = (
            isinstance(state, tuple)
            and len(state) in (8, 9)
            and state[0] in (3, 4)
            and state[1] in ("<", ">", "|", "=")
            and state[2] is None
            and state[3] is None
            and state[4] is None
            and state[5] == -1
            and state[6] == -1
            and state[7] == 0
            and (len(state) == 8 or state[8] is None)
        )
        if not ok:
            raise UnsafeWeightsError(
                f"{_unsafe_hint(self._path)} At byte offset {self._reader.pos} a dtype state "
                f"{state!r:.200} describes more than a simple numeric type."
            )
        inst.__setstate__(state)
        _check_dtype(inst, self._path)

    def _load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._reader.size:  # the stock opcode allocates before it reads
            raise WeightsFormatError(
                f"{self._path}: byte offset {self._reader.pos}: BYTEARRAY8 of {size} bytes "
                f"in a file of {self._reader.size} bytes"
            )
        self._spend(size)
        buf = bytearray(size)
        self.readinto(buf)
        self.append(buf)

    def _load_ext(self) -> None:
        # pickle resolves extension codes through a process-wide cache that find_class never
        # sees; weight files do not use them.
        raise UnsafeWeightsError(
            f"{_unsafe_hint(self._path)} At byte offset {self._reader.pos} the pickle uses "
            "an extension code (EXT1/EXT2/EXT4) to name a global."
        )

    dispatch: Dict[int, Callable[[Any], None]] = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _load_ext
    del _op


def _to_array(key: str, value: Any, path: str) -> np.ndarray:
    if type(value) is np.ndarray:
        array = value
    elif (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is np.ndarray
    ):
        array = value[1]  # a paddle Tensor pickled as (tensor name, data)
    else:
        raise WeightsFormatError(
            f"{path}: entry {key!r} is a {type(value).__name__}, not an array. Expected a flat state_dict "
            "{name: array} as written by paddle.save(layer.state_dict(), path); for a training checkpoint, "
            "save the model's state_dict on its own."
        )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _merge_big_params(state: Dict[str, Any], info: Any, path: str) -> None:
    """Joins arrays that ``paddle.save`` split into ``<key>@@.<i>`` slices (protocol 2/3, > 1 GiB)."""
    if not isinstance(info, dict):
        raise WeightsFormatError(f"{path}: {BIG_PARAM_KEY!r} must be a dict, found {type(info).__name__}")
    for key, entry in info.items():
        try:
            shape = _check_shape(tuple(entry["OriginShape"]), path)
            parts = [state.pop(name) for name in entry["slices"]]
        except (KeyError, TypeError) as err:
            raise WeightsFormatError(f"{path}: bad split-parameter entry for {key!r}: missing {err}") from err
        arrays = [_to_array(f"{key} slice", p, path) for p in parts]
        if not arrays or any(a.ndim != 1 or a.dtype != arrays[0].dtype for a in arrays):
            raise WeightsFormatError(f"{path}: slices of {key!r} must be 1-D arrays of one dtype")
        joined = np.concatenate(arrays)
        if joined.size != int(np.prod(shape, dtype=object)):
            raise WeightsFormatError(
                f"{path}: slices of {key!r} hold {joined.size} values, shape {shape} needs "
                f"{int(np.prod(shape, dtype=object))}"
            )
        state[key] = joined.reshape(shape)


def _unpickle(path: str) -> Any:
    with open_regular(path) as fh:
        reader = _BoundedFile(path, fh, os.fstat(fh.fileno()).st_size)
        unpickler = _RestrictedUnpickler(reader)
        try:
            obj = unpickler.load()
        except PaddleHubClsError:
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            struct.error,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            OverflowError,
            UnicodeError,
        ) as err:
            raise WeightsFormatError(
                f"{path}: byte offset {reader.pos}: "
                f"not a valid pickle ({type(err).__name__}: {str(err)[:200]}); "
                "the file is truncated or corrupted: delete it and download it again."
            ) from err
        frame = unpickler._unframer.current_frame  # STOP may sit inside a protocol-4 frame
        in_frame = len(frame.read()) if frame is not None else 0
        trailing = reader.size - reader.pos + in_frame
        if trailing:
            raise WeightsFormatError(
                f"{path}: byte offset {reader.pos - in_frame}: {trailing} bytes after the end of the pickle; "
                "expected the file to end there (corrupted or concatenated file)."
            )
    return obj


@overload
def load_pdparams(path: PathLike, with_meta: Literal[False] = ...) -> Dict[str, np.ndarray]: ...
@overload
def load_pdparams(
    path: PathLike, with_meta: Literal[True]
) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]: ...


def load_pdparams(path: PathLike, with_meta: bool = False) -> Any:
    """Loads a ``.pdparams`` state_dict without executing anything the file asks for.

    Args:
        path: file written by ``paddle.save(layer.state_dict(), path)`` (any pickle
            protocol; PaddleClas and paddle.vision files are of this kind).
        with_meta: also return the metadata stored next to the tensors.

    Returns:
        ``{key: array}`` in file order. With ``with_meta=True``, ``(tensors, meta)`` where
        ``meta`` may hold ``"structured_to_parameter_name"`` (Paddle's
        ``StructuredToParameterName@@`` table: structured key -> parameter name).
        Tensors pickled as ``(name, array)`` pairs come back as their array; arrays that
        ``paddle.save`` split into slices are joined again. ``uint16`` arrays are returned as
        they are: Paddle uses that dtype for bfloat16, the caller decides.

    Raises:
        UnsafeWeightsError: the pickle asks for any callable or object outside the allowlist
            (os.system, eval, object arrays...); nothing was executed.
        WeightsFormatError: the file is not a valid pickle of a flat ``{str: array}`` dict.
        OSError: the file is missing or unreadable.
    """
    path_s = os.fspath(path)
    obj = _unpickle(path_s)
    if not isinstance(obj, dict):
        raise WeightsFormatError(
            f"{path_s}: the pickle holds a {type(obj).__name__}, expected a dict state_dict "
            "(paddle.save(layer.state_dict(), path))."
        )
    meta: Dict[str, Any] = {}
    names = obj.pop(STRUCTURED_NAME_KEY, None)
    if names is not None:
        if not isinstance(names, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in names.items()
        ):
            raise WeightsFormatError(f"{path_s}: {STRUCTURED_NAME_KEY!r} must map str to str")
        meta["structured_to_parameter_name"] = dict(names)
    if BIG_PARAM_KEY in obj:
        _merge_big_params(obj, obj.pop(BIG_PARAM_KEY), path_s)
    tensors: Dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise WeightsFormatError(
                f"{path_s}: state_dict key {key!r} is a {type(key).__name__}, expected str"
            )
        tensors[key] = _to_array(key, value, path_s)
    logger.debug("loaded %d tensors from %s", len(tensors), path_s)
    return (tensors, meta) if with_meta else tensors


__all__ = ["ALLOWED_GLOBALS", "BIG_PARAM_KEY", "STRUCTURED_NAME_KEY", "load_pdparams"]
