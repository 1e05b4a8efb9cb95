"""Fuzzing the weight readers with hypothesis: any input parses or raises the package's own error.

Each target gets mutations of valid files, format-aware random inputs and plain random bytes.
A reader may return a result or raise :class:`PaddleHubClsError`; any other exception fails,
and so does peak memory (numpy arrays included, via tracemalloc) beyond a small bound, which
catches allocations sized by an untrusted length field. Runs are derandomised, so CI is
reproducible; set ``PADDLEHUB_CLS_FUZZ_EXAMPLES`` to run more examples per target locally.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import tracemalloc
from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddlehub_cls.errors import PaddleHubClsError
from paddlehub_cls.formats import load_pdparams, load_safetensors, read_var_file
from paddlehub_cls.formats.pdparams import ALLOWED_GLOBALS

_DEFAULT_EXAMPLES = 300
# Examples per target, reported by the lead: override with PADDLEHUB_CLS_FUZZ_EXAMPLES.
FUZZ_EXAMPLES = {
    target: int(os.environ.get("PADDLEHUB_CLS_FUZZ_EXAMPLES", _DEFAULT_EXAMPLES))
    for target in ("fluid", "pdparams", "safetensors")
}
# Inputs are at most a few KiB; a reader that trusts a length field would blow far past this.
PEAK_BYTES_LIMIT = 8 << 20


def _fuzz_settings(target: str) -> settings:
    return settings(
        max_examples=FUZZ_EXAMPLES[target],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input"


def _check(path: Path, data: bytes, read: Callable[[Path], object]) -> object:
    """Writes ``data``, reads it; returns the result or None for a PaddleHubClsError."""
    path.unlink(missing_ok=True)  # a new inode: earlier memory maps never see the file change
    path.write_bytes(data)
    tracemalloc.start()
    try:
        return read(path)
    except PaddleHubClsError:
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_BYTES_LIMIT, f"peak {peak} bytes for a {len(data)}-byte input"


# --- mutations shared by every target --------------------------------------------------------------

_INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    struct.pack("<i", -1),
    struct.pack("<i", 2**31 - 1),
    struct.pack("<Q", 2**64 - 1),
    struct.pack("<Q", 2**63),
    struct.pack("<q", -8),
]


@st.composite
def _mutated(draw: st.DrawFn, seeds: List[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(["flip", "set", "insert", "delete", "truncate", "interesting", "duplicate"])
        )
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "interesting":
            value = draw(st.sampled_from(_INTERESTING))
            data[pos : pos + len(value)] = value
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 32))]
    return bytes(data)


# --- fluid variable files --------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _fluid(code: int, dims: List[int], data: bytes, lod: bytes = b"\0" * 8, packed: bool = False) -> bytes:
    if packed:
        body = b"".join(_varint(d) for d in dims)
        desc = bytes([0x08, code, 0x12, len(body)]) + body
    else:
        desc = bytes([0x08, code]) + b"".join(b"\x10" + _varint(d) for d in dims)
    return struct.pack("<I", 0) + lod + struct.pack("<Ii", 0, len(desc)) + desc + data


FLUID_SEEDS = [
    _fluid(5, [2, 3], np.arange(6, dtype="<f4").tobytes()),
    _fluid(4, [4], np.arange(4, dtype="<f2").tobytes(), packed=True),
    _fluid(
        3,
        [2, 1],
        np.arange(2, dtype="<i8").tobytes(),
        lod=struct.pack("<QQ", 1, 16) + struct.pack("<QQ", 0, 2),
    ),
    _fluid(0, [3], b"\x01\x00\x01"),
    _fluid(22, [2], b"\xc0\x3f\x00\x40"),
    _fluid(6, [], struct.pack("<d", 1.5)),
]


@st.composite
def _fluid_structured(draw: st.DrawFn) -> bytes:
    """Valid header, then a TensorDesc built from random protobuf fields and a random data size."""
    fields = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just(0x08), st.integers(0, 30).map(_varint)),
                st.tuples(st.just(0x10), st.integers(-3, 2**40).map(_varint)),
                st.tuples(st.just(0x12), st.binary(max_size=12).map(lambda b: _varint(len(b)) + b)),
                st.tuples(st.integers(0, 255), st.binary(max_size=10)),
            ),
            max_size=8,
        )
    )
    desc = b"".join(bytes([tag]) + body for tag, body in fields)
    size = draw(st.one_of(st.just(len(desc)), st.integers(-(2**31), 2**31 - 1)))
    data = draw(st.binary(max_size=64))
    lod_level = draw(st.sampled_from([0, 0, 0, 1, 2**63]))
    return struct.pack("<IQ", 0, lod_level) + struct.pack("<Ii", 0, size) + desc + data


@_fuzz_settings("fluid")
@given(data=st.one_of(_mutated(FLUID_SEEDS), _fluid_structured(), st.binary(max_size=256)))
def test_fuzz_fluid_reader(scratch: Path, data: bytes) -> None:
    result = _check(scratch, data, read_var_file)
    if result is not None:
        assert isinstance(result, np.ndarray) and result.dtype.kind in "biufc"
        assert result.nbytes <= len(data) * 2  # BF16 widening is the only growth


def test_fluid_seeds_are_valid(scratch: Path) -> None:
    for seed in FLUID_SEEDS:
        assert isinstance(_check(scratch, seed, read_var_file), np.ndarray)


# --- pdparams pickles ------------------------------------------------------------------------------

_STATE = {
    "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    "bn._mean": np.zeros(2, np.float32),
    "fc.bias": np.ones(3, np.float16),
    "idx": np.arange(3, dtype=np.int64),
    "StructuredToParameterName@@": {"conv.weight": "conv2d_0.w_0"},
}
PDPARAMS_SEEDS = [pickle.dumps(_STATE, protocol=p) for p in (2, 3, 4)] + [
    pickle.dumps({"w": ("generated_tensor_0", np.ones((2, 2), np.float32))}, protocol=4),
    pickle.dumps({"a": np.arange(4, dtype=np.float32)}, protocol=5),
    pickle.dumps({"a": np.arange(4, dtype=np.int32)}, protocol=0),
]


def _short(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


_GLOBAL_NAMES = sorted(
    {part for name in ALLOWED_GLOBALS for part in name.rsplit(".", 1)} | {"os", "system", "O"}
)
_SNIPPETS = [
    b"}",
    b"]",
    b"(",
    b")",
    b"t",
    b"R",
    b"b",
    b"s",
    b"u",
    b"e",
    b"a",
    b"N",
    b"0",
    b"2",
    b"1",
    b"\x85",
    b"\x86",
    b"\x87",
    b"\x88",
    b"\x89",
    b"\x93",
    b"\x94",
    b"h\x00",
    b"h\x03",
    b"K\x01",
    b"K\x00",
    b"J\xff\xff\xff\xff",
    b"C\x04abcd",
    b"C\x01b",
    b"\x81",
    b"\x92",
    b"\x95\x10\x00\x00\x00\x00\x00\x00\x00",
    b"\x96\x04\x00\x00\x00\x00\x00\x00\x00abcd",
    b"Q",
    b"\x82\x01",
    b"\x97",
    b"\x98",
] + [
    _short(s)
    for s in _GLOBAL_NAMES + ["<", "|", "f4", "i8", "b1", "V8", "latin1", "C", "StructuredToParameterName@@"]
]


@st.composite
def _pickle_structured(draw: st.DrawFn) -> bytes:
    """Random sequences of real opcodes, biased to the allowlisted globals and their arguments."""
    body = b"".join(draw(st.lists(st.sampled_from(_SNIPPETS), max_size=40)))
    return draw(st.sampled_from([b"\x80\x04", b"\x80\x02", b""])) + body + draw(st.sampled_from([b".", b""]))


@_fuzz_settings("pdparams")
@given(data=st.one_of(_mutated(PDPARAMS_SEEDS), _pickle_structured(), st.binary(max_size=256)))
def test_fuzz_restricted_unpickler(scratch: Path, data: bytes) -> None:
    result = _check(scratch, data, load_pdparams)
    if result is not None:
        assert isinstance(result, dict)
        for key, value in result.items():
            assert isinstance(key, str) and isinstance(value, np.ndarray) and not value.dtype.hasobject


def test_pdparams_seeds_are_valid(scratch: Path) -> None:
    for seed in PDPARAMS_SEEDS:
        assert isinstance(_check(scratch, seed, load_pdparams), dict)


# --- safetensors -----------------------------------------------------------------------------------


def _safetensors(header: dict, data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


SAFETENSORS_SEEDS = [
    _safetensors(
        {
            "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]},
            "__metadata__": {"format": "np"},
        },
        bytes(range(24)),
    ),
    _safetensors(
        {
            "m": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]},
            "h": {"dtype": "BF16", "shape": [2], "data_offsets": [3, 7]},
        },
        b"\x01\x00\x01\xc0\x3f\x00\x40",
    ),
    _safetensors({}, b""),
]
_DTYPE_NAMES = [
    "F32",
    "F16",
    "BF16",
    "F64",
    "I8",
    "U8",
    "I16",
    "U16",
    "I32",
    "U32",
    "I64",
    "U64",
    "BOOL",
    "C64",
    "F8_E4M3",
    "X",
]


@st.composite
def _safetensors_structured(draw: st.DrawFn) -> bytes:
    ints = st.integers(-2, 40)
    entry = st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(_DTYPE_NAMES),
            "shape": st.lists(ints, max_size=3),
            "data_offsets": st.lists(ints, min_size=0, max_size=3),
        }
    )
    header = draw(st.dictionaries(st.sampled_from(["a", "b", "c", "__metadata__"]), entry, max_size=3))
    return _safetensors(header, draw(st.binary(max_size=48)))


@_fuzz_settings("safetensors")
@given(
    data=st.one_of(_mutated(SAFETENSORS_SEEDS), _safetensors_structured(), st.binary(max_size=256)),
    mmap=st.booleans(),
)
def test_fuzz_safetensors_reader(scratch: Path, data: bytes, mmap: bool) -> None:
    result = _check(scratch, data, lambda p: load_safetensors(p, mmap=mmap))
    if result is not None:
        assert isinstance(result, dict) and all(isinstance(v, np.ndarray) for v in result.values())
        result.clear()  # drop the views before the next example rewrites the mapped file


def test_safetensors_seeds_are_valid(scratch: Path) -> None:
    for seed in SAFETENSORS_SEEDS:
        assert isinstance(_check(scratch, seed, load_safetensors), dict)
