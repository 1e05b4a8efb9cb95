"""Battery 5: fuzzing what ``tests/test_formats_fuzz.py`` and ``tests/test_archive.py`` do not.

Those cover the three weight readers byte by byte (300 examples each) and archive bytes (150 x 3).
This file adds, with hypothesis, derandomised and bounded (``PADDLEHUB_CLS_FUZZ_EXAMPLES`` sets the
examples per target):

- the registry validator, through ``PADDLEHUB_CLS_REGISTRY`` and ``load_registry()``;
- bundle import (``cache import``): forged manifests and members, and damaged bundle bytes;
- ``read_weights``, the format detection in front of every reader, on inputs of every format;
- archive extraction with hostile member lists (names, types, sizes) rather than damaged bytes;
- the cache itself: damaged stamps, refs and partial downloads under ``hub.fetch``.

Every input must end in a result or the package's own error (``PaddleHubClsError``), never
another exception; a watchdog turns a hang into a failure, and tracemalloc bounds the memory of
the readers. Results are checked too: an import or fetch that succeeds leaves a cache that passes
:func:`_support.audit_cache`, and extraction never writes outside its directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tarfile
import tracemalloc
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import hypothesis.strategies as st
import numpy as np
import pytest
import test_formats_fuzz as readers_fuzz
from _support import audit_cache, count, md5, model_entry, sha256, snapshot, tar_of, variant_entry
from httpserver import FileServer
from hypothesis import HealthCheck, given, settings

from paddlehub_cls import archive, hub
from paddlehub_cls._bundle import import_bundle
from paddlehub_cls.errors import ChecksumError, PaddleHubClsError
from paddlehub_cls.formats import read_weights, save_safetensors
from paddlehub_cls.registry import load_registry

DEFAULTS = {"registry": 300, "bundle": 200, "read_weights": 300, "archive_members": 200, "cache_state": 100}
EXAMPLES = {k: int(os.environ.get("PADDLEHUB_CLS_FUZZ_EXAMPLES", v)) for k, v in DEFAULTS.items()}
WATCHDOG_S = 20  # one example taking this long is a hang
PEAK_BYTES_LIMIT = 16 << 20


def fuzz_settings(target: str) -> settings:
    return settings(
        max_examples=EXAMPLES[target],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@contextlib.contextmanager
def watchdog(seconds: int = WATCHDOG_S) -> Iterator[None]:
    def hang(signum: int, frame: Any) -> None:
        raise AssertionError(f"an example ran for more than {seconds}s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class Examples:
    """Counts the examples of one target for the battery summary."""

    def __init__(self, kind: str) -> None:
        self.kind, self.n = f"fuzz examples ({kind})", 0

    def __enter__(self) -> "Examples":
        return self

    def tick(self) -> None:
        self.n += 1

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        count(self.kind, self.n)
        if exc_type is None:
            count(self.kind, self.n, outcome="passed")


def own_error_or_result(fn: Callable[[], Any]) -> Any:
    """``fn()``, or None when it raised the package's own error; anything else propagates."""
    with watchdog():
        try:
            return fn()
        except PaddleHubClsError:
            return None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` with a few values replaced, keys removed or added, anywhere in the tree."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 4))):
        node = doc
        for _ in range(draw(st.integers(0, 6))):
            children = (
                list(node.items())
                if isinstance(node, dict)
                else list(enumerate(node)) if isinstance(node, list) else []
            )
            containers = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
            if not containers:
                break
            node = draw(st.sampled_from(containers))[1]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                node[key] = draw(json_values)
            elif action == "delete":
                del node[key]
            else:
                node[draw(st.text(max_size=10))] = draw(json_values)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(json_values)
    return doc


# --------------------------------------------------------------------------- registry


REGISTRY_SEED = {
    "schema_version": 1,
    "models": {
        "FuzzNet": model_entry(
            {
                "tar": variant_entry(
                    "https://example.org/F.tar",
                    b"x",
                    "fluid-tar",
                    metrics={"top1": 70.0, "top5": 90.0, "source": "s"},
                ),
                "pd": variant_entry(
                    "https://example.org/f.pdparams", None, "pdparams", arch_kwargs={"scale": 0.5}
                ),
            },
            num_params={"value": 10, "source": "s"},
            paper={"title": "t", "url": "https://arxiv.org/abs/1"},
        ),
        "ResNet50": {"weights": {"fluid2019": {"checksum": "sha256:" + "ab" * 32}}},
    },
}


def test_fuzz_registry_validator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seq = iter(range(10**9))
    texts = st.one_of(
        mutated_json(REGISTRY_SEED).map(json.dumps),
        st.text(max_size=200),
        st.binary(max_size=200),
        json_values.map(json.dumps),
    )

    with Examples("registry validator") as ex:

        @fuzz_settings("registry")
        @given(text=texts)
        def check(text: Any) -> None:
            ex.tick()
            path = tmp_path / f"r{next(seq)}.json"  # a new file: the parsed-file cache never answers
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
            monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(path))
            reg = own_error_or_result(load_registry)
            if reg is not None:
                for name in reg.names():
                    info = reg.get(name)
                    for tag, variant in info.weights.items():
                        assert variant.urls and all(
                            u.split(":", 1)[0] in ("http", "https", "file") for u in variant.urls
                        )
                        assert variant.checksum is None or variant.checksum_algo in ("md5", "sha256")
                        info.to_dict()
            path.unlink()

        check()


# --------------------------------------------------------------------------- bundles


BLOBS = [b"first artifact " * 50, b"second" * 300]


def bundle_bytes(entries: Any, members: List[Any]) -> bytes:
    manifest = json.dumps({"format": "paddlehub_cls-bundle", "version": 1, "entries": entries}).encode()
    return tar_of([("manifest.json", manifest)] + members)


def good_entries() -> List[Dict[str, Any]]:
    out = []
    for i, b in enumerate(BLOBS):
        url = f"https://e.org/{i}"
        entry = {
            "sha256": sha256(b),
            "size": len(b),
            "md5": md5(b),
            "urls": [url],
            "url": url,
            "filename": f"f{i}",
        }
        entry.update(checksum=f"md5:{md5(b)}" if i else None, trust="pinned" if i else "tofu")
        entry.update(sources=[{"model": "M", "tag": str(i)}], model="M", tag=str(i))
        out.append(entry)
    return out


GOOD_MEMBERS = [(f"blobs/sha256/{sha256(b)}", b) for b in BLOBS]
GOOD_BUNDLE = bundle_bytes(good_entries(), GOOD_MEMBERS)


@st.composite
def forged_bundle(draw: st.DrawFn) -> bytes:
    entries = draw(mutated_json(good_entries()))
    members = list(GOOD_MEMBERS)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["drop", "dup", "other-bytes", "extra", "symlink", "dir", "stamp"]))
        i = draw(st.integers(0, len(BLOBS) - 1))
        name = f"blobs/sha256/{sha256(BLOBS[i])}"
        if kind == "drop" and members:
            members.pop(draw(st.integers(0, len(members) - 1)))
        elif kind == "dup":
            members.append((name, BLOBS[i]))
        elif kind == "other-bytes":
            members.append((name, draw(st.binary(max_size=64))))
        elif kind == "extra":
            members.append((draw(st.sampled_from(["../x", "/abs", "blobs/x", "manifest.json", ""])), b"x"))
        elif kind in ("symlink", "dir"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.DIRTYPE
            info.linkname = "/etc/passwd"
            members.append((name, info))
        else:
            members.append((name + ".json", json.dumps(draw(json_values)).encode()))
    return bundle_bytes(entries, members)


def test_fuzz_bundle_import(tmp_path: Path) -> None:
    inputs = st.one_of(forged_bundle(), readers_fuzz._mutated([GOOD_BUNDLE]), st.binary(max_size=600))
    seq = iter(range(10**9))

    with Examples("bundle import") as ex:

        @fuzz_settings("bundle")
        @given(data=inputs)
        def check(data: bytes) -> None:
            ex.tick()
            work = tmp_path / f"w{next(seq)}"
            work.mkdir()
            bundle = work / "b.tar"
            bundle.write_bytes(data)
            cache = work / "cache"
            result = own_error_or_result(lambda: import_bundle(bundle, cache_dir=cache))
            audit = audit_cache(cache)
            assert audit.problems == []
            assert not list((cache / "tmp").glob("import-*")), "staging left behind"
            if result is None:
                assert audit.blobs == [], "a refused bundle imported something"
            else:
                assert sorted(audit.blobs) == sorted({e["sha256"] for e in result})
                assert set(audit.blobs) <= {sha256(b) for b in BLOBS}
            shutil.rmtree(work)

        check()


# --------------------------------------------------------------------------- read_weights


def _safetensors_seed(path: Path) -> bytes:
    save_safetensors({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.int64)}, path)
    return path.read_bytes()


def test_fuzz_read_weights_detection(tmp_path: Path) -> None:
    seeds = (
        readers_fuzz.FLUID_SEEDS
        + readers_fuzz.PDPARAMS_SEEDS
        + [
            _safetensors_seed(tmp_path / "seed.safetensors"),
            tar_of([("a/b", b"x")]),
            b"PK\x03\x04" + bytes(40),
            b"\x1f\x8b" + bytes(30),
        ]
    )
    inputs = st.one_of(readers_fuzz._mutated(seeds), st.binary(max_size=600))
    path = tmp_path / "weights"

    with Examples("read_weights detection") as ex:

        @fuzz_settings("read_weights")
        @given(data=inputs)
        def check(data: bytes) -> None:
            ex.tick()
            path.unlink(missing_ok=True)
            path.write_bytes(data)
            tracemalloc.start()
            try:
                src = own_error_or_result(lambda: read_weights(path))
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            assert peak < PEAK_BYTES_LIMIT, f"peak {peak} bytes for a {len(data)}-byte input"
            if src is not None:
                assert src.format in ("fluid-var", "pdparams", "safetensors")
                assert all(
                    isinstance(a, np.ndarray) and a.dtype.kind in "biufc" for a in src.tensors.values()
                )
                del src

        check()


# --------------------------------------------------------------------------- archive members


NAMES = st.lists(
    st.sampled_from(["M", "a", "..", ".", "", "b\\c", "/", "x" * 20, "C:", "\x00", "d"]),
    min_size=1,
    max_size=4,
).map("/".join)


@st.composite
def hostile_member(draw: st.DrawFn) -> tarfile.TarInfo:
    info = tarfile.TarInfo(draw(NAMES))
    info.type = draw(
        st.sampled_from(
            [tarfile.REGTYPE] * 4
            + [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
        )
    )
    info.linkname = draw(st.sampled_from(["", "..", "/etc/passwd", "M/a", "../../outside"]))
    info.size = draw(st.integers(0, 64)) if info.type == tarfile.REGTYPE else 0
    return info


def test_fuzz_archive_member_lists(tmp_path: Path) -> None:
    with Examples("archive member lists") as ex:

        @fuzz_settings("archive_members")
        @given(members=st.lists(hostile_member(), min_size=1, max_size=6), zipped=st.booleans())
        def check(members: List[tarfile.TarInfo], zipped: bool) -> None:
            ex.tick()
            work = tmp_path / "w"
            shutil.rmtree(work, ignore_errors=True)
            (work / "out").mkdir(parents=True)
            src = work / "a"
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz" if zipped else "w", format=tarfile.GNU_FORMAT) as tf:
                for m in members:
                    try:
                        tf.addfile(m, io.BytesIO(b"d" * m.size) if m.isreg() else None)
                    except ValueError:  # tarfile itself cannot encode this header (a NUL in a name)
                        continue
            src.write_bytes(buf.getvalue())
            before = snapshot(work, exclude=[work / "out"])
            tracemalloc.start()
            try:
                out = own_error_or_result(lambda: archive.extract_archive(src, work / "out" / "x"))
            finally:
                tracemalloc.stop()
            assert snapshot(work, exclude=[work / "out"]) == before, "something was written outside"
            if out is None:
                assert list((work / "out").iterdir()) == [], "a refused archive left files"
            else:
                assert archive.verify_extraction(out) == []
                for p in out.rglob("*"):
                    assert not p.is_symlink() and (p.is_file() or p.is_dir())
                    assert p.resolve().is_relative_to((work / "out" / "x").resolve())

        check()


# --------------------------------------------------------------------------- cache state


DATA = np.random.default_rng(9).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
OTHER = DATA[::-1]


def good_stamp(url: str) -> Dict[str, Any]:
    """The stamp the hub writes for DATA downloaded from ``url``."""
    stamp = {"sha256": sha256(DATA), "md5": md5(DATA), "size": len(DATA), "mtime_ns": 0, "url": url}
    stamp.update(
        urls=[url], filename="f.bin", checksum=None, trust="tofu", sources=[{"model": "M", "tag": "t"}]
    )
    return stamp


@st.composite
def one_field_changed(draw: st.DrawFn, stamp: Dict[str, Any]) -> Dict[str, Any]:
    """The stamp with one of the fields the code reads replaced by any JSON value."""
    key = draw(st.sampled_from(["sources", "checksum", "trust", "sha256", "size", "md5", "url"]))
    return {**stamp, key: draw(json_values)}


@st.composite
def damaged_cache(draw: st.DrawFn, url: str) -> Dict[str, Any]:
    """A description of what an earlier (crashed, buggy or meddling) process left in the cache."""
    stamp = good_stamp(url)
    note = {"url": url, "etag": None, "last_modified": None, "total": len(DATA), "encoded": False}
    return {
        "blob": draw(st.sampled_from(["none", "good", "flipped", "short"])),
        "stamp": draw(st.one_of(st.none(), mutated_json(stamp), one_field_changed(stamp), json_values)),
        "keep_mtime": draw(st.booleans()),
        "md5_ref": draw(st.sampled_from([None, sha256(DATA), sha256(OTHER), "garbage", ""])),
        "url_ref": draw(st.sampled_from([None, sha256(DATA), "garbage", "\xff"])),
        "partial": draw(
            st.sampled_from([None, "head of the file", "head of another file", "all", "all and more"])
        ),
        "partial_meta": draw(st.one_of(st.none(), mutated_json(note), json_values)),
        "checksum": draw(st.sampled_from([f"sha256:{sha256(DATA)}", f"md5:{md5(DATA)}", None])),
    }


def lay_out(cache: Path, d: Dict[str, Any], checksum_key: str) -> None:
    blobs = cache / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    blob = blobs / sha256(DATA)
    if d["blob"] != "none":
        content = {"good": DATA, "flipped": bytes([DATA[0] ^ 1]) + DATA[1:], "short": DATA[:-1]}[d["blob"]]
        blob.write_bytes(content)
    if d["stamp"] is not None:
        stamp = d["stamp"]
        # A stamp is trusted when size and mtime match: only a good blob may keep a matching mtime
        # (bytes changed behind an unchanged mtime are deliberate tampering, for `cache verify`).
        if isinstance(stamp, dict) and d["keep_mtime"] and d["blob"] == "good":
            stamp = {**stamp, "mtime_ns": blob.stat().st_mtime_ns}
        (blobs / f"{sha256(DATA)}.json").write_text(json.dumps(stamp))
    for kind, key, value in (("md5", md5(DATA), d["md5_ref"]), ("url", None, d["url_ref"])):
        if value is not None:
            root = hub.CacheRoot(cache, True)
            ref = root.ref(kind, key if key else d["url"])
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(value)
    if d["partial"] is not None or d["partial_meta"] is not None:
        (cache / "tmp").mkdir()
    if d["partial"] is not None:
        content = {"head of the file": DATA[:70_000], "head of another file": OTHER[:70_000], "all": DATA}
        (cache / "tmp" / f"{checksum_key}.partial").write_bytes(content.get(d["partial"], DATA + b"x"))
    if d["partial_meta"] is not None:
        (cache / "tmp" / f"{checksum_key}.partial.json").write_text(json.dumps(d["partial_meta"]))


def test_fuzz_cache_state_under_fetch(
    tmp_path: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch, cache_env: Path
) -> None:
    from paddlehub_cls import _transfer
    from paddlehub_cls._cache import Want

    url = http_server.set_file("/f.bin", DATA)
    monkeypatch.setattr(_transfer, "_sleep", lambda s: None)
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "1")
    seq = iter(range(10**9))

    with Examples("cache state under fetch") as ex:

        @fuzz_settings("cache_state")
        @given(d=damaged_cache(url))
        def check(d: Dict[str, Any]) -> None:
            ex.tick()
            d["url"] = url
            cache = tmp_path / f"c{next(seq)}"
            key = Want.make(url, d["checksum"]).key
            lay_out(cache, d, key)
            path = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # trust-on-first-use and quarantine warnings
                try:
                    with watchdog():
                        # What download_variant does, with a model and tag the stamp records.
                        want = Want.make(url, d["checksum"], model="M", tag="t")
                        path = hub.obtain(want, cache_dir=cache).path
                except ChecksumError as exc:
                    # Only an unpinned file may be refused: its first-use record names other bytes.
                    assert d["checksum"] is None and "recorded on first use" in str(exc), str(exc)
            if path is not None:
                assert path.read_bytes() == DATA
            audit = audit_cache(cache)
            assert audit.problems == [], audit.problems
            shutil.rmtree(cache)

        check()


def test_every_damaged_stamp_field_costs_a_rehash_never_a_crash(
    tmp_path: Path, http_server: FileServer, cache_env: Path
) -> None:
    """Directed companion of the cache-state fuzz: each stamp field the code reads, given each JSON
    type, with and without its blob, under a download with a model/tag, ``cache ls``, ``cache
    verify`` and ``cache export``."""
    from paddlehub_cls import cache_cli
    from paddlehub_cls._cache import Want

    url = http_server.set_file("/f.bin", DATA)
    good = good_stamp(url)
    n = 0
    with Examples("damaged stamp fields (directed)") as ex:
        for field in sorted(good):
            for value in (5, "x", [1, None], {"a": 1}, None, True):
                for blob_present in (True, False):
                    for checksum in (f"md5:{md5(DATA)}", None):
                        ex.tick()
                        cache = tmp_path / f"s{n}"
                        n += 1
                        blobs = cache / "blobs" / "sha256"
                        blobs.mkdir(parents=True)
                        if blob_present:
                            (blobs / sha256(DATA)).write_bytes(DATA)
                        (blobs / f"{sha256(DATA)}.json").write_text(json.dumps({**good, field: value}))
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            with watchdog():
                                hit = hub.obtain(
                                    Want.make(url, checksum, model="M", tag="t"), cache_dir=cache
                                )
                                assert hit.path.read_bytes() == DATA
                                cache_cli.list_entries(cache)
                                assert cache_cli.verify_cache(cache).ok
                                cache_cli.export_bundle(tmp_path / "b.tar", ["M"], cache_dir=cache)
                        assert audit_cache(cache).problems == []
                        shutil.rmtree(cache)
