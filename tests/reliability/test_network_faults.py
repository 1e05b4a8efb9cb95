"""Battery 1: network faults from a fault-injecting server on 127.0.0.1.

Each scenario programs :class:`httpserver.FileServer` and calls ``hub.fetch`` as a user's process
would. The expected outcome is either success with exactly the right bytes, or one specific
error whose message names the URL, the cache path and what to do. After every scenario the cache
is audited (:func:`_support.audit_cache`): nothing unverified at a final path, no stray partial;
where a failure kept a resumable partial, a follow-up fetch with the fault gone must resume it
and succeed. Back-off pauses are recorded, not slept.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pytest
from _support import audit_cache, count, free_port, sha256
from httpserver import Fault, FileServer

from paddlehub_cls import _transfer, hub
from paddlehub_cls.errors import ChecksumError, DownloadError

DATA = np.random.default_rng(1).integers(0, 256, 512 * 1024, dtype=np.uint8).tobytes()
OTHER = np.random.default_rng(2).integers(0, 256, 512 * 1024, dtype=np.uint8).tobytes()
SHA = sha256(DATA)
PATH = "/w.bin"


@dataclass
class Ctx:
    """What a scenario works with, and what it leaves for the common checks."""

    server: FileServer
    cache: Path
    sleeps: List[float]
    monkeypatch: pytest.MonkeyPatch
    url: str = ""
    urls: Sequence[str] = ()
    checksum: Optional[str] = f"sha256:{SHA}"
    size: Optional[int] = None
    expect_bytes: bytes = DATA
    error: Optional[BaseException] = None
    partial_kept: bool = False  # a failure that keeps a resumable partial
    followup: bool = True  # with the fault gone, the same fetch must then succeed
    notes: Dict[str, object] = field(default_factory=dict)

    def env(self, **values: object) -> None:
        for k, v in values.items():
            self.monkeypatch.setenv(f"PADDLEHUB_CLS_{k}", str(v))

    def fetch(self) -> Path:
        return hub.fetch(list(self.urls or [self.url]), self.checksum, size=self.size)

    def ok(self) -> Path:
        path = self.fetch()
        assert path.read_bytes() == self.expect_bytes
        assert path == self.cache / "blobs" / "sha256" / sha256(self.expect_bytes)
        return path

    def fails(self, cls: type, *fragments: str) -> str:
        with pytest.raises(cls) as err:
            self.fetch()
        assert type(err.value) is cls, f"expected exactly {cls.__name__}, got {type(err.value).__name__}"
        msg = str(err.value)
        for fragment in fragments:
            assert fragment in msg, f"{fragment!r} not in:\n{msg}"
        self.error = err.value
        return msg

    def gets(self, path: str = PATH) -> List[tuple]:
        return [(r.range, r.status) for r in self.server.requests_for(path)]


SCENARIOS: Dict[str, Callable[[Ctx], None]] = {}


def scenario(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    SCENARIOS[fn.__name__.replace("_", "-")] = fn
    return fn


# --------------------------------------------------------------------------- connection level


@scenario
def connection_refused(c: Ctx) -> None:
    c.url = f"http://127.0.0.1:{free_port()}/w.bin"
    c.env(RETRIES=2)
    c.fails(DownloadError, c.url, "connection refused", "PADDLEHUB_CLS_MIRROR")
    assert c.sleeps == []  # a refused connection is not retried: waiting does not heal it
    c.followup = False  # nothing listens there


@scenario
def refused_first_url_then_second(c: Ctx) -> None:
    dead = f"http://127.0.0.1:{free_port()}/w.bin"
    c.urls = [dead, c.url]
    c.env(RETRIES=1)
    c.ok()
    assert c.sleeps == [] and c.gets() == [(None, 200)]


@scenario
def reset_before_answer(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(reset=True), times=2)
    c.ok()
    assert c.sleeps == [1.0, 2.0] and len(c.gets()) == 3


@scenario
def reset_mid_body(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    c.ok()
    assert c.gets() == [(None, 200), ("bytes=100000-", 206)]
    assert c.server.body_bytes(PATH) == len(DATA)  # resumed, nothing fetched twice


@scenario
def stall_mid_body_past_read_timeout(c: Ctx) -> None:
    c.env(READ_TIMEOUT=1)
    c.server.add_fault(PATH, Fault(stall_after=200_000, stall=20))
    c.ok()
    assert c.gets()[1:] == [("bytes=200000-", 206)] and c.server.body_bytes(PATH) == len(DATA)


@scenario
def stall_before_headers(c: Ctx) -> None:
    c.env(READ_TIMEOUT=1)
    c.server.add_fault(PATH, Fault(stall_before_headers=20))
    c.ok()
    assert len(c.gets()) == 2 and c.sleeps == [1.0]


@scenario
def stall_forever_keeps_the_partial(c: Ctx) -> None:
    c.env(READ_TIMEOUT=1, RETRIES=2)
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    c.server.set_default_fault(PATH, Fault(stall_after=0, stall=20))
    c.fails(DownloadError, c.url, "gave up after 2 retries", "100000 bytes", "resume")
    # The attempt that grew the partial reset the count: a flaky link that progresses never gives up.
    assert c.sleeps == [1.0, 2.0] and [r for r, _ in c.gets()] == [None, "bytes=100000-", "bytes=100000-"]
    c.partial_kept = True


@scenario
def slow_trickle_within_the_timeout(c: Ctx) -> None:
    c.env(READ_TIMEOUT=2)
    c.server.add_fault(PATH, Fault(chunk=32768, delay=0.02))
    c.ok()
    assert c.sleeps == [] and len(c.gets()) == 1


# --------------------------------------------------------------------------- status codes


def _transient(status: int, times: int) -> Callable[[Ctx], None]:
    def run(c: Ctx) -> None:
        c.server.add_fault(PATH, Fault(status=status, body=b"busy"), times=times)
        c.ok()
        assert c.sleeps == [1.0 * 2**i for i in range(times)]
        assert [s for _, s in c.gets()] == [status] * times + [200]

    return run


SCENARIOS["http-500-twice"] = _transient(500, 2)
SCENARIOS["http-502-once"] = _transient(502, 1)
SCENARIOS["http-503-three-times"] = _transient(503, 3)


@scenario
def http_429_retry_after_seconds(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(status=429, headers={"Retry-After": "7"}))
    c.ok()
    assert c.sleeps == [7.0]


@scenario
def http_429_retry_after_date(c: Ctx) -> None:
    c.server.add_fault(
        PATH, Fault(status=429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    )
    c.ok()
    assert len(c.sleeps) == 1 and 20 < c.sleeps[0] <= 31


@scenario
def http_503_persistent(c: Ctx) -> None:
    c.env(RETRIES=3)
    c.server.set_default_fault(PATH, Fault(status=503))
    c.fails(DownloadError, c.url, "HTTP 503", "gave up after 3 retries", "PADDLEHUB_CLS_MIRROR")
    assert c.sleeps == [1.0, 2.0, 4.0]


@scenario
def http_404(c: Ctx) -> None:
    c.server.set_default_fault(PATH, Fault(status=404))
    c.fails(DownloadError, c.url, "HTTP 404", "PADDLEHUB_CLS_MIRROR")
    assert c.sleeps == [] and len(c.gets()) == 1


@scenario
def http_403(c: Ctx) -> None:
    c.server.set_default_fault(PATH, Fault(status=403))
    c.fails(DownloadError, c.url, "HTTP 403")
    assert c.sleeps == [] and len(c.gets()) == 1


@scenario
def mirror_404_falls_back_to_origin(c: Ctx) -> None:
    c.monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", c.server.url("/mirror"))
    c.ok()
    assert [r.status for r in c.server.requests] == [404, 200]


@scenario
def redirect_chain(c: Ctx) -> None:
    c.server.add_fault("/a", Fault(redirect_to="/b"))
    c.server.add_fault("/b", Fault(redirect_to=c.server.url("/c")))
    c.server.add_fault("/c", Fault(redirect_to=PATH))
    c.url = c.server.url("/a")
    c.ok()
    assert [r.path for r in c.server.requests] == ["/a", "/b", "/c", PATH]


@scenario
def redirect_loop(c: Ctx) -> None:
    c.server.set_default_fault("/loop1", Fault(redirect_to="/loop2"))
    c.server.set_default_fault("/loop2", Fault(redirect_to="/loop1"))
    c.url = c.server.url("/loop1")
    c.fails(DownloadError, c.url, "redirects")
    assert c.sleeps == []
    c.followup = False


# --------------------------------------------------------------------------- wrong bodies


@scenario
def content_length_shorter_than_body(c: Ctx) -> None:
    c.server.set_default_fault(PATH, Fault(content_length_delta=-100))
    c.fails(ChecksumError, c.url, f"expected sha256:{SHA}", f"got sha256:{sha256(DATA[:-100])}", "deleted")


@scenario
def content_length_shorter_with_a_known_size(c: Ctx) -> None:
    c.size = len(DATA)
    c.server.set_default_fault(PATH, Fault(content_length_delta=-100))
    c.fails(ChecksumError, c.url, f"announces {len(DATA) - 100} bytes", f"is {len(DATA)} bytes", "mirror")
    assert len(c.gets()) == 1 and c.sleeps == []  # refused from the headers, not retried


@scenario
def content_length_longer_than_body(c: Ctx) -> None:
    c.server.set_default_fault(PATH, Fault(content_length_delta=100))
    c.ok()
    assert c.gets()[-1] == (f"bytes={len(DATA)}-", 416)


@scenario
def server_ignores_range(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    c.server.set_default_fault(PATH, Fault(ignore_range=True))
    c.ok()
    assert c.gets() == [(None, 200), ("bytes=100000-", 200)]


@scenario
def range_answered_at_the_wrong_offset(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    c.server.add_fault(PATH, Fault(range_offset=0))
    c.ok()
    assert c.gets() == [(None, 200), ("bytes=100000-", 206), (None, 200)]


@scenario
def html_error_page_with_200(c: Ctx) -> None:
    c.server.set_default_fault(PATH, Fault(body=b"<html><body>502 Bad Gateway</body></html>"))
    c.fails(ChecksumError, c.url, f"expected sha256:{SHA}", "(41 bytes)", str(c.cache / "tmp"), "mirror")


@scenario
def html_error_page_from_a_mirror(c: Ctx) -> None:
    base = c.server.url("/mirror")
    c.monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", base)
    c.server.set_file(f"/mirror/{c.server.host}{PATH}", b"<html>login required</html>")
    c.ok()
    assert [r.path for r in c.server.requests] == [f"/mirror/{c.server.host}{PATH}", PATH]


@scenario
def gzip_body_despite_identity(c: Ctx) -> None:
    packed = gzip.compress(DATA, 1)
    c.server.set_default_fault(PATH, Fault(body=packed, headers={"Content-Encoding": "gzip"}))
    c.ok()
    assert c.server.requests[0].headers["accept-encoding"] == "identity"


# --------------------------------------------------------------------------- files that change


def _change_on_first_pause(c: Ctx, data: bytes, etag: str) -> None:
    def change(delay: float) -> None:
        c.sleeps.append(delay)
        if len(c.sleeps) == 1:
            c.server.set_file(PATH, data, etag=etag)

    c.monkeypatch.setattr(_transfer, "_sleep", change)


@scenario
def file_changes_between_resumes_unpinned(c: Ctx) -> None:
    c.server.set_file(PATH, OTHER, etag='"v1"')
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    _change_on_first_pause(c, DATA, '"v2"')
    c.checksum = None
    with pytest.warns(UserWarning, match="no published checksum"):
        c.ok()  # the new file, whole: never the first 100 kB of v1 stitched to v2
    reqs = c.server.requests_for(PATH)
    assert reqs[1].headers["if-range"] == '"v1"' and (reqs[1].range, reqs[1].status) == ("bytes=100000-", 200)


@scenario
def file_changes_between_resumes_pinned(c: Ctx) -> None:
    c.checksum = f"sha256:{sha256(OTHER)}"
    c.expect_bytes = OTHER
    c.server.set_file(PATH, OTHER, etag='"v1"')
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    _change_on_first_pause(c, DATA, '"v2"')
    c.fails(
        ChecksumError, c.url, f"expected sha256:{sha256(OTHER)}", f"got sha256:{SHA}", "pin the new checksum"
    )
    c.followup = False  # the server now has other bytes: the pin correctly refuses them for good


@scenario
def file_changes_behind_the_same_etag(c: Ctx) -> None:
    c.server.set_file(PATH, OTHER, etag='"same"')
    c.server.add_fault(PATH, Fault(drop_after=100_000))
    _change_on_first_pause(c, DATA, '"same"')
    c.ok()  # the stitched file fails the checksum; one fresh download follows
    assert c.gets() == [(None, 200), ("bytes=100000-", 206), (None, 200)]


@scenario
def resume_validated_by_last_modified_only(c: Ctx) -> None:
    c.server.add_fault(PATH, Fault(drop_after=100_000, headers={"ETag": ""}))
    c.server.set_default_fault(PATH, Fault(headers={"ETag": ""}))
    c.ok()
    second = c.server.requests_for(PATH)[1]
    assert (
        second.range == "bytes=100000-"
        and second.headers["if-range"].endswith("GMT")
        and second.status == 206
    )


@scenario
def unpinned_without_validators_is_not_stitched(c: Ctx) -> None:
    c.checksum = None
    no_validators = {"ETag": "", "Last-Modified": ""}
    c.server.add_fault(PATH, Fault(drop_after=100_000, headers=no_validators))
    c.server.set_default_fault(PATH, Fault(headers=no_validators))
    with pytest.warns(UserWarning, match="no published checksum"):
        c.ok()
    assert c.gets() == [(None, 200), (None, 200)]  # nothing proves the file is the same: start over


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_network_fault(
    name: str, cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    count("network fault scenarios")
    c = Ctx(http_server, cache_env, sleeps, monkeypatch, url=http_server.set_file(PATH, DATA))
    SCENARIOS[name](c)

    audit = audit_cache(cache_env)
    assert audit.problems == []
    blobs = audit.blobs
    if c.error is None:
        assert blobs == [sha256(c.expect_bytes)] and audit.partials == []
    else:
        assert blobs == [] and not (cache_env / "refs").exists()
        assert str(cache_env) in str(c.error), "the message must name the cache"
        assert bool(audit.partials) == c.partial_kept, audit.leftovers
        if c.followup:
            http_server.clear_faults()
            http_server.set_file(PATH, DATA)
            kept = cache_env / "tmp" / f"sha256-{SHA}.partial"
            have = kept.stat().st_size if c.partial_kept else 0
            http_server.reset_stats()
            c.error, c.size = None, None
            c.ok()
            first = http_server.requests_for(PATH)[0]
            assert first.range == (f"bytes={have}-" if have else None)
            assert audit_cache(cache_env).partials == [] and audit_cache(cache_env).problems == []
    count("network fault scenarios", outcome="passed")


def test_scenario_count() -> None:
    assert len(SCENARIOS) >= 14
