"""Weight readers against files written by Paddle's own serializers, plus hostile and malformed files.

One subprocess (``FLAGS_enable_pir_api=0`` must be set before paddle is imported) writes every
fixture with Paddle: ``paddle.static.save_vars`` for the 2019 layout, ``core.save_dense_tensor``
for dtypes and LoD that ``save_vars`` cannot write, ``paddle.save`` for ``.pdparams`` and
safetensors. The expected values come from Paddle (the scope, the layers, its own loaders).
"""

from __future__ import annotations

import copyreg
import gzip
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from paddlehub_cls.errors import PaddleHubClsError, UnsafeWeightsError, WeightsFormatError
from paddlehub_cls.formats import (
    WeightsSource,
    load_pdparams,
    load_safetensors,
    read_fluid_dir,
    read_var_file,
    read_weights,
    save_safetensors,
)
from paddlehub_cls.formats.fluid import encode_var
from paddlehub_cls.formats.pdparams import ALLOWED_GLOBALS

REPO = Path(__file__).resolve().parents[1]

_WRITER = r"""
import os, sys
import numpy as np
out = sys.argv[1]
import paddle
from paddle import ParamAttr
from paddlehub_cls.formats.fluid import write_var_file

rng = np.random.default_rng(0)
place = paddle.CPUPlace()
core = paddle.base.core
paddle.enable_static()
main, startup = paddle.static.Program(), paddle.static.Program()
with paddle.static.program_guard(main, startup):
    x = paddle.static.data("x", [None, 3, 32, 32], "float32")
    y = paddle.static.nn.conv2d(x, 64, 7, stride=2, padding=3, param_attr=ParamAttr(name="conv1_weights"),
                                bias_attr=False)
    y = paddle.static.nn.batch_norm(y, param_attr=ParamAttr(name="bn_conv1_scale"),
                                    bias_attr=ParamAttr(name="bn_conv1_offset"),
                                    moving_mean_name="bn_conv1_mean",
                                    moving_variance_name="bn_conv1_variance")
    paddle.static.nn.conv2d(y, 8, 1, param_attr=ParamAttr(name="res2a_branch2a_weights"), bias_attr=False)
    paddle.static.nn.fc(paddle.static.data("f", [None, 2048], "float32"), 1000)  # fc_0.w_0, fc_0.b_0
    paddle.static.create_parameter([5, 7], "float16", name="fp16_weights")
    paddle.static.create_parameter([2, 3, 4], "float64", name="fp64_weights")
    for dt in ("int64", "int32", "int16", "int8", "uint8"):
        paddle.static.create_global_var([4, 3], 0, dt, persistable=True, name=dt + "_var")
    paddle.static.create_global_var([6], 0.0, "bfloat16", persistable=True, name="bf16_var")
exe = paddle.static.Executor(place)
exe.run(startup)
scope = paddle.static.global_scope()
persist = [v for v in main.list_vars() if v.persistable]
expected = {}
for v in persist:
    t = scope.find_var(v.name).get_tensor()
    cur = np.array(t)
    if v.name == "bf16_var":
        new = (rng.standard_normal(cur.shape).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    elif cur.dtype.kind in "iu":
        new = rng.integers(0 if cur.dtype.kind == "u" else -100, 100, size=cur.shape).astype(cur.dtype)
    else:
        new = rng.standard_normal(cur.shape).astype(cur.dtype)
    t.set(new, place)
    expected[v.name] = np.array(scope.find_var(v.name).get_tensor())
paddle.static.save_vars(exe, os.path.join(out, "Mini_pretrained"), main, vars=persist, filename=None)

os.makedirs(os.path.join(out, "dense"))
dense = {
    "bool_var": np.array([[True, False, True], [False, False, True]]),
    "complex64_var": np.array([1 + 2j, 3 - 4j], np.complex64),
    "complex128_var": np.array([[1.5 - 2j]], np.complex128),
    "scalar_var": np.array(3.5, np.float32),
    "lod_var": np.arange(6, dtype=np.float32).reshape(6, 1),
}
for name, arr in dense.items():
    t = core.DenseTensor()
    t.set(arr, place)
    if name == "lod_var":
        t.set_lod([[0, 2, 6]])
    core.save_dense_tensor(t, os.path.join(out, "dense", name))

os.makedirs(os.path.join(out, "ours"))
ours = {k: v for k, v in {**expected, **dense}.items() if k not in ("bf16_var", "lod_var")}
for name, arr in ours.items():
    write_var_file(os.path.join(out, "ours", name), arr)
ours_loaded = {k: np.array(core.load_dense_tensor(os.path.join(out, "ours", k))) for k in ours}

paddle.disable_static()
bf16_float = paddle.to_tensor(expected["bf16_var"]).astype("float32").numpy()
np.savez(os.path.join(out, "fluid_expected.npz"), bf16_float=bf16_float, **expected)
np.savez(os.path.join(out, "dense_expected.npz"), **dense)
np.savez(os.path.join(out, "ours_loaded.npz"), **ours_loaded)

def save(obj, name, expect, **kw):
    paddle.save(obj, os.path.join(out, name), **kw)
    np.savez(os.path.join(out, name + ".npz"), **expect)

paddle.seed(0)
mv1 = paddle.vision.models.mobilenet_v1(scale=0.25)
save(mv1.state_dict(), "mv1.pdparams", {k: v.numpy() for k, v in mv1.state_dict().items()})
small = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                             paddle.nn.Linear(4, 2))
for p in (2, 3, 4):
    save(small.state_dict(), f"small_p{p}.pdparams", {k: v.numpy() for k, v in small.state_dict().items()},
         protocol=p)
small.to(dtype="float16")
save(small.state_dict(), "small_fp16.pdparams", {k: v.numpy() for k, v in small.state_dict().items()})
w = paddle.to_tensor(rng.standard_normal((3, 2)).astype("float32"))
idx = paddle.to_tensor(np.arange(5, dtype=np.int64))
arr = rng.standard_normal(4)
save({"w": w, "idx": idx, "arr": arr}, "tensors.pdparams", {"w": w.numpy(), "idx": idx.numpy(), "arr": arr})
bf = paddle.to_tensor(rng.standard_normal(4).astype("float32")).astype("bfloat16")
save({"bf": bf}, "bf16.pdparams", {"bf": bf.numpy()})
lin = paddle.nn.Linear(3, 2)
sd = dict(lin.state_dict(), bf=bf)
save(sd, "paddle.safetensors", {"weight": lin.weight.numpy(), "bias": lin.bias.numpy(),
                                 "bf": bf.astype("float32").numpy()}, safetensors=True)
print("done")
"""


