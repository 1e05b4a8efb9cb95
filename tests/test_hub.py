"""The downloader and cache, against a real HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from httpserver import Fault, FileServer

from paddlehub_cls import _cache, _transfer, archive, hub
from paddlehub_cls import _hashing as hashing
from paddlehub_cls.errors import (
    CacheError,
    ChecksumError,
    DownloadError,
    LockTimeoutError,
    OfflineError,
    UnsafeArchiveError,
    WeightsFormatError,
)
from paddlehub_cls.registry import load_registry

DATA = bytes(range(256)) * 2048  # 512 KiB
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()

FETCH = (
    "import sys, logging\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "from paddlehub_cls.hub import fetch\n"
    "print(fetch(sys.argv[1], None if sys.argv[2] == 'none' else sys.argv[2], progress=False))\n"
)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Back-off pauses the downloader asked for (recorded, not slept)."""
    seen: List[float] = []
    monkeypatch.setattr(_transfer, "_sleep", seen.append)
    return seen


def tree(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def blobs(root: Path) -> List[str]:
    return [p for p in tree(root) if p.startswith("blobs/")]


def test_fetch_verifies_stores_by_sha256_and_hits_without_hashing(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/models/w.pdparams", DATA)
    path = hub.fetch(url, f"sha256:{SHA}", size=len(DATA))
    assert path == cache_env / "blobs" / "sha256" / SHA
    assert path.read_bytes() == DATA
    stamp = json.loads((cache_env / "blobs" / "sha256" / f"{SHA}.json").read_text())
    # md5 is computed for md5 pins only (test_md5_is_computed_only_for_an_md5_pin).
    assert (stamp["sha256"], stamp["md5"], stamp["size"], stamp["url"]) == (SHA, None, len(DATA), url)
    assert stamp["trust"] == "pinned" and stamp["filename"] == "w.pdparams"
    assert not list((cache_env / "tmp").iterdir())  # no partial left

    def no_hashing(*args: object) -> None:
        raise AssertionError("a cache hit must not re-hash the file")

    monkeypatch.setattr(_cache, "hash_file", no_hashing)
    assert hub.fetch(url, f"sha256:{SHA}") == path
    assert len(http_server.requests_for("/models/w.pdparams")) == 1


def test_md5_pinned_file_is_found_again_through_its_ref(cache_env: Path, http_server: FileServer) -> None:
    url = http_server.set_file("/w.bin", DATA)
    path = hub.fetch([url], f"md5:{MD5.upper()}")
    assert path.name == SHA
    assert (cache_env / "refs" / "md5" / MD5).read_text().strip() == SHA
    assert hub.fetch(url, f"md5:{MD5}") == path
    assert len(http_server.requests_for("/w.bin")) == 1
    assert path == cache_env / "blobs" / "sha256" / SHA


class _Spy(hashing.HashThread):
    started: List[str] = []

    def __init__(self, algo: str) -> None:
        _Spy.started.append(algo)
        super().__init__(algo)


def _hash_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("paddlehub_cls-")]


@pytest.mark.parametrize("pin", ["sha256", "md5", None])
@pytest.mark.parametrize("scheme", ["http", "file"])
def test_md5_is_computed_only_for_an_md5_pin(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pin, scheme
) -> None:
    monkeypatch.setattr(hashing, "HashThread", _Spy)
    monkeypatch.setattr(_Spy, "started", [])
    if scheme == "http":
        url = http_server.set_file("/w.bin", DATA)
    else:
        (tmp_path / "w.bin").write_bytes(DATA)
        url = (tmp_path / "w.bin").as_uri()
    checksum = {"sha256": f"sha256:{SHA}", "md5": f"md5:{MD5}", None: None}[pin]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the first-use warning of the unpinned case
        path = hub.fetch(url, checksum)
    assert path.read_bytes() == DATA
    stamp = json.loads((cache_env / "blobs" / "sha256" / f"{SHA}.json").read_text())
    assert _Spy.started == (["sha256", "md5"] if pin == "md5" else ["sha256"])
    assert stamp["md5"] == (MD5 if pin == "md5" else None)
    assert _hash_threads() == []  # every hashing thread ended with its transfer


class _Boom(Exception):
    pass


class _FailingHash:
    """A digest that fails on its third chunk, as a hashing thread might (out of memory, say)."""

    def __init__(self) -> None:
        self.calls = 0

    def update(self, data: bytes) -> None:
        self.calls += 1
        if self.calls == 3:
            raise _Boom(f"hashing failed at chunk {self.calls}")

    def hexdigest(self) -> str:
        return "0" * 64


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_an_error_in_a_hashing_thread_reaches_the_caller_and_nothing_is_cached(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch, algo: str
) -> None:
    real = hashlib.new
    monkeypatch.setattr(hashing.hashlib, "new", lambda name: _FailingHash() if name == algo else real(name))
    url = http_server.set_file("/w.bin", DATA)
    with pytest.raises(_Boom, match="hashing failed at chunk 3"):
        hub.fetch(url, f"md5:{MD5}")
    assert blobs(cache_env) == [] and _hash_threads() == []
    monkeypatch.setattr(hashing.hashlib, "new", real)
    assert hub.fetch(url, f"md5:{MD5}").read_bytes() == DATA


def test_resumed_download_hashes_the_partial_first_with_a_full_queue(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume queues the partial's bytes (in 1 MiB reads) before the new ones: both digests see
    them in order, even when the hashing threads lag a full queue behind."""
    data = os.urandom(5 << 20)
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    seen: Dict[str, List[int]] = {"md5": [], "sha256": []}
    real = hashlib.new

    class SlowHash:
        def __init__(self, name: str) -> None:
            self.inner, self.seen = real(name), seen[name]

        def update(self, chunk: bytes) -> None:
            self.seen.append(len(chunk))
            time.sleep(0.002)  # the reader runs ahead until the queue is full
            self.inner.update(chunk)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    cut = (3 << 20) + 12345
    url = http_server.set_file("/w.bin", data, etag='"v1"')
    # What a process killed after `cut` bytes leaves behind.
    (cache_env / "tmp").mkdir(parents=True)
    (cache_env / "tmp" / f"md5-{md5}.partial").write_bytes(data[:cut])
    note = {"url": url, "etag": '"v1"', "last_modified": None, "total": len(data), "encoded": False}
    (cache_env / "tmp" / f"md5-{md5}.partial.json").write_text(json.dumps(note))
    monkeypatch.setattr(hashing.hashlib, "new", SlowHash)
    monkeypatch.setattr(hashing, "QUEUED_BATCHES", 1)
    path = hub.fetch(url, f"md5:{md5}")
    assert path.name == sha and path.read_bytes() == data
    assert [(r.range, r.status) for r in http_server.requests_for("/w.bin")] == [(f"bytes={cut}-", 206)]
    stamp = json.loads((cache_env / "blobs" / "sha256" / f"{sha}.json").read_text())
    assert stamp["md5"] == md5
    for name, sizes in seen.items():  # the partial first, in 1 MiB reads, then the rest
        assert sizes[:4] == [1 << 20] * 3 + [12345] and sum(sizes) == len(data), name
    assert _hash_threads() == []


def test_a_cache_hit_and_the_cli_import_no_lock_library(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str]
) -> None:
    """filelock is imported when a lock is taken, not by a warm load or `paddlehub-cls list`."""
    url = http_server.set_file("/w.bin", DATA)
    path = hub.fetch(url, f"sha256:{SHA}")
    code = (
        "import sys\n"
        "from paddlehub_cls import cli, hub\n"
        "print(hub.fetch(sys.argv[1], sys.argv[2]), 'filelock' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, f"sha256:{SHA}"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(path), "False"]


def test_env_and_cache_dir_are_read_at_call_time(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    assert hub.fetch(url, f"sha256:{SHA}", cache_dir=tmp_path / "explicit").parent.parent.parent == (
        tmp_path / "explicit"
    )
    monkeypatch.setenv("PADDLEHUB_CLS_HOME", str(tmp_path / "other"))
    assert hub.user_cache_root() == tmp_path / "other"
    monkeypatch.delenv("PADDLEHUB_CLS_HOME")
    assert hub.user_cache_root() == tmp_path / "xdg" / "paddlehub_cls"
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", os.pathsep.join(["/a", "", "/b"]))
    assert hub.shared_cache_roots() == [Path("/a"), Path("/b")]


def test_checksum_mismatch_raises_with_details_and_caches_nothing(
    cache_env: Path, http_server: FileServer
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        hub.fetch(url, f"sha256:{wrong}")
    msg = str(err.value)
    assert url in msg and f"expected sha256:{wrong}" in msg and f"got sha256:{SHA}" in msg
    assert str(cache_env / "tmp") in msg and "nothing was cached" in msg
    assert blobs(cache_env) == [] and not (cache_env / "refs").exists()
    assert list((cache_env / "tmp").iterdir()) == []


def test_wrong_size_is_refused_before_the_body(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    # The server sends headers, then nothing: reading the body would end in a read timeout instead.
    http_server.add_fault("/w.bin", Fault(stall_after=0, stall=30))
    monkeypatch.setenv("PADDLEHUB_CLS_READ_TIMEOUT", "5")
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "0")
    with pytest.raises(ChecksumError, match=f"announces {len(DATA)} bytes but w.bin .* is 1000 bytes"):
        hub.fetch(url, f"sha256:{SHA}", size=1000)
    assert blobs(cache_env) == []


def test_killed_download_is_resumed_by_the_next_process(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str]
) -> None:
    url = http_server.set_file("/big.bin", DATA)
    cut = 3 * 65536
    http_server.add_fault("/big.bin", Fault(stall_after=cut))
    proc = subprocess.Popen(
        [sys.executable, "-c", FETCH, url, f"sha256:{SHA}"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    partial = cache_env / "tmp" / f"sha256-{SHA}.partial"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size == cut):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the downloader never wrote the bytes it received"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert blobs(cache_env) == []  # nothing unverified at a final path

    path = hub.fetch(url, f"sha256:{SHA}")  # this process resumes what the killed one left
    assert path.read_bytes() == DATA
    first, second = http_server.requests_for("/big.bin")
    assert first.range is None and first.body_bytes == cut
    assert second.range == f"bytes={cut}-" and second.headers["if-range"].startswith('"')
    assert second.status == 206 and second.body_bytes == len(DATA) - cut
    assert not partial.exists()


def test_connection_dropped_mid_body_is_resumed_in_process(
    cache_env: Path, http_server: FileServer, sleeps: List[float]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.add_fault("/w.bin", Fault(drop_after=100_000))
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    reqs = http_server.requests_for("/w.bin")
    assert [r.range for r in reqs] == [None, "bytes=100000-"]
    assert http_server.body_bytes("/w.bin") == len(DATA)
    assert len(sleeps) == 1


def test_503_then_success_backs_off_exponentially(
    cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PADDLEHUB_CLS_BACKOFF", "0.25")
    url = http_server.set_file("/w.bin", DATA)
    http_server.add_fault("/w.bin", Fault(status=503), times=2)
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    assert [r.status for r in http_server.requests_for("/w.bin")] == [503, 503, 200]
    assert sleeps == [0.25, 0.5]


@pytest.mark.parametrize("retry_after, expected", [("7", 7.0), ("100000", 60.0)])
def test_429_honours_retry_after_within_a_bound(
    cache_env: Path, http_server: FileServer, sleeps: List[float], retry_after: str, expected: float
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.add_fault("/w.bin", Fault(status=429, headers={"Retry-After": retry_after}))
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    assert sleeps == [expected]


def test_persistent_5xx_gives_up_with_the_url_and_advice(
    cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "2")
    url = http_server.set_file("/w.bin", DATA)
    http_server.set_default_fault("/w.bin", Fault(status=502))
    with pytest.raises(DownloadError, match="gave up after 2 retries") as err:
        hub.fetch(url, f"sha256:{SHA}")
    assert url in str(err.value) and "PADDLEHUB_CLS_MIRROR" in str(err.value)
    assert len(http_server.requests_for("/w.bin")) == 3
    assert blobs(cache_env) == []


def test_404_is_not_retried(cache_env: Path, http_server: FileServer, sleeps: List[float]) -> None:
    url = http_server.url("/missing.bin")
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        hub.fetch(url, f"sha256:{SHA}")
    assert not isinstance(err.value, ChecksumError) and url in str(err.value)
    assert len(http_server.requests_for("/missing.bin")) == 1 and sleeps == []


@pytest.mark.parametrize(
    "fault",
    [Fault(ignore_range=True), Fault(range_offset=0)],
    ids=["server-ignores-range", "wrong-range-offset"],
)
def test_resume_falls_back_to_a_whole_download(
    cache_env: Path, http_server: FileServer, sleeps: List[float], fault: Fault
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.add_fault("/w.bin", Fault(drop_after=200_000))
    http_server.add_fault("/w.bin", fault)
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    reqs = http_server.requests_for("/w.bin")
    assert reqs[1].range is not None  # the client asked to resume
    if fault.ignore_range:
        assert len(reqs) == 2 and reqs[1].status == 200  # and took the whole file instead
    else:
        assert reqs[1].status == 206 and reqs[2].range is None  # refused the wrong offset, restarted


def test_file_changed_between_resumes_is_downloaded_whole(
    cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", os.urandom(len(DATA)))
    http_server.add_fault("/w.bin", Fault(drop_after=100_000))
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "0")
    with pytest.raises(DownloadError, match="connection lost after 100000 bytes"):
        hub.fetch(url, f"sha256:{SHA}")
    monkeypatch.delenv("PADDLEHUB_CLS_RETRIES")
    http_server.set_file("/w.bin", DATA)  # new content, new ETag
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    last = http_server.requests_for("/w.bin")[-1]
    assert last.range == "bytes=100000-" and last.status == 200  # If-Range did not match: whole file


def test_eight_processes_cause_one_transfer_and_get_identical_files(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str]
) -> None:
    data = os.urandom(1 << 20)
    url = http_server.set_file("/shared.bin", data)
    http_server.set_default_fault("/shared.bin", Fault(chunk=32768, delay=0.01))  # slow enough to overlap
    checksum = f"sha256:{hashlib.sha256(data).hexdigest()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH, url, checksum],
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1][-2000:] for o in outs]
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1
    assert Path(paths.pop()).read_bytes() == data
    assert len(http_server.requests_for("/shared.bin")) == 1
    assert http_server.body_bytes("/shared.bin") == len(data)


def _block_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("offline mode opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_mode_uses_the_cache_and_explains_a_miss(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    other = http_server.set_file("/other.bin", b"other")
    cached = hub.fetch(url, f"sha256:{SHA}")
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    _block_sockets(monkeypatch)
    assert hub.fetch(url, f"sha256:{SHA}") == cached
    with pytest.raises(OfflineError) as err:
        hub.fetch(other, "sha256:" + hashlib.sha256(b"other").hexdigest())
    msg = str(err.value)
    assert other in msg and "other.bin" in msg
    for advice in ("cache export", "cache import", "PADDLEHUB_CLS_SHARED_CACHE", "PADDLEHUB_CLS_OFFLINE"):
        assert advice in msg
    assert len(http_server.requests_for("/other.bin")) == 0


def test_offline_mode_still_reads_a_file_mirror(
    cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "example.org" / "w").mkdir(parents=True)
    (mirror / "example.org" / "w" / "a.bin").write_bytes(DATA)
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", mirror.as_uri())
    _block_sockets(monkeypatch)
    assert hub.fetch("https://example.org/w/a.bin", f"sha256:{SHA}").read_bytes() == DATA


def snapshot(root: Path) -> List[Tuple[str, int, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns, p.lstat().st_mode)
        for p in root.rglob("*")
    )


def make_shared(tmp_path: Path, http_server: FileServer, url: str, checksum: object) -> Tuple[Path, Path]:
    shared = tmp_path / "shared"
    path = hub.fetch(url, checksum, cache_dir=shared)  # type: ignore[arg-type]
    subprocess.run(["chmod", "-R", "a-w", str(shared)], check=True)
    http_server.reset_stats()
    return shared, path


def test_read_only_shared_cache_is_used_and_never_written(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    shared, shared_path = make_shared(tmp_path, http_server, url, f"md5:{MD5}")
    before = snapshot(shared)
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    assert hub.fetch(url, f"md5:{MD5}") == shared_path
    assert hub.fetch(url, f"sha256:{SHA}") == shared_path
    assert http_server.requests == []
    assert snapshot(shared) == before
    assert blobs(cache_env) == [] and not (cache_env / "locks").exists()


def test_corrupt_shared_copy_is_skipped_and_left_untouched(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    shared, shared_path = make_shared(tmp_path, http_server, url, f"sha256:{SHA}")
    os.chmod(shared_path, 0o644)
    shared_path.write_bytes(b"X" * len(DATA))  # someone damaged the shared copy
    os.chmod(shared_path, 0o444)
    before = snapshot(shared)
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    with pytest.warns(UserWarning, match="changed after it was verified"):
        path = hub.fetch(url, f"sha256:{SHA}")
    assert path == cache_env / "blobs" / "sha256" / SHA and path.read_bytes() == DATA
    assert snapshot(shared) == before


def test_mirrors_are_tried_in_order_with_fallback(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/origin/w.bin", DATA)
    file_mirror = tmp_path / "mirror2"
    target = file_mirror / http_server.host / "origin" / "w.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(DATA)
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", f"{http_server.url('/mirror1')}/,{file_mirror.as_uri()}")
    path = hub.fetch(url, f"sha256:{SHA}")
    assert path.read_bytes() == DATA
    assert [r.path for r in http_server.requests] == [f"/mirror1/{http_server.host}/origin/w.bin"]
    assert http_server.requests[0].status == 404
    assert json.loads(path.with_name(f"{SHA}.json").read_text())["url"] == (
        f"{file_mirror.as_uri()}/{http_server.host}/origin/w.bin"
    )


def test_a_mirror_with_wrong_bytes_falls_back_to_the_origin(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/origin/w.bin", DATA)
    http_server.set_file(f"/mirror/{http_server.host}/origin/w.bin", b"<html>error page</html>")
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", http_server.url("/mirror"))
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    assert [r.path for r in http_server.requests] == [
        f"/mirror/{http_server.host}/origin/w.bin",
        "/origin/w.bin",
    ]


def test_bad_mirror_setting_is_explained(cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", "ftp://mirror.example")
    with pytest.raises(DownloadError, match="PADDLEHUB_CLS_MIRROR entry 'ftp://mirror.example'"):
        hub.fetch("https://example.org/a.bin", f"sha256:{SHA}")


def test_trust_on_first_use_records_verifies_and_strict_mode_refuses(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch, sleeps: List[float]
) -> None:
    url = http_server.set_file("/tofu.tar", DATA)
    with pytest.warns(
        UserWarning, match=f"no published checksum; trusting it on first use and recording sha256:{SHA}"
    ):
        path = hub.fetch(url, None)
    stamp = json.loads(path.with_name(f"{SHA}.json").read_text())
    assert stamp["trust"] == "tofu" and stamp["sha256"] == SHA and stamp["checksum"] is None

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified hit warns no more
        assert hub.fetch(url, None) == path

    # The cached copy changes behind our back: detected, quarantined, fetched again.
    path.write_bytes(b"Y" * len(DATA))
    with pytest.warns(UserWarning, match="changed after it was verified"):
        assert hub.fetch(url, None).read_bytes() == DATA
    assert len(list((cache_env / "quarantine").glob(f"{SHA}.*"))) == 2  # the file and its note
    assert len(http_server.requests_for("/tofu.tar")) == 2

    # The server's file changes: the sha256 recorded on first use catches it.
    path.unlink()
    http_server.set_file("/tofu.tar", b"Z" * len(DATA))
    with pytest.raises(ChecksumError, match="recorded on first use") as err:
        hub.fetch(url, None)
    assert f"expected sha256:{SHA}" in str(err.value)
    assert blobs(cache_env) == [f"blobs/sha256/{SHA}.json"] or blobs(cache_env) == []

    monkeypatch.setenv("PADDLEHUB_CLS_REQUIRE_CHECKSUM", "1")
    with pytest.raises(DownloadError) as err:
        hub.fetch(url, None)
    msg = str(err.value)
    assert url in msg and "PADDLEHUB_CLS_REGISTRY" in msg and "PADDLEHUB_CLS_REQUIRE_CHECKSUM" in msg
    assert f"sha256:{SHA}" in msg  # the recorded value, ready to pin


def test_lock_files_are_group_writable(cache_env: Path, http_server: FileServer) -> None:
    url = http_server.set_file("/w.bin", DATA)
    hub.fetch(url, f"sha256:{SHA}")
    (lock,) = (cache_env / "locks").iterdir()
    assert lock.stat().st_mode & 0o777 == 0o664


def test_lock_held_too_long_raises_lock_timeout(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    lock_path = cache_env / "locks" / f"sha256-{SHA}.lock"
    lock_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys, time\nl = filelock.FileLock(sys.argv[1])\nl.acquire()\n"
            "print('held', flush=True)\ntime.sleep(600)\n",
            str(lock_path),
        ],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", "0.3")
        with pytest.raises(LockTimeoutError, match="PADDLEHUB_CLS_DOWNLOAD_TIMEOUT") as err:
            hub.fetch(url, f"sha256:{SHA}")
        assert str(lock_path) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    assert http_server.requests == []
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA  # the holder died: its lock is gone


def test_local_rank_1_waits_for_rank_0(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    rank1 = subprocess.Popen(
        [sys.executable, "-c", FETCH, url, f"sha256:{SHA}"],
        env=dict(subprocess_env, PADDLE_RANK_IN_NODE="1", PADDLE_TRAINER_ID="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in rank1.stderr:  # it says it waits before rank 0 even starts
        if "waits for local rank 0" in line:
            break
    else:
        raise AssertionError(f"rank 1 exited without waiting: {rank1.wait()}")
    assert http_server.requests == []
    rank0 = subprocess.run(
        [sys.executable, "-c", FETCH, url, f"sha256:{SHA}"],
        env=dict(subprocess_env, PADDLE_RANK_IN_NODE="0", PADDLE_TRAINER_ID="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rank0.returncode == 0, rank0.stderr
    out1, _ = rank1.communicate(timeout=300)
    assert rank1.returncode == 0
    assert out1.strip() == rank0.stdout.strip() == str(cache_env / "blobs" / "sha256" / SHA)
    assert len(http_server.requests_for("/w.bin")) == 1


def test_local_rank_wait_is_bounded(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    monkeypatch.setenv("PADDLE_LOCAL_RANK", "3")
    monkeypatch.setenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", "0.2")
    with pytest.raises(LockTimeoutError) as err:
        hub.fetch(url, f"sha256:{SHA}")
    msg = str(err.value)
    assert "local rank 3" in msg and "PADDLEHUB_CLS_DOWNLOAD_TIMEOUT" in msg and url in msg
    assert http_server.requests == []


def test_bad_environment_values_are_explained(cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(DownloadError, match="PADDLEHUB_CLS_DOWNLOAD_TIMEOUT='soon'"):
        hub.fetch("http://127.0.0.1:9/a.bin", f"sha256:{SHA}")
    monkeypatch.delenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT")
    monkeypatch.setenv("PADDLE_RANK_IN_NODE", "zero")
    with pytest.raises(DownloadError, match="PADDLE_RANK_IN_NODE='zero'"):
        hub.fetch("http://127.0.0.1:9/a.bin", f"sha256:{SHA}")


def test_malformed_arguments_are_refused(cache_env: Path) -> None:
    from paddlehub_cls.errors import RegistryError

    with pytest.raises(RegistryError, match="'md5:xyz' is not"):
        hub.fetch("http://127.0.0.1:9/a.bin", "md5:xyz")
    with pytest.raises(RegistryError, match="urls must be"):
        hub.fetch([], None)


def test_unwritable_user_cache_is_explained(cache_env: Path, http_server: FileServer, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="PADDLEHUB_CLS_HOME"):
        hub.fetch(http_server.set_file("/w.bin", DATA), f"sha256:{SHA}", cache_dir=blocker / "cache")


def test_progress_bar_follows_argument_and_env(
    cache_env: Path,
    http_server: FileServer,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = http_server.set_file("/bar.bin", DATA)
    hub.fetch(url, f"sha256:{SHA}", progress=True, cache_dir=tmp_path / "a")
    assert "bar.bin" in capsys.readouterr().err
    monkeypatch.setenv("PADDLEHUB_CLS_DISABLE_PROGRESS", "1")
    hub.fetch(url, f"sha256:{SHA}", progress=True, cache_dir=tmp_path / "b")
    assert "bar.bin" not in capsys.readouterr().err


# --------------------------------------------------------------------------- registry variants


def tar_bytes(files: Dict[str, bytes], extra: Dict[str, tarfile.TarInfo] = {}) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra.values():
            tf.addfile(info)
    return buf.getvalue()


def variant_for(url: str, data: bytes, **changes: object):
    info, variant = load_registry().resolve("ResNet50", "fluid2019")
    fields = dict(
        urls=(url,), checksum=f"sha256:{hashlib.sha256(data).hexdigest()}", checksum_note=None, size=len(data)
    )
    fields.update(changes)
    return info, dataclasses.replace(variant, **fields)


def blob_artifact(cache: Path, path: Path) -> _cache.Artifact:
    """The artifact ``hub.download_variant`` would return for a blob ``hub.fetch`` cached."""
    return _cache.Artifact(path, path.name, _cache.CacheRoot(cache, True))


def test_download_variant_unpacks_an_archive_once(cache_env: Path, http_server: FileServer) -> None:
    data = tar_bytes(
        {"ResNet50_pretrained/conv1_weights": b"c" * 100, "ResNet50_pretrained/fc_0.w_0": b"f" * 8}
    )
    info, variant = variant_for(http_server.set_file("/ResNet50_pretrained.tar", data), data)
    artifact = hub.download_variant(info, variant)
    root = artifact.path
    sha = hashlib.sha256(data).hexdigest()
    assert root == cache_env / "unpacked" / sha / "ResNet50_pretrained"
    assert (root / "conv1_weights").read_bytes() == b"c" * 100
    assert archive.is_complete(root.parent)
    assert artifact.checksum == f"sha256:{sha}" and artifact.md5 is None
    assert artifact.inner == "ResNet50_pretrained" and not artifact.shared
    stamp = json.loads((cache_env / "blobs" / "sha256" / f"{sha}.json").read_text())
    assert stamp["sources"] == [{"model": "ResNet50", "tag": "fluid2019"}]
    mtime = (root / "conv1_weights").stat().st_mtime_ns
    assert hub.download_variant(info, variant) == artifact
    assert (root / "conv1_weights").stat().st_mtime_ns == mtime  # not extracted again
    assert len(http_server.requests) == 1


def test_download_variant_returns_a_pdparams_file(cache_env: Path, http_server: FileServer) -> None:
    info, variant = variant_for(
        http_server.set_file("/w.pdparams", DATA),
        DATA,
        container="pdparams",
        archive_root=None,
        checksum=f"md5:{MD5}",
    )
    artifact = hub.download_variant(info, variant)
    assert artifact.path == cache_env / "blobs" / "sha256" / SHA
    assert (artifact.sha256, artifact.md5, artifact.inner, artifact.shared) == (SHA, MD5, None, False)


def test_hostile_archive_from_the_server_unpacks_nothing(cache_env: Path, http_server: FileServer) -> None:
    link = tarfile.TarInfo("ResNet50_pretrained/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    data = tar_bytes({"ResNet50_pretrained/conv1_weights": b"c"}, {"l": link})
    info, variant = variant_for(http_server.set_file("/evil.tar", data), data)
    with pytest.raises(UnsafeArchiveError, match="'ResNet50_pretrained/evil' is a symbolic link"):
        hub.download_variant(info, variant)
    assert not (cache_env / "unpacked").exists() or list((cache_env / "unpacked").iterdir()) == []


def test_archive_without_its_root_directory_is_explained(cache_env: Path, http_server: FileServer) -> None:
    data = tar_bytes({"Other_pretrained/w": b"1"})
    info, variant = variant_for(http_server.set_file("/r.tar", data), data)
    with pytest.raises(
        WeightsFormatError,
        match="'ResNet50_pretrained'.*Other_pretrained|Other_pretrained.*" "'ResNet50_pretrained'",
    ):
        hub.download_variant(info, variant)


def test_archive_in_a_shared_cache_is_unpacked_into_the_user_cache(
    cache_env: Path, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tar_bytes({"ResNet50_pretrained/conv1_weights": b"c" * 10})
    url = http_server.set_file("/a.tar", data)
    shared, _ = make_shared(tmp_path, http_server, url, f"sha256:{hashlib.sha256(data).hexdigest()}")
    before = snapshot(shared)
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    info, variant = variant_for(url, data)
    root = hub.download_variant(info, variant).path
    assert root.is_relative_to(cache_env / "unpacked") and (root / "conv1_weights").read_bytes() == b"c" * 10
    assert snapshot(shared) == before and http_server.requests == []


def test_unpack_local_archive_returns_its_top_directory(cache_env: Path, tmp_path: Path) -> None:
    src = tmp_path / "mine.tar"
    src.write_bytes(tar_bytes({"MyNet_pretrained/w": b"1"}))
    out = hub.unpack_local_archive(src)
    assert out.name == "MyNet_pretrained" and (out / "w").read_bytes() == b"1"
    assert out.parent.parent == cache_env / "unpacked"


def test_full_disk_is_a_clear_cache_error_and_leaves_no_partial(
    cache_env: Path, http_server: FileServer, subprocess_env: Dict[str, str]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # files may not grow past 100 kB\n"
        "from paddlehub_cls.hub import fetch\n"
        "from paddlehub_cls.errors import CacheError\n"
        "try:\n"
        "    fetch(sys.argv[1], sys.argv[2])\n"
        "except CacheError as exc:\n"
        "    print('CacheError:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, f"sha256:{SHA}"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CacheError: cannot write w.bin") and "PADDLEHUB_CLS_HOME" in out.stdout
    assert blobs(cache_env) == [] and list((cache_env / "tmp").iterdir()) == []


def test_body_shorter_than_announced_is_completed_from_the_partial(
    cache_env: Path, http_server: FileServer, sleeps: List[float]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.set_default_fault("/w.bin", Fault(content_length_delta=100))  # always claims 100 more
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    first, second = http_server.requests_for("/w.bin")
    assert second.range == f"bytes={len(DATA)}-" and second.status == 416  # nothing left to send


def test_body_longer_than_announced_fails_the_checksum(
    cache_env: Path, http_server: FileServer, sleeps: List[float]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.set_default_fault("/w.bin", Fault(content_length_delta=-100))
    with pytest.raises(ChecksumError, match=f"got sha256:{hashlib.sha256(DATA[:-100]).hexdigest()}"):
        hub.fetch(url, f"sha256:{SHA}")
    assert blobs(cache_env) == [] and list((cache_env / "tmp").iterdir()) == []


def test_resume_that_stitches_two_versions_is_redone_from_scratch(
    cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.set_file("/w.bin", os.urandom(len(DATA)), etag='"v1"')
    http_server.add_fault("/w.bin", Fault(drop_after=100_000))
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "0")
    with pytest.raises(DownloadError):
        hub.fetch(url, f"sha256:{SHA}")
    monkeypatch.delenv("PADDLEHUB_CLS_RETRIES")
    http_server.set_file("/w.bin", DATA, etag='"v1"')  # new bytes behind the same ETag: a broken server
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    reqs = http_server.requests_for("/w.bin")
    assert [(r.range is not None, r.status) for r in reqs[1:]] == [(True, 206), (False, 200)]


# --------------------------------------------------------------------------- issue 9: what users hit

HTML = b"<!DOCTYPE html><html><body>Please log in to the hotel wifi</body></html>\n" * 20


def test_html_first_answer_is_not_pinned_and_the_next_call_gets_the_real_file(
    cache_env: Path, http_server: FileServer
) -> None:
    data = tar_bytes({"ResNet50_pretrained/conv1_weights": b"c" * 100})
    url = http_server.set_file("/ResNet50_pretrained.tar", data)
    http_server.add_fault("/ResNet50_pretrained.tar", Fault(body=HTML))  # a captive portal, once
    info, variant = variant_for(url, data, checksum=None, size=None)
    with pytest.raises(DownloadError) as err:
        hub.download_variant(info, variant)
    msg = str(err.value)
    assert f"{url}: the {len(HTML)} bytes received are not a readable tar archive" in msg
    assert "<!DOCTYPE html>" in msg and "a captive portal" in msg and "no checksum was recorded" in msg
    assert blobs(cache_env) == [] and not (cache_env / "refs").exists()
    with pytest.warns(UserWarning, match="trusting it on first use"):
        root = hub.download_variant(info, variant).path  # no user action in between
    assert (root / "conv1_weights").read_bytes() == b"c" * 100


def test_quarantining_an_artifact_drops_the_first_use_pin_it_created(
    cache_env: Path, http_server: FileServer
) -> None:
    url = http_server.set_file("/w.pdparams", b"not a pickle at all" * 100)
    with pytest.warns(UserWarning, match="trusting it on first use"):
        path = hub.fetch(url, None)
    moved = hub.reject_artifact(blob_artifact(cache_env, path), "cannot be parsed")
    assert moved is not None and moved.parent == cache_env / "quarantine"
    assert list((cache_env / "refs" / "url").iterdir()) == []
    http_server.set_file("/w.pdparams", DATA)
    with pytest.warns(UserWarning, match=f"recording sha256:{SHA}"):
        assert hub.fetch(url, None).read_bytes() == DATA


def test_a_quarantined_pinned_artifact_keeps_other_pins(cache_env: Path, http_server: FileServer) -> None:
    tofu_url = http_server.set_file("/tofu.bin", b"first use")
    with pytest.warns(UserWarning):
        hub.fetch(tofu_url, None)
    path = hub.fetch(http_server.set_file("/w.bin", DATA), f"sha256:{SHA}")
    hub.reject_artifact(blob_artifact(cache_env, path), "cannot be parsed")
    assert len(list((cache_env / "refs" / "url").iterdir())) == 1  # the unrelated first-use pin stays


def _dead_urls() -> List[str]:
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # RFC 2606: .invalid never resolves.
    return ["http://weights.paddlehub-cls.invalid/ResNet50_pretrained.tar", f"http://127.0.0.1:{port}/w.tar"]


def test_unresolvable_and_refused_hosts_fail_over_at_once(
    cache_env: Path, http_server: FileServer, sleeps: List[float]
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    assert hub.fetch(_dead_urls() + [url], f"sha256:{SHA}").read_bytes() == DATA
    assert sleeps == [] and len(http_server.requests_for("/w.bin")) == 1


def test_no_network_error_lists_each_url_and_the_ways_that_work(
    cache_env: Path, sleeps: List[float], caplog: pytest.LogCaptureFixture
) -> None:
    dns, refused = _dead_urls()
    info, variant = variant_for(dns, DATA, urls=(dns, refused), checksum=None, size=None)
    with pytest.raises(DownloadError) as err:
        hub.download_variant(info, variant)
    assert sleeps == [] and not [r for r in caplog.records if "retry" in r.getMessage()]
    lines = str(err.value).splitlines()
    assert lines[1].startswith(f"  {dns}: cannot resolve host weights.paddlehub-cls.invalid")
    assert lines[2].startswith(f"  {refused}: connection refused")
    advice = "\n".join(lines[3:])
    for expected in (
        "--weights PATH",
        "PADDLEHUB_CLS_MIRROR=BASE",
        "BASE/weights.paddlehub-cls.invalid/ResNet50_pretrained.tar",
        "paddlehub-cls cache add ResNet50.fluid2019 FILE",
        "PADDLEHUB_CLS_OFFLINE=1",
    ):
        assert sum(expected in line for line in lines[3:]) == 1, (expected, advice)
    assert "cache import" not in advice


def test_retry_warnings_are_short(
    cache_env: Path, http_server: FileServer, sleeps: List[float], caplog: pytest.LogCaptureFixture
) -> None:
    url = http_server.set_file("/w.bin", DATA)
    http_server.add_fault("/w.bin", Fault(reset=True), times=2)
    assert hub.fetch(url, f"sha256:{SHA}").read_bytes() == DATA
    warned = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(warned) == 2 and len(sleeps) == 2
    for text in warned:
        assert text.startswith(f"{url}: ") and len(text) < len(url) + 120 and "Pool" not in text, text


def test_offline_hint_names_the_variant(cache_env: Path, http_server: FileServer, monkeypatch) -> None:
    info, variant = variant_for(http_server.url("/ResNet50_pretrained.tar"), DATA, checksum=None, size=None)
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        hub.download_variant(info, variant)
    msg = str(err.value)
    assert "paddlehub-cls download ResNet50 --weights fluid2019" in msg
    assert "paddlehub-cls cache export bundle.tar ResNet50.fluid2019" in msg


def test_a_copy_cached_under_another_pin_is_reported_not_hidden(
    cache_env: Path, http_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if imported from a machine whose site registry pinned the archive: stamped with its sha256,
    # but no first-use record here, where the registry publishes no checksum.
    data = tar_bytes({"ResNet50_pretrained/conv1_weights": b"c"})
    sha = hashlib.sha256(data).hexdigest()
    info, pinned = variant_for(http_server.set_file("/r.tar", data), data)
    cached = hub.download_variant(info, pinned)
    _, unpinned = variant_for(http_server.url("/r.tar"), data, checksum="md5:" + "0" * 32, size=None)
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        hub.download_variant(info, unpinned)
    msg = str(err.value)
    assert "is in no cache" not in msg
    assert f"sha256:{sha}" in msg and "md5:" + "0" * 32 in msg
    assert str(cache_env / "blobs" / "sha256" / sha) in msg
    assert "PADDLEHUB_CLS_REGISTRY" in msg and cached.path.is_dir()


def test_a_plain_fetch_failure_suggests_only_what_applies_to_it(cache_env: Path, sleeps: List[float]) -> None:
    dns, refused = _dead_urls()
    with pytest.raises(DownloadError) as err:
        hub.fetch([dns, refused], f"sha256:{SHA}")
    msg = str(err.value)
    assert "BASE/weights.paddlehub-cls.invalid/ResNet50_pretrained.tar" in msg
    assert "PADDLEHUB_CLS_OFFLINE=1" in msg
    assert "cache add" not in msg and "--weights" not in msg  # both need a registry model


def test_a_hostile_unpinned_archive_is_refused_before_it_is_pinned(
    cache_env: Path, http_server: FileServer
) -> None:
    link = tarfile.TarInfo("ResNet50_pretrained/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    data = tar_bytes({"ResNet50_pretrained/conv1_weights": b"c"}, {"l": link})
    info, variant = variant_for(http_server.set_file("/evil.tar", data), data, checksum=None, size=None)
    with pytest.raises(DownloadError, match="are an unsafe tar archive .*'ResNet50_pretrained/evil'") as err:
        hub.download_variant(info, variant)
    assert "is a symbolic link" in str(err.value) and "web page" not in str(err.value)
    assert blobs(cache_env) == [] and not (cache_env / "refs").exists()
    assert not (cache_env / "unpacked").exists()
