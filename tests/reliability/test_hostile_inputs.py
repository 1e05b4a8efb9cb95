"""Battery 4: hostile artifacts delivered through the paths a user really takes.

Each case builds one hostile input and hands it over the way a user would meet it:

- ``download``: an extra registry (``PADDLEHUB_CLS_REGISTRY``) names it, the 127.0.0.1 server
  serves it with a matching checksum (a compromised mirror or publisher), and
  ``paddlehub_cls.download()`` or ``load_model()`` fetches it;
- ``local``: ``load_model(..., weights=path)`` on a file or directory the user was given;
- ``registry``: ``PADDLEHUB_CLS_REGISTRY`` points at a broken registry file;
- ``bundle``: ``cache_cli.import_bundle`` (``paddlehub-cls cache import``) of a forged bundle.

Every case must raise its specific error with a message naming what was wrong, and afterwards:
the marker files the payloads try to create do not exist, the victim file and directory are
intact, nothing outside the cache changed, and the cache holds no extraction, no converted file
and nothing unverified (:func:`_support.audit_cache`).
"""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import pytest
from _support import (
    audit_cache,
    count,
    model_entry,
    sha256,
    snapshot,
    tar_of,
    variant_entry,
    write_registry,
    zip_of,
)
from httpserver import FileServer

import paddlehub_cls
from paddlehub_cls import cache_cli
from paddlehub_cls.errors import (
    ChecksumError,
    RegistryError,
    UnsafeArchiveError,
    UnsafeWeightsError,
    WeightsFormatError,
)
from paddlehub_cls.formats.fluid import encode_var

ROOT = "Evil_pretrained"
GOOD_VAR = encode_var(np.ones((2, 3), np.float32))


@dataclass
class H:
    """The scene of one case: where payloads aim, and how to deliver an input."""

    tmp: Path
    cache: Path
    server: FileServer
    monkeypatch: pytest.MonkeyPatch

    @property
    def outside(self) -> Path:
        return self.tmp / "outside"

    @property
    def marker(self) -> Path:
        return self.outside / "MARKER"

    @property
    def inputs(self) -> Path:
        return self.tmp / "in"

    def serve(self, tag: str, data: bytes, container: str, **model: Any) -> str:
        """Publish ``data`` as weights ``Evil.<tag>`` (pinned to its sha256); returns the name."""
        suffix = {"fluid-tar": ".tar", "fluid-zip": ".zip", "pdparams": ".pdparams"}[container]
        url = self.server.set_file(f"/evil/{tag}{suffix}", data)
        extra = {"archive_root": ROOT} if container.startswith("fluid") else {}
        entry = model_entry({tag: variant_entry(url, data, container, **extra)}, **model)
        write_registry(self.inputs / "registry.json", {"Evil": entry})
        self.monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(self.inputs / "registry.json"))
        return f"Evil.{tag}"

    def download(self, tag: str, data: bytes, container: str) -> Callable[[], Any]:
        name = self.serve(tag, data, container)
        return lambda: paddlehub_cls.download(name)

    def load_registry_model(self, tag: str, data: bytes, container: str) -> Callable[[], Any]:
        name = self.serve(tag, data, container, architecture="mobilenet_v1", family="mobilenet_v1")
        return lambda: paddlehub_cls.load_model(name)

    def local(self, name: str, data: bytes) -> Callable[[], Any]:
        path = self.inputs / name
        path.write_bytes(data)
        return lambda: paddlehub_cls.load_model("MobileNetV1", weights=path)

    def local_dir(self, files: Dict[str, Any]) -> Callable[[], Any]:
        d = self.inputs / ROOT
        d.mkdir()
        for name, content in files.items():
            if callable(content):
                content(d / name)
            else:
                (d / name).write_bytes(content)
        return lambda: paddlehub_cls.load_model("MobileNetV1", weights=d)

    def registry_file(self, text: str) -> Callable[[], Any]:
        path = self.inputs / "registry.json"
        path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
        self.monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(path))
        return lambda: paddlehub_cls.list_models()

    def bundle(self, data: bytes) -> Callable[[], Any]:
        path = self.inputs / "weights.tar"
        path.write_bytes(data)
        return lambda: cache_cli.import_bundle(path)


Case = Tuple[Callable[[], Any], type, Sequence[str]]
CASES: Dict[str, Callable[[H], Case]] = {}