@pytest.fixture(scope="module")
def paddle_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paddle_written")
    script = out / "writer.py"
    script.write_text(_WRITER)
    env = dict(
        os.environ,
        FLAGS_enable_pir_api="0",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-4000:]
    return out


def _npz(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


# --- 2019 fluid format -------------------------------------------------------------------------------


def test_fluid_dir_matches_paddle_scope(paddle_files: Path) -> None:
    expected = _npz(paddle_files / "fluid_expected.npz")
    bf16_float = expected.pop("bf16_float")
    got = read_fluid_dir(paddle_files / "Mini_pretrained")
    assert got["bf16_var"].dtype == np.float32
    np.testing.assert_array_equal(got.pop("bf16_var"), bf16_float)  # widened exactly, as Paddle casts
    expected.pop("bf16_var")
    _assert_same(got, expected)
    assert {"conv1_weights", "bn_conv1_mean", "fc_0.w_0", "fc_0.b_0", "fp16_weights", "int64_var"} <= set(got)
    assert got["fc_0.w_0"].shape == (2048, 1000) and got["fp16_weights"].dtype == np.float16


def test_fluid_byte_layout_matches_weights_facts(paddle_files: Path) -> None:
    # WEIGHTS_FACTS section 4 worked example: conv1_weights of ResNet50, FP32 [64, 3, 7, 7].
    raw = (paddle_files / "Mini_pretrained" / "conv1_weights").read_bytes()
    header = bytes.fromhex(
        "00000000" "0000000000000000" "00000000" "0a000000" "0805104010031007 1007".replace(" ", "")
    )
    assert len(raw) == 37662
    assert raw[:30] == header
    values = _npz(paddle_files / "fluid_expected.npz")["conv1_weights"]
    assert raw[30:] == values.astype("<f4").tobytes()
    fc = (paddle_files / "Mini_pretrained" / "fc_0.w_0").read_bytes()
    assert fc[16:28] == bytes.fromhex("08000000" "0805108010" "10e807")
    assert len(fc) == 28 + 2048 * 1000 * 4


def test_dense_tensor_dtypes_lod_and_scalar(paddle_files: Path) -> None:
    expected = _npz(paddle_files / "dense_expected.npz")
    for name, want in expected.items():
        got = read_var_file(paddle_files / "dense" / name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want)
    assert (paddle_files / "dense" / "lod_var").stat().st_size > 30 + 24  # really carries LoD


def test_writer_is_byte_identical_and_paddle_reads_it(paddle_files: Path) -> None:
    expected = _npz(paddle_files / "fluid_expected.npz")
    for name, value in expected.items():
        if name in ("bf16_var", "bf16_float"):
            continue
        assert encode_var(value) == (paddle_files / "Mini_pretrained" / name).read_bytes(), name
    dense = _npz(paddle_files / "dense_expected.npz")
    for name in ("bool_var", "complex64_var", "scalar_var"):
        assert encode_var(dense[name]) == (paddle_files / "dense" / name).read_bytes(), name
    loaded = _npz(paddle_files / "ours_loaded.npz")  # our files read back by core.load_dense_tensor
    want = {k: v for k, v in {**expected, **dense}.items() if k not in ("bf16_var", "bf16_float", "lod_var")}
    _assert_same(loaded, want)


def test_read_weights_on_directory_and_single_file(paddle_files: Path, tmp_path: Path) -> None:
    src = read_weights(paddle_files / "Mini_pretrained")
    assert isinstance(src, WeightsSource) and src.format == "fluid" and src.metadata["skipped"] == []
    assert src.tensors["conv1_weights"].shape == (64, 3, 7, 7)
    one = read_weights(paddle_files / "Mini_pretrained" / "fc_0.b_0")
    assert one.format == "fluid-var" and list(one.tensors) == ["fc_0.b_0"]
    # A program file next to the variables is skipped and reported; nested names use '/'.
    d = tmp_path / "Mini_pretrained"
    shutil.copytree(paddle_files / "Mini_pretrained", d)
    (d / "__model__").write_bytes(b"\x0a\x05block")
    (d / "sub").mkdir()
    shutil.copy(d / "fc_0.b_0", d / "sub" / "extra")
    src = read_weights(d)
    assert src.metadata["skipped"] == ["__model__"]
    np.testing.assert_array_equal(src.tensors["sub/extra"], src.tensors["fc_0.b_0"])


def _var(
    dtype_code: int,
    dims,
    data: bytes,
    *,
    desc: bytes = None,
    version: int = 0,
    tversion: int = 0,
    lod: bytes = b"\0" * 8,
) -> bytes:
    """A variable file assembled by hand from the layout in WEIGHTS_FACTS section 4."""
    if desc is None:
        desc = bytes([0x08, dtype_code]) + b"".join(b"\x10" + _varint(d) for d in dims)
    return struct.pack("<I", version) + lod + struct.pack("<Ii", tversion, len(desc)) + desc + data


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


GOOD = _var(5, [2, 3], np.arange(6, dtype="<f4").tobytes())  # 20 + 6 desc + 24 data = 50 bytes

MALFORMED = {
    # name: (bytes, regex for the message)
    "empty": (b"", r"byte offset 0: bad LoDTensor version .* only 0 before end"),
    "cut_in_version": (GOOD[:2], r"byte offset 0: bad LoDTensor version"),
    "cut_in_lod_level": (GOOD[:7], r"byte offset 4: bad lod_level"),
    "cut_in_tensor_version": (GOOD[:14], r"byte offset 12: bad tensor version"),
    "cut_in_desc_size": (GOOD[:18], r"byte offset 16: bad TensorDesc size"),
    "cut_in_desc": (GOOD[:23], r"byte offset 16: bad TensorDesc size: expected 1\.\.3, found 6"),
    "cut_in_data": (GOOD[:40], r"byte offset 26: bad tensor data: expected 24 bytes .* only 14"),
    "version_1": (
        _var(5, [1], b"\0" * 4, version=1),
        r"byte offset 0: bad LoDTensor version: expected 0, found 1",
    ),
    "tensor_version_7": (
        _var(5, [1], b"\0" * 4, tversion=7),
        r"byte offset 12: bad tensor version: .*found 7",
    ),
    "huge_lod_level": (
        _var(5, [1], b"\0" * 4, lod=struct.pack("<Q", 2**63)),
        r"byte offset 4: bad lod_level",
    ),
    "cut_in_lod_size": (
        struct.pack("<IQQQ", 0, 2, 8, 0) + b"\x08\0\0",  # level 0 complete, level 1's size cut
        r"byte offset 28: bad LoD level 1 byte size \(uint64\): expected 8 bytes, found only 3",
    ),
    "huge_lod_bytes": (
        _var(5, [1], b"\0" * 4, lod=struct.pack("<QQ", 1, 2**62)),
        r"byte offset 20: bad LoD level 0 offsets",
    ),
    "lod_not_uint64": (
        _var(5, [1], b"\0" * 4, lod=struct.pack("<QQ", 1, 3) + b"abc"),
        r"byte offset 12: bad LoD level 0 byte size: expected a multiple of 8",
    ),
    "negative_desc_size": (GOOD[:16] + struct.pack("<i", -5) + GOOD[20:], r"byte offset 16: .*found -5"),
    "zero_desc_size": (GOOD[:16] + struct.pack("<i", 0) + GOOD[20:], r"byte offset 16: .*found 0"),
    "huge_desc_size": (
        GOOD[:16] + struct.pack("<i", 2**31 - 1) + GOOD[20:],
        r"byte offset 16: .*found 2147483647",
    ),
    "negative_dim": (_var(5, [2, -3], b"\0" * 24), r"byte offset 20: bad dims\[1\]: .*found -3"),
    "product_overflows_int64": (_var(5, [2**40, 2**40], b"\0" * 4), r"byte offset 20: bad dims: .*int64"),
    "product_exceeds_file": (
        _var(5, [1000, 1000], b"\0" * 4),
        r"byte offset \d+: bad tensor data: expected 4000000",
    ),
    "unknown_dtype_7": (_var(7, [1], b"\0" * 4), r"byte offset 20: bad data_type: .*VarType 7"),
    "unknown_dtype_99": (_var(99, [1], b"\0" * 4), r"byte offset 20: bad data_type: .*VarType 99"),
    "no_data_type": (
        _var(5, [1], b"\0" * 4, desc=b"\x10\x01"),
        r"byte offset 20: bad TensorDesc: .*data_type",
    ),
    "trailing_bytes": (GOOD + b"\0\0\0", r"byte offset 50: bad end of file: .*3 trailing bytes"),
    "varint_too_long": (
        _var(5, [1], b"", desc=b"\x08\x05\x10" + b"\xff" * 10 + b"\x01"),
        r"byte offset 23: bad TensorDesc dims: expected a varint of at most 10 bytes",
    ),
    "varint_over_64_bits": (
        _var(5, [1], b"", desc=b"\x08\x05\x10" + b"\xff" * 9 + b"\x7f"),
        r"byte offset 23: bad TensorDesc dims: expected a varint of at most 64 bits",
    ),
    "varint_cut": (_var(5, [1], b"", desc=b"\x08\x05\x10\x80"), r"byte offset 24: bad TensorDesc dims"),
    "group_wire_type": (_var(5, [], b"\0" * 4, desc=b"\x08\x05\x1b"), r"byte offset 22: .*wire type 3"),
    "data_type_wrong_wire": (
        _var(5, [], b"\0" * 4, desc=b"\x0d\x05\0\0\0"),
        r"byte offset 20: bad TensorDesc data_type",
    ),
    "packed_dims_past_end": (
        _var(5, [], b"\0" * 4, desc=b"\x08\x05\x12\x09\x01"),
        r"byte offset 24: bad TensorDesc packed dims: expected 9 bytes",
    ),
    "field_zero": (_var(5, [], b"\0" * 4, desc=b"\x08\x05\x00"), r"byte offset 22: .*field number >= 1"),
    "too_many_dims": (
        _var(5, [1] * 33, b"\0" * 4),
        r"byte offset \d+: bad TensorDesc dims: expected at most 32 dims",
    ),
    "bool_value_2": (
        _var(0, [3], b"\x01\x02\x00"),
        r"byte offset 25: bad BOOL value: expected 0 or 1, found 2",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_variable_file_names_file_and_offset(tmp_path: Path, case: str) -> None:
    data, pattern = MALFORMED[case]
    path = tmp_path / f"bad_{case}"
    path.write_bytes(data)
    assert pattern.startswith("byte offset")
    with pytest.raises(WeightsFormatError, match=rf"bad_{case}: {pattern}"):
        read_var_file(path)


def test_desc_variants_accepted(tmp_path: Path) -> None:
    data = np.arange(6, dtype="<f4").tobytes()
    unknown = (
        b"\x18\x07" + b"\x21" + b"\0" * 8 + b"\x2a\x02hi" + b"\x35\0\0\0\0"
    )  # fields 3-6, all wire types
    variants = {
        "packed": b"\x08\x05\x12\x02\x02\x03",
        "unknown_fields": unknown + b"\x08\x05\x10\x02" + unknown + b"\x10\x03",
        "mixed": b"\x10\x02\x08\x05\x12\x01\x03",
    }
    for name, desc in variants.items():
        (tmp_path / name).write_bytes(_var(5, [], data, desc=desc))
        got = read_var_file(tmp_path / name)
        assert got.shape == (2, 3) and got.dtype == np.float32, name
        np.testing.assert_array_equal(got.ravel(), np.arange(6, dtype=np.float32))


def test_fluid_dir_is_strict(tmp_path: Path) -> None:
    d = tmp_path / "M_pretrained"
    d.mkdir()
    with pytest.raises(WeightsFormatError, match="no variable files found"):
        read_fluid_dir(d)
    (d / "w").write_bytes(GOOD)
    (d / ".DS_Store").write_bytes(b"Bud1junk" * 4)
    with pytest.raises(WeightsFormatError, match=r"\.DS_Store: byte offset 0: bad LoDTensor version"):
        read_fluid_dir(d)
    (d / ".DS_Store").unlink()
    (d / "__params__").write_bytes(GOOD)
    with pytest.raises(WeightsFormatError, match=r"__params__: combined parameter file"):
        read_fluid_dir(d)
    (d / "__params__").unlink()
    os.symlink(d / "w", d / "link")
    with pytest.raises(WeightsFormatError, match=r"link: not a regular file"):
        read_fluid_dir(d)
    (d / "link").unlink()
    os.mkfifo(d / "fifo")  # opening a FIFO would block forever: it must be refused unopened
    with pytest.raises(WeightsFormatError, match=r"fifo: not a regular file"):
        read_fluid_dir(d)
    (d / "fifo").unlink()
    assert list(read_fluid_dir(d)) == ["w"]


@pytest.mark.parametrize("reader", [read_var_file, load_pdparams, load_safetensors, read_weights])
def test_readers_refuse_special_files_without_blocking(tmp_path: Path, reader) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(WeightsFormatError, match=r"fifo: not a regular file"):
        reader(tmp_path / "fifo")
    if reader is not read_weights:  # for read_weights a directory is the fluid layout
        with pytest.raises(WeightsFormatError, match=r"not a regular file"):
            reader(tmp_path)


# --- .pdparams -------------------------------------------------------------------------------------

PADDLE_PDPARAMS = [
    "mv1.pdparams",
    "small_p2.pdparams",
    "small_p3.pdparams",
    "small_p4.pdparams",
    "small_fp16.pdparams",
    "tensors.pdparams",
    "bf16.pdparams",
]


@pytest.mark.parametrize("name", PADDLE_PDPARAMS)
def test_pdparams_matches_paddle(paddle_files: Path, name: str) -> None:
    got, meta = load_pdparams(paddle_files / name, with_meta=True)
    _assert_same(got, _npz(paddle_files / f"{name}.npz"))
    names = meta.get("structured_to_parameter_name", {})
    if name == "tensors.pdparams":  # not a state_dict: Tensors pickled as (name, ndarray) pairs
        assert names == {}
    else:
        assert set(names) == set(got) and all(isinstance(v, str) for v in names.values())


class _Recorder(pickle.Unpickler):
    """The stock unpickler, recording the globals it resolves (used only on Paddle's own files)."""

    seen: set

    def find_class(self, module: str, name: str):
        self.seen.add(f"{module}.{name}")
        return super().find_class(module, name)


def test_allowlist_covers_exactly_what_paddle_save_writes(paddle_files: Path) -> None:
    seen: set = set()
    for name in PADDLE_PDPARAMS:
        with open(paddle_files / name, "rb") as fh:
            rec = _Recorder(fh)
            rec.seen = seen
            rec.load()
    assert seen <= set(ALLOWED_GLOBALS), seen - set(ALLOWED_GLOBALS)
    assert {"numpy.ndarray", "numpy.dtype", "builtins.tuple", "_codecs.encode"} <= seen
    assert seen & {"numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct"}


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_numpy_pickles_of_every_protocol(tmp_path: Path, protocol: int) -> None:
    from collections import OrderedDict

    want = OrderedDict(
        a=np.arange(6, dtype=np.float32).reshape(2, 3),
        fortran=np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        big_endian=np.arange(3, dtype=">i4"),
        empty=np.zeros((0, 3), np.int64),
        flags=np.array([True, False]),
        half=np.array([0.5, -2.0], np.float16),
    )
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(want, protocol=protocol))
    got = load_pdparams(path)
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype.newbyteorder("=") and got[key].dtype.isnative
        np.testing.assert_array_equal(got[key], value)


def test_split_big_params_are_joined(tmp_path: Path) -> None:
    # paddle.save with protocol 2/3 splits arrays over 1 GiB into "<key>@@.<i>" slices.
    full = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {
        "w@@.0": full.ravel()[:5],
        "w@@.1": full.ravel()[5:],
        "b": np.ones(2, np.float32),
        "UnpackBigParamInfor@@": {"w": {"OriginShape": (3, 4), "slices": ["w@@.0", "w@@.1"]}},
    }
    (tmp_path / "split.pdparams").write_bytes(pickle.dumps(obj, protocol=2))
    got = load_pdparams(tmp_path / "split.pdparams")
    assert sorted(got) == ["b", "w"]
    np.testing.assert_array_equal(got["w"], full)


class _Reduce:
    """Pickles as ``func(*args)``: the classic way a pickle runs code."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _hostile(case: str, marker: Path, victim: Path):
    touch = f"touch {marker}"
    return {
        "os.system": ({"w": _Reduce(os.system, touch)}, r"'posix\.system'"),
        "subprocess.Popen": (
            {"w": _Reduce(subprocess.Popen, ["touch", str(marker)])},
            r"'subprocess\.Popen'",
        ),
        "subprocess.check_output": (
            {"w": _Reduce(subprocess.check_output, ["touch", str(marker)])},
            r"'subprocess\.check_output'",
        ),
        "builtins.eval": ({"w": _Reduce(eval, f"open({str(marker)!r}, 'w').close()")}, r"'builtins\.eval'"),
        "builtins.exec": ({"w": _Reduce(exec, f"open({str(marker)!r}, 'w').close()")}, r"'builtins\.exec'"),
        "shutil.rmtree": ({"w": _Reduce(shutil.rmtree, str(victim))}, r"'shutil\.rmtree'"),
        "getattr": ({"w": _Reduce(getattr, "text", "upper")}, r"'builtins\.getattr'"),
        "pickle.loads": (
            {"w": _Reduce(pickle.loads, pickle.dumps(_Reduce(os.system, touch)))},
            r"'_?pickle\.loads'",
        ),
        "paddle_dense_tensor_eval": ({"w": _Reduce(eval, "data", {"data": np.ones(2)})}, r"'builtins\.eval'"),
        "long_tuple": ({"w": _Reduce(tuple, [1, 2, 3])}, r"builtins\.tuple was called with list of length 3"),
        "object_array": ({"w": np.array([_Reduce(os.system, touch)], dtype=object)}, r"dtype\('O'\)"),
        "object_array_plain": ({"w": np.array([1, "x"], dtype=object)}, r"dtype\('O'\)"),
        "structured_object": ({"w": np.zeros(2, dtype=[("a", "O"), ("b", "f4")])}, r"dtype\('V"),
        "nested_in_state_dict": (
            {"w": np.ones(2, np.float32), "opt": {"x": _Reduce(os.system, touch)}},
            r"'posix\.system'",
        ),
    }[case]


HOSTILE = [
    "os.system",
    "subprocess.Popen",
    "subprocess.check_output",
    "builtins.eval",
    "builtins.exec",
    "shutil.rmtree",
    "getattr",
    "pickle.loads",
    "paddle_dense_tensor_eval",
    "long_tuple",
    "object_array",
    "object_array_plain",
    "structured_object",
    "nested_in_state_dict",
]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_pickle_refused_and_nothing_runs(tmp_path: Path, case: str, protocol: int) -> None:
    marker, victim = tmp_path / "PWNED", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("still here")
    obj, pattern = _hostile(case, marker, victim)
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    with pytest.raises(UnsafeWeightsError, match=pattern) as info:
        load_pdparams(path)
    assert str(path) in str(info.value)
    assert not marker.exists() and (victim / "keep").read_text() == "still here"


@pytest.mark.parametrize(
    "payload, pattern",
    [
        (b"cposix\nsystem\n(S'touch {m}'\ntR.", r"'posix\.system'"),
        (b"cos\nsystem\n(S'touch {m}'\ntR.", r"'os\.system'"),
        (b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x00R.", r"'posix\.system'"),  # STACK_GLOBAL
        (b"(cos\nsystem\nS'touch {m}'\no.", r"'os\.system'"),  # OBJ
        (b"(S'touch {m}'\nios\nsystem\n.", r"'os\.system'"),  # INST
        (b"\x80\x02}}b.", r"sets the state of a dict"),  # BUILD on something that is no array
    ],
)
def test_handwritten_hostile_opcodes(tmp_path: Path, payload: bytes, pattern: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(payload.replace(b"{m}", str(marker).encode()))
    with pytest.raises(UnsafeWeightsError, match=pattern):
        load_pdparams(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2])
def test_persistent_id_refused(tmp_path: Path, protocol: int) -> None:
    class _Persist(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage:0" if isinstance(obj, _Reduce) else None

    buf = io.BytesIO()
    _Persist(buf, protocol=protocol).dump({"w": _Reduce(os.system, "true")})
    (tmp_path / "p.pdparams").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeWeightsError, match=r"persistent id \('storage:0'\)"):
        load_pdparams(tmp_path / "p.pdparams")


def test_extension_codes_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    copyreg.add_extension("posix", "system", 0x3F1)
    try:
        data = pickle.dumps({"w": _Reduce(os.system, f"touch {marker}")}, protocol=2)
    finally:
        copyreg.remove_extension("posix", "system", 0x3F1)
    assert b"\x83" in data  # EXT2
    (tmp_path / "e.pdparams").write_bytes(data)
    with pytest.raises(UnsafeWeightsError, match="extension code"):
        load_pdparams(tmp_path / "e.pdparams")
    assert not marker.exists()


def _reconstruct_fn():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _SharedBytesArray:
    """An array whose pickled state reuses one bytes object (memoised, so pickled once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self):
        return (
            _reconstruct_fn(),
            (np.ndarray, (0,), b"b"),
            (1, (len(self.data) // 4,), np.dtype("f4"), False, self.data),
        )


def _grow_frame(data: bytes, extra: bytes) -> bytes:
    """Appends ``extra`` inside the single protocol-4 frame of ``data`` (after its STOP)."""
    assert data[2:3] == b"\x95" and len(data) == 11 + struct.unpack("<Q", data[3:11])[0]
    return data[:3] + struct.pack("<Q", len(data) - 11 + len(extra)) + data[11:] + extra


def _malformed_pickles() -> dict:
    blob = b"\0" * 65536  # one object: the pickler writes it once and refers back to it
    return {
        "truncated": (pickle.dumps({"w": np.ones(8, np.float32)}, protocol=4)[:-20], r"byte offset \d+"),
        "trailing": (
            pickle.dumps({"w": np.ones(2, np.float32)}, protocol=4) + b"junk",
            r"4 bytes after the end of the pickle",
        ),
        "trailing_in_frame": (
            _grow_frame(pickle.dumps({"w": np.ones(2, np.float32)}, protocol=4), b"junk"),
            r"4 bytes after the end of the pickle",
        ),
        "huge_bytearray8": (b"\x80\x05\x96" + struct.pack("<Q", 2**40), r"BYTEARRAY8 of 1099511627776 bytes"),
        "huge_binbytes8": (b"\x80\x04\x8e" + struct.pack("<Q", 2**62), r"declares 4611686018427387904 bytes"),
        "out_of_band_buffer": (
            pickle.dumps({"w": np.ones(4)}, protocol=5, buffer_callback=lambda b: False),
            r"not a valid pickle",
        ),
        "not_a_dict": (pickle.dumps([np.ones(2)], protocol=4), r"holds a list, expected a dict"),
        "non_array_value": (pickle.dumps({"epoch": 3}, protocol=4), r"entry 'epoch' is a int, not an array"),
        "int_key": (pickle.dumps({3: np.ones(2)}, protocol=4), r"key 3 is a int"),
        "reused_data": (
            pickle.dumps({f"k{i}": _SharedBytesArray(blob) for i in range(40)}, protocol=4),
            r"builds more array data than a file of",
        ),
        "empty": (b"", r"byte offset 0: the pickle declares 1 bytes but only 0 remain"),
    }


@pytest.mark.parametrize("case", sorted(_malformed_pickles()))
def test_malformed_pickles(tmp_path: Path, case: str) -> None:
    data, pattern = _malformed_pickles()[case]
    path = tmp_path / f"{case}.pdparams"
    path.write_bytes(data)
    with pytest.raises(WeightsFormatError, match=rf"{case}\.pdparams: .*{pattern}"):
        load_pdparams(path)


# --- safetensors -----------------------------------------------------------------------------------


def test_safetensors_written_by_paddle(paddle_files: Path) -> None:
    want = _npz(paddle_files / "paddle.safetensors.npz")  # bf16 as Paddle casts it to float32
    for mmap in (True, False):
        got = load_safetensors(paddle_files / "paddle.safetensors", mmap=mmap)
        _assert_same(got, want)
        assert got["weight"].flags.writeable is not mmap  # mapped views are read-only
        assert got["bf"].flags.writeable  # BF16 widened to float32 is a fresh array


def _all_dtypes() -> dict:
    rng = np.random.default_rng(1)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f16": rng.standard_normal(5).astype(np.float16),
        "f64": rng.standard_normal((2, 2, 2)),
        "i8": np.arange(-3, 3, dtype=np.int8),
        "u8": np.arange(6, dtype=np.uint8),
        "i16": np.arange(4, dtype=np.int16),
        "u16": np.arange(4, dtype=np.uint16),
        "i32": np.arange(4, dtype=np.int32),
        "u32": np.arange(4, dtype=np.uint32),
        "i64": np.arange(4, dtype=np.int64),
        "u64": np.arange(4, dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
    }


def test_safetensors_interoperates_with_the_safetensors_package(tmp_path: Path) -> None:
    import safetensors.numpy as st  # a dependency of paddlepaddle
    from safetensors import safe_open

    tensors = _all_dtypes()
    st.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata={"source": "test"})
    got, meta = load_safetensors(tmp_path / "theirs.safetensors", with_metadata=True)
    _assert_same(got, tensors)
    assert meta == {"source": "test"}

    save_safetensors(tensors, tmp_path / "ours.safetensors", metadata={"sha256": "ab" * 32})
    _assert_same(st.load_file(str(tmp_path / "ours.safetensors")), tensors)
    with safe_open(str(tmp_path / "ours.safetensors"), framework="np") as fh:
        assert fh.metadata() == {"sha256": "ab" * 32}
    mapped = load_safetensors(tmp_path / "ours.safetensors")
    assert not mapped["f32"].flags.writeable  # zero-copy view of the mapping
    assert load_safetensors(tmp_path / "ours.safetensors", mmap=False)["f32"].flags.writeable
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer leaves no temporary behind


def _st(header, data: bytes = b"", size: int = None) -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(blob) if size is None else size) + blob + data


def _t(dtype: str, shape, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


BAD_SAFETENSORS = {
    "short": (b"\x01\x00", r"expected an 8-byte header size"),
    "header_past_eof": (_st(b"{}", size=1000), r"header size 1000 exceeds the 2 bytes after it"),
    "huge_header": (_st(b"{}", size=2**63), r"header size 9223372036854775808 exceeds"),
    "not_json": (_st(b"{ab"), r"not valid UTF-8 JSON"),
    "not_utf8": (_st(b'{"\xff":1}'), r"not valid UTF-8 JSON"),
    "not_object": (_st(b"[1, 2]"), r"must be a JSON object, found list"),
    "duplicate_key": (
        _st(
            b'{"a":'
            + json.dumps(_t("F32", [1], 0, 4)).encode()
            + b',"a":'
            + json.dumps(_t("F32", [1], 0, 4)).encode()
            + b"}",
            b"\0" * 4,
        ),
        r"duplicate key 'a'",
    ),
    "fp8_dtype": (_st({"a": _t("F8_E4M3", [1], 0, 1)}, b"\0"), r"dtype 'F8_E4M3' not supported"),
    "negative_shape": (_st({"a": _t("F32", [-1], 0, 4)}, b"\0" * 4), r"non-negative ints"),
    "bool_in_shape": (_st({"a": _t("F32", [True], 0, 4)}, b"\0" * 4), r"non-negative ints"),
    "offsets_past_end": (_st({"a": _t("F32", [25], 0, 100)}, b"\0" * 8), r"outside the data buffer \[0, 8\]"),
    "size_mismatch": (
        _st({"a": _t("F32", [3], 0, 8)}, b"\0" * 8),
        r"F32 \[3\] needs 12 bytes, data_offsets span 8",
    ),
    "overlap": (_st({"a": _t("F32", [2], 0, 8), "b": _t("F32", [2], 4, 12)}, b"\0" * 12), r"'b' overlaps"),
    "hole": (_st({"a": _t("F32", [1], 0, 4), "b": _t("F32", [1], 8, 12)}, b"\0" * 12), r"hole of 4 bytes"),
    "trailing": (_st({"a": _t("F32", [1], 0, 4)}, b"\0" * 8), r"4 bytes after the last tensor"),
    "bool_byte": (_st({"a": _t("BOOL", [2], 0, 2)}, b"\x01\x05"), r"BOOL byte not 0 or 1"),
    "metadata_not_str": (_st({"__metadata__": {"k": 1}}), r"__metadata__ must map str to str"),
    "extra_field": (_st({"a": dict(_t("F32", [1], 0, 4), x=1)}, b"\0" * 4), r"expected keys dtype, shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAFETENSORS))
def test_malformed_safetensors(tmp_path: Path, case: str) -> None:
    data, pattern = BAD_SAFETENSORS[case]
    path = tmp_path / f"bad_{case}.safetensors"
    path.write_bytes(data)
    for mmap in (True, False):
        with pytest.raises(
            WeightsFormatError, match=rf"bad_{case}\.safetensors: byte offset \d+: .*{pattern}"
        ):
            load_safetensors(path, mmap=mmap)


def test_save_safetensors_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    with pytest.raises(WeightsFormatError, match="dtype object"):
        save_safetensors({"a": np.array([1, "x"], dtype=object)}, tmp_path / "x.safetensors")
    with pytest.raises(WeightsFormatError, match="metadata must map str to str"):
        save_safetensors({"a": np.ones(1)}, tmp_path / "x.safetensors", metadata={"k": 1})
    assert not list(tmp_path.iterdir())


# --- read_weights: detection from content ----------------------------------------------------------


def test_read_weights_detects_each_format_whatever_the_name(paddle_files: Path, tmp_path: Path) -> None:
    shutil.copy(paddle_files / "mv1.pdparams", tmp_path / "weights.bin")
    src = read_weights(tmp_path / "weights.bin")
    assert src.format == "pdparams" and "conv1.0.weight" in src.tensors
    assert src.metadata["structured_to_parameter_name"]["conv1.0.weight"]
    shutil.copy(paddle_files / "paddle.safetensors", tmp_path / "weights.pdparams")
    src = read_weights(tmp_path / "weights.pdparams")
    assert src.format == "safetensors" and sorted(src.tensors) == ["bf", "bias", "weight"]
    assert src.path == tmp_path / "weights.pdparams"


def test_read_weights_refuses_archives_with_advice(paddle_files: Path, tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "M.tar", "w") as tar:
        tar.add(paddle_files / "Mini_pretrained" / "fc_0.b_0", arcname="Mini_pretrained/fc_0.b_0")
    with zipfile.ZipFile(tmp_path / "M.zip", "w") as zf:
        zf.write(paddle_files / "Mini_pretrained" / "fc_0.b_0", "Mini_pretrained/fc_0.b_0")
    (tmp_path / "M.tar.gz").write_bytes(gzip.compress((tmp_path / "M.tar").read_bytes()))
    for name, kind in (("M.tar", "tar"), ("M.zip", "zip"), ("M.tar.gz", "gzip")):
        with pytest.raises(WeightsFormatError, match=rf"{name}: this is a {kind} archive.*Unpack it first"):
            read_weights(tmp_path / name)


def test_read_weights_unknown_content_lists_every_format_tried(tmp_path: Path) -> None:
    (tmp_path / "noise").write_bytes(b"GIF89a" + bytes(range(256)) * 2)
    with pytest.raises(
        WeightsFormatError,
        match=r"noise: not a recognised weight file\. Tried: pdparams: .*"
        r"; safetensors: .*; fluid variable file: .*; archive: ",
    ) as info:
        read_weights(tmp_path / "noise")
    assert "474946" in str(info.value)  # shows the bytes it found
    with pytest.raises(WeightsFormatError, match=r"missing: no such weight file"):
        read_weights(tmp_path / "missing")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(WeightsFormatError, match=r"empty: not a recognised weight file.*empty file"):
        read_weights(tmp_path / "empty")


def test_read_weights_hostile_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    for protocol in (0, 4):  # protocol 0 has no PROTO opcode: not detected as pdparams at all
        (tmp_path / "evil").write_bytes(
            pickle.dumps({"w": _Reduce(os.system, f"touch {marker}")}, protocol=protocol)
        )
        with pytest.raises(
            PaddleHubClsError, match="posix.system" if protocol else "not a recognised weight file"
        ):
            read_weights(tmp_path / "evil")
    assert not marker.exists()