def case(kind: str) -> Callable[[Callable[[H], Case]], Callable[[H], Case]]:
    def register(fn: Callable[[H], Case]) -> Callable[[H], Case]:
        CASES[f"{kind}-{fn.__name__.replace('_', '-')}"] = fn
        return fn

    return register


def special(kind: bytes, linkname: str = "", **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo("x")
    info.type, info.linkname = kind, linkname
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


# --------------------------------------------------------------------------- archives


@case("tar")
def dotdot(h: H) -> Case:
    data = tar_of([(f"{ROOT}/w", GOOD_VAR), (f"{ROOT}/../../../outside/MARKER", b"pwned")])
    return h.download("dotdot", data, "fluid-tar"), UnsafeArchiveError, ["../../../outside/MARKER", "'..'"]


@case("tar")
def absolute_path(h: H) -> Case:
    data = tar_of([(f"{ROOT}/w", GOOD_VAR), (str(h.marker), b"pwned")])
    return h.download("abs", data, "fluid-tar"), UnsafeArchiveError, [str(h.marker), "absolute path"]


@case("tar")
def symlink_escape_then_write_through(h: H) -> Case:
    data = tar_of([(f"{ROOT}/link", special(tarfile.SYMTYPE, str(h.outside))), (f"{ROOT}/link/MARKER", b"x")])
    return h.download("symlink", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/link", "symbolic link"]


@case("tar")
def hardlink_escape_then_overwrite(h: H) -> Case:
    victim = str(h.outside / "victim.txt")
    data = tar_of([(f"{ROOT}/v", special(tarfile.LNKTYPE, victim)), (f"{ROOT}/v", b"overwritten")])
    return h.download("hardlink", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/v", "hard link", victim]


@case("tar")
def relative_symlink_escape(h: H) -> Case:
    data = tar_of([(f"{ROOT}/up", special(tarfile.SYMTYPE, "../../../outside")), (f"{ROOT}/up/MARKER", b"x")])
    return h.local("rel.tar", data), UnsafeArchiveError, [f"{ROOT}/up", "symbolic link"]


@case("tar")
def char_device(h: H) -> Case:
    data = tar_of([(f"{ROOT}/mem", special(tarfile.CHRTYPE, devmajor=1, devminor=1))])
    return h.download("chardev", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/mem", "device file"]


@case("tar")
def block_device(h: H) -> Case:
    data = tar_of([(f"{ROOT}/sda", special(tarfile.BLKTYPE, devmajor=8, devminor=0))])
    return h.download("blockdev", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/sda", "device file"]


@case("tar")
def fifo(h: H) -> Case:
    data = tar_of([(f"{ROOT}/w", GOOD_VAR), (f"{ROOT}/pipe", special(tarfile.FIFOTYPE))])
    return h.download("fifo", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/pipe", "FIFO"]


@case("tar")
def backslash_traversal(h: H) -> Case:
    data = tar_of([(f"{ROOT}\\..\\..\\..\\outside\\MARKER", b"x")])
    return h.download("backslash", data, "fluid-tar"), UnsafeArchiveError, ["backslash"]


@case("tar")
def duplicate_member_overwrite(h: H) -> Case:
    data = tar_of([(f"{ROOT}/conv1_weights", GOOD_VAR), (f"{ROOT}/conv1_weights", b"replaced later")])
    return (
        h.download("dup", data, "fluid-tar"),
        UnsafeArchiveError,
        [f"{ROOT}/conv1_weights", "appears twice"],
    )


@case("tar")
def gzip_member_claiming_5_gib(h: H) -> Case:
    info = tarfile.TarInfo(f"{ROOT}/huge")
    info.size = 5 << 30
    raw = info.tobuf(format=tarfile.GNU_FORMAT) + bytes(4096)  # the header, then a little of the "data"
    data = gzip.compress(raw)
    return h.download("bomb-gz", data, "fluid-tar"), UnsafeArchiveError, [f"{ROOT}/huge", "5368709120 bytes"]


@case("tar")
def ten_thousand_and_one_members(h: H) -> Case:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(10_001):
            tf.addfile(tarfile.TarInfo(f"{ROOT}/f{i}"), io.BytesIO(b""))
    return (
        h.download("many", buf.getvalue(), "fluid-tar"),
        UnsafeArchiveError,
        [f"{ROOT}/f10000", "10000 members"],
    )


@case("zip")
def dotdot_path(h: H) -> Case:
    data = zip_of([(f"{ROOT}/w", GOOD_VAR), ("../../../outside/MARKER", b"x")])
    return h.download("zdotdot", data, "fluid-zip"), UnsafeArchiveError, ["'..'"]


@case("zip")
def absolute_member(h: H) -> Case:
    data = zip_of([(str(h.marker), b"x")])
    return h.download("zabs", data, "fluid-zip"), UnsafeArchiveError, ["absolute path"]


@case("zip")
def symlink_member(h: H) -> Case:
    info = zipfile.ZipInfo(f"{ROOT}/link")
    info.external_attr = (0o120777) << 16
    data = zip_of([(info, str(h.outside).encode())])
    return h.local("link.zip", data), UnsafeArchiveError, [f"{ROOT}/link", "symbolic link"]


ZERO_GIB_CRC = 0x5B64C2B0  # zlib.crc32 of 2**30 zero bytes


def overlapping_zip_bomb(entries: int = 17) -> bytes:
    """One deflate stream of 1 GiB of zeros (1 MB) that ``entries`` central records all point at."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)  # a self-contained run of blocks
    stream = piece * 1024 + b"\x03\x00"  # 1024 x 1 MiB, then an empty final block
    first = f"{ROOT}/zeros0".encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, ZERO_GIB_CRC, len(stream), 1 << 30, len(first), 0
    )
    body = local + first + stream
    central = b""
    for i in range(entries):
        name = f"{ROOT}/zeros{i}".encode()
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, ZERO_GIB_CRC, len(stream), 1 << 30,
            len(name), 0, 0, 0, 0, 0o100644 << 16, 0,
        ) + name  # fmt: skip
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), len(body), 0)
    return body + central + end


@case("zip")
def bomb_17_gib_in_1_mb(h: H) -> Case:
    data = overlapping_zip_bomb()
    assert len(data) < 2 << 20
    return (
        h.download("zbomb", data, "fluid-zip"),
        UnsafeArchiveError,
        [f"{ROOT}/zeros16", "over the limit of"],
    )


@case("zip")
def member_lying_about_its_size(h: H) -> Case:
    raw = bytearray(zip_of([(f"{ROOT}/w", bytes(8 << 20))]))
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[local + 22 : local + 26] = (100).to_bytes(4, "little")
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")
    return h.download("zliar", bytes(raw), "fluid-zip"), UnsafeArchiveError, [f"{ROOT}/w"]


# --------------------------------------------------------------------------- pickles


class Reduce:
    """Pickles as ``fn(*args)``: what a hostile ``.pdparams`` asks the loader to call."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return self.fn, self.args

    def __call__(self, *args: Any) -> Any:  # lets one Reduce be the callable of another (never called here)
        raise AssertionError("test payloads are never called by the tests themselves")


def evil_pickle(payload: Any, protocol: int = 2) -> bytes:
    return pickle.dumps({"conv1.weight": np.ones(3, np.float32), "head": payload}, protocol=protocol)


@case("pickle")
def os_system(h: H) -> Case:
    data = evil_pickle(Reduce(os.system, f"touch {h.marker}"))
    return (
        h.local("system.pdparams", data),
        UnsafeWeightsError,
        [f"'{os.system.__module__}.system'", "byte offset", "allowlist"],
    )


@case("pickle")
def subprocess_popen(h: H) -> Case:
    data = evil_pickle(Reduce(subprocess.Popen, ["touch", str(h.marker)]))
    return h.local("popen.pdparams", data), UnsafeWeightsError, ["'subprocess.Popen'"]


@case("pickle")
def builtins_eval(h: H) -> Case:
    data = evil_pickle(Reduce(builtins.eval, f"open({str(h.marker)!r}, 'w').write('x')"))
    return h.local("eval.pdparams", data), UnsafeWeightsError, ["'builtins.eval'"]


@case("pickle")
def builtins_exec(h: H) -> Case:
    data = evil_pickle(Reduce(builtins.exec, f"open({str(h.marker)!r}, 'w').write('x')"), protocol=4)
    return h.local("exec.pdparams", data), UnsafeWeightsError, ["'builtins.exec'"]


@case("pickle")
def reduce_to_shutil_rmtree(h: H) -> Case:
    data = evil_pickle(Reduce(shutil.rmtree, str(h.outside / "victim_dir")), protocol=5)
    return h.local("rmtree.pdparams", data), UnsafeWeightsError, ["'shutil.rmtree'"]


@case("pickle")
def getattr_import_chain(h: H) -> Case:
    system = Reduce(getattr, Reduce(builtins.__import__, "os"), "system")
    data = evil_pickle(Reduce(system, f"touch {h.marker}"))
    return h.local("getattr.pdparams", data), UnsafeWeightsError, ["'builtins.getattr'"]


@case("pickle")
def method_of_a_path(h: H) -> Case:
    data = evil_pickle(Reduce(pathlib.Path.write_text, h.marker, "x"), protocol=4)
    return h.local("method.pdparams", data), UnsafeWeightsError, ["'pathlib.Path.write_text'"]


@case("pickle")
def nested_pickle_loads(h: H) -> Case:
    inner = pickle.dumps(Reduce(os.system, f"touch {h.marker}"), protocol=2)
    data = evil_pickle(Reduce(pickle.loads, inner))
    return h.local("nested.pdparams", data), UnsafeWeightsError, ["pickle.loads'"]


@case("pickle")
def numpy_object_array(h: H) -> Case:
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = Reduce(os.system, f"touch {h.marker}"), 1
    data = pickle.dumps({"conv1.weight": arr}, protocol=2)
    return (
        h.local("object.pdparams", data),
        UnsafeWeightsError,
        ["object.pdparams", "dtype('O')", "object arrays"],
    )


@case("pickle")
def os_system_from_a_mirror(h: H) -> Case:
    data = evil_pickle(Reduce(os.system, f"touch {h.marker}"))
    return (
        h.load_registry_model("pickle", data, "pdparams"),
        UnsafeWeightsError,
        [f"'{os.system.__module__}.system'", "blobs/sha256"],
    )


# --------------------------------------------------------------------------- 2019 variable files


def var(
    version: int = 0,
    lod: int = 0,
    tversion: int = 0,
    desc_size: Any = None,
    desc: bytes = b"",
    data: bytes = b"",
) -> bytes:
    return (
        struct.pack("<IQIi", version, lod, tversion, len(desc) if desc_size is None else desc_size)
        + desc
        + data
    )


def varint(v: int) -> bytes:
    from paddlehub_cls.formats.fluid import _encode_varint

    return _encode_varint(v)


def fluid_case(name: str, content: Any, *fragments: str) -> Callable[[H], Case]:
    def build(h: H) -> Case:
        return h.local_dir({"conv1_weights": GOOD_VAR, name: content}), WeightsFormatError, [name, *fragments]

    return build


CASES["var-truncated-data"] = fluid_case("fc_0.w_0", GOOD_VAR[:-5], "offset")
CASES["var-negative-desc-size"] = fluid_case(
    "fc_0.w_0", var(desc_size=-1, desc=b"\x08\x05"), "TensorDesc size"
)
CASES["var-huge-desc-size"] = fluid_case(
    "fc_0.w_0", var(desc_size=2**31 - 1, desc=b"\x08\x05"), "TensorDesc size"
)
CASES["var-huge-dims"] = fluid_case("fc_0.w_0", var(desc=b"\x08\x05\x10" + varint(2**40)), "offset")
CASES["var-wrong-lodtensor-version"] = fluid_case("fc_0.w_0", var(version=7, desc=b"\x08\x05"), "version")
CASES["var-wrong-tensor-version"] = fluid_case("fc_0.w_0", var(tversion=1, desc=b"\x08\x05"), "version")
CASES["var-dims-product-overflows"] = fluid_case(
    "fc_0.w_0", var(desc=b"\x08\x05" + (b"\x10" + varint(2**32)) * 3 + b"\x10\x02"), "offset"
)
CASES["var-negative-dim"] = fluid_case("fc_0.w_0", var(desc=b"\x08\x05\x10" + varint(-5)), "offset")
CASES["var-unknown-dtype"] = fluid_case("fc_0.w_0", var(desc=b"\x08\x63\x10\x01", data=b"\0" * 4), "99")
CASES["var-huge-lod-level"] = fluid_case("fc_0.w_0", var(lod=2**63, desc=b"\x08\x05"), "lod_level")
CASES["var-fifo-in-the-directory"] = fluid_case("fc_0.w_0", lambda p: os.mkfifo(p), "FIFO")
CASES["var-symlink-out-of-the-directory"] = fluid_case(
    "fc_0.w_0", lambda p: p.symlink_to(p.parent.parent.parent / "outside" / "victim.txt"), "symlink"
)


@case("var")
def truncated_file_inside_a_downloaded_archive(h: H) -> Case:
    data = tar_of([(f"{ROOT}/conv1_weights", GOOD_VAR), (f"{ROOT}/fc_0.w_0", GOOD_VAR[:-1])])
    return h.load_registry_model("badvar", data, "fluid-tar"), WeightsFormatError, ["fc_0.w_0", "offset"]


# --------------------------------------------------------------------------- safetensors


@case("safetensors")
def header_larger_than_the_file(h: H) -> Case:
    data = struct.pack("<Q", 10**6) + b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    return h.local("big.safetensors", data), WeightsFormatError, ["big.safetensors"]


@case("safetensors")
def overlapping_tensors(h: H) -> Case:
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        }
    ).encode()
    data = struct.pack("<Q", len(header)) + header + bytes(12)
    return h.local("overlap.safetensors", data), WeightsFormatError, ["overlap.safetensors"]


# --------------------------------------------------------------------------- registry files


def registry_text(models: Any) -> str:
    return json.dumps({"schema_version": 1, "models": models})


def evil_model(**variant_over: Any) -> Dict[str, Any]:
    v = {"urls": ["https://example.org/w.pdparams"], "checksum": "sha256:" + "ab" * 32}
    v.update(container="pdparams", layout="native")
    v.update(variant_over)
    return model_entry({"w": v})


def registry_case(text: Any, *fragments: str) -> Callable[[H], Case]:
    def build(h: H) -> Case:
        return h.registry_file(text), RegistryError, [str(h.inputs / "registry.json"), *fragments]

    return build


_no_family = model_entry({})
del _no_family["family"]
CASES["registry-missing-field"] = registry_case(registry_text({"Evil": _no_family}), "'family'", "missing")
CASES["registry-wrong-type"] = registry_case(
    registry_text({"Evil": model_entry({}, num_classes="1000")}), "'num_classes'"
)
CASES["registry-ftp-url"] = registry_case(registry_text({"Evil": evil_model(urls=["ftp://x.org/w"])}), "ftp")
CASES["registry-javascript-url"] = registry_case(
    registry_text({"Evil": evil_model(urls=["javascript:alert(1)"])}), "javascript"
)
CASES["registry-relative-url"] = registry_case(
    registry_text({"Evil": evil_model(urls=["../../outside/MARKER"])}), "'urls'"
)
CASES["registry-malformed-checksum"] = registry_case(
    registry_text({"Evil": evil_model(checksum="sha256:xyz")}), "'checksum'", "sha256:xyz"
)
CASES["registry-duplicate-names"] = registry_case(
    '{"schema_version": 1, "models": {"Evil": %s, "Evil": %s}}'
    % (json.dumps(evil_model()), json.dumps(evil_model())),
    "'Evil' appears twice",
)
CASES["registry-names-differing-in-case"] = registry_case(
    registry_text({"Evil": evil_model(), "EVIL": evil_model()}), "differ only in case"
)
CASES["registry-archive-root-escaping"] = registry_case(
    registry_text(
        {"Evil": evil_model(container="fluid-tar", layout="fluid2019", archive_root="../../outside")}
    ),
    "'archive_root'",
)
CASES["registry-not-utf8"] = registry_case(b'{"schema_version": 1, "models": {"\xff\xfe": {}}}', "UTF-8")
CASES["registry-nested-100000-deep"] = registry_case(
    '{"schema_version": 1, "models": {"Evil": ' + "[" * 100_000 + "]" * 100_000 + "}}", "nested"
)


# --------------------------------------------------------------------------- bundles


def bundle_of(entries: List[Dict[str, Any]], members: List[Tuple[str, Any]]) -> bytes:
    manifest = json.dumps({"format": "paddlehub_cls-bundle", "version": 1, "entries": entries}).encode()
    return tar_of([("manifest.json", manifest)] + members)


BLOB = b"weights" * 1000
ENTRY = {"sha256": sha256(BLOB), "size": len(BLOB), "urls": ["https://example.org/w"], "trust": "pinned"}


@case("bundle")
def member_escaping_the_cache(h: H) -> Case:
    data = bundle_of([ENTRY], [(f"blobs/sha256/{ENTRY['sha256']}", BLOB), ("../../outside/MARKER", b"x")])
    return h.bundle(data), UnsafeArchiveError, ["../../outside/MARKER", "unexpected"]


@case("bundle")
def blob_that_is_a_symlink(h: H) -> Case:
    data = bundle_of([ENTRY], [(f"blobs/sha256/{ENTRY['sha256']}", special(tarfile.SYMTYPE, "/etc/passwd"))])
    return h.bundle(data), UnsafeArchiveError, ["not a regular file"]


@case("bundle")
def blob_with_other_bytes(h: H) -> Case:
    data = bundle_of([ENTRY], [(f"blobs/sha256/{ENTRY['sha256']}", b"X" * len(BLOB))])
    return h.bundle(data), ChecksumError, [ENTRY["sha256"], "Nothing was imported"]


@case("bundle")
def malformed_checksum_in_the_manifest(h: H) -> Case:
    data = bundle_of([{**ENTRY, "checksum": "crc32:1234"}], [(f"blobs/sha256/{ENTRY['sha256']}", BLOB)])
    return h.bundle(data), UnsafeArchiveError, ["crc32:1234", "nothing was imported"]


@case("bundle")
def manifest_fields_of_the_wrong_type(h: H) -> Case:
    entry = {**ENTRY, "trust": 5, "url": ["x"], "filename": {"a": 1}, "sources": 7}
    data = bundle_of([entry], [(f"blobs/sha256/{ENTRY['sha256']}", BLOB)])
    return h.bundle(data), UnsafeArchiveError, ["manifest entry 0", "nothing was imported"]


@case("bundle")
def truncated_bundle(h: H) -> Case:
    data = bundle_of([ENTRY], [(f"blobs/sha256/{ENTRY['sha256']}", BLOB)])
    return h.bundle(data[:2000]), UnsafeArchiveError, ["weights.tar", "nothing was imported"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_refused(
    name: str, tmp_path: Path, cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    count("hostile artifacts")
    h = H(tmp_path, cache_env, http_server, monkeypatch)
    h.inputs.mkdir()
    (h.outside / "victim_dir").mkdir(parents=True)
    (h.outside / "victim_dir" / "keep").write_text("keep")
    (h.outside / "victim.txt").write_text("original")
    action, error, fragments = CASES[name](h)
    before = snapshot(tmp_path, exclude=[cache_env, h.inputs])

    with pytest.raises(error) as err:
        action()
    msg = str(err.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in: {msg[:2000]}"

    assert not h.marker.exists(), "a payload ran or an entry escaped"
    assert (h.outside / "victim.txt").read_text() == "original"
    assert (h.outside / "victim_dir" / "keep").read_text() == "keep"
    assert snapshot(tmp_path, exclude=[cache_env, h.inputs]) == before
    audit = audit_cache(cache_env)
    # Verified bytes that turn out hostile or unreadable are quarantined: no blob, unpacked
    # directory or conversion of them is left where a good artifact is expected.
    assert audit.problems == [] and audit.blobs == [] and audit.unpacked == [] and audit.converted == []
    quarantined = sorted(p.name for p in (cache_env / "quarantine").glob("*") if not p.name.endswith(".json"))
    for entry in quarantined:
        reason = json.loads((cache_env / "quarantine" / f"{entry}.json").read_text())["reason"]
        assert any(fragment in reason for fragment in fragments), reason
    assert [p for p in audit.leftovers if not p.startswith("tmp/") or "import-" in p] == []
    if name.startswith(("registry-", "bundle-")) or "local" in name:
        assert http_server.requests == []
    count("hostile artifacts", outcome="passed")


def test_at_least_25_hostile_artifacts() -> None:
    kinds: Dict[str, int] = {}
    for name in CASES:
        kinds[name.split("-")[0]] = kinds.get(name.split("-")[0], 0) + 1
    assert len(CASES) >= 25 and set(kinds) == {
        "tar",
        "zip",
        "pickle",
        "var",
        "safetensors",
        "registry",
        "bundle",
    }
