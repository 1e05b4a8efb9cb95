"""Moving bytes into the user cache: mirrors, retries, file:// copies, verification, commit.

Internal to :mod:`paddlehub_cls.hub`, which calls :func:`download` (or :func:`add_file`) with the
artifact lock held. A transfer fills ``tmp/<key>.partial`` (resumable by the next
process with Range/If-Range; one HTTP attempt is :func:`paddlehub_cls._http.http_attempt`), is
hashed while it streams, and is moved to its content address only after its size and checksum
match.

Hashing, the slow part, overlaps the transfer (:mod:`paddlehub_cls._hashing`), and md5
is computed only when the pin is one.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from paddlehub_cls import _advice
from paddlehub_cls._env import env_flag, env_number
from paddlehub_cls._cache import (
    CacheRoot,
    Hit,
    Want,
    fsync_dir,
    record,
    recorded_pin,
    warn_user,
)
from paddlehub_cls._hashing import Hashes as _Hashes
from paddlehub_cls._http import Mismatch, Partial, Retry, http_attempt, new_session
from paddlehub_cls.errors import CacheError, ChecksumError, DownloadError, OfflineError, PaddleHubClsError

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 60.0
# Called for every back-off pause; tests replace it to observe delays without waiting.
_sleep = time.sleep

#: Checks that an artifact can be read (unpacked, parsed); raises a PaddleHubClsError if not.
Check = Callable[[Path], None]


def candidate_urls(urls: Sequence[str]) -> List[str]:
    """``PADDLEHUB_CLS_MIRROR`` bases first (``BASE/HOST/PATH``), then the URLs themselves."""
    out: List[str] = []
    for base in (b.strip().rstrip("/") for b in os.environ.get("PADDLEHUB_CLS_MIRROR", "").split(",")):
        if not base:
            continue
        if not base.startswith(("http://", "https://", "file://")):
            raise DownloadError(
                f"PADDLEHUB_CLS_MIRROR entry {base!r} is not an http://, https:// or file:// base URL; fix "
                "or remove it"
            )
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("http", "https") and parts.netloc:
                out.append(f"{base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else ""))
    return out + [u for u in urls if u not in out]


class _Unreadable(Exception):
    """Bytes about to be trusted on first use cannot be read (an HTML page, a truncated file)."""

    def __init__(self, message: str, error: PaddleHubClsError) -> None:
        super().__init__(message)
        self.error = error  # what the check raised


def download(want: Want, user: CacheRoot, progress: Optional[bool], check: Optional[Check] = None) -> Hit:
    """Try every candidate URL in turn; the first verified transfer is committed. Lock held.

    ``check`` vets an artifact before its first-use sha256 is recorded (see :func:`_verify_and_commit`).
    """
    offline = env_flag("PADDLEHUB_CLS_OFFLINE")
    pin = recorded_pin(want, [user]) if not want.algo else None
    candidates = candidate_urls(want.urls)
    if offline:
        candidates = [u for u in candidates if u.startswith("file://")]
        if not candidates:
            raise OfflineError(_advice.offline_miss(want, _advice.roots_of(user)))
    partial = Partial.of(user, want)
    partial.tidy()
    failures: List[str] = []
    mismatch: Optional[Mismatch] = None
    session = None
    try:
        for url in candidates:
            for fresh in (False, True):
                try:
                    if url.startswith("file://"):
                        hashes = _copy_file_url(url, partial, want)
                    else:
                        if session is None:
                            session = new_session()
                        hashes = _http_download(session, url, partial, want, progress, fresh)
                    return _verify_and_commit(want, user, partial, hashes, url, pin, check)
                except _Unreadable as exc:  # not retried: the same server would answer the same way
                    partial.reset()
                    failures.append(f"{url}: {exc}")
                except Mismatch as exc:
                    partial.reset()
                    if not fresh and exc.resumed:
                        # The file may have changed between two resumes: one fresh try.
                        logger.warning("%s; downloading %s again from the start", exc, url)
                        continue
                    mismatch = exc
                    failures.append(f"{url}: {exc.short}")
                except DownloadError as exc:
                    failures.append(f"{url}: {exc}")
                except CacheError:
                    raise
                except OSError as exc:  # writing the partial failed: full disk, quota, permissions
                    partial.reset()
                    raise _write_error(want, user, exc) from exc
                break
    finally:
        if session is not None:
            session.close()
    if mismatch is not None and len(failures) == 1:
        msg = str(mismatch)
        raise ChecksumError(msg if str(user.path) in msg else f"{msg} (user cache {user.path})")
    if mismatch is not None:
        raise ChecksumError(
            f"no URL gave the right bytes for {want.describe()}:{_advice.failure_lines(failures)}\n"
            f"Nothing was cached in {user.path}. The servers or mirrors may serve a damaged or different "
            "file: retry, remove a bad mirror from PADDLEHUB_CLS_MIRROR, or if the file was legitimately "
            "replaced, pin the new checksum in an extra registry file (PADDLEHUB_CLS_REGISTRY)."
        )
    if offline:
        miss = _advice.offline_miss(want, _advice.roots_of(user))
        raise OfflineError(miss + _advice.failure_lines(failures))
    kept = partial.size()
    note = (
        f"; the {kept} bytes received so far are kept in {partial.path} and the next attempt resumes them"
        if kept
        else ""
    )
    raise DownloadError(_advice.download_failed(want, user, failures, note))


def add_file(want: Want, user: CacheRoot, src: Path, check: Optional[Check] = None) -> Hit:
    """Store a local file exactly as a download of ``want`` would be: verified, stamped. Lock held.

    Raises:
        ChecksumError: the file is not the one ``want`` names (size or checksum); nothing was cached.
        UnsafeArchiveError, WeightsFormatError: an unpinned file that ``check`` cannot read.
        CacheError: the user cache cannot be written.
    """
    pin = recorded_pin(want, [user]) if not want.algo else None
    partial = Partial.of(user, want)
    partial.tidy()
    url = src.resolve().as_uri()
    try:
        hashes = _copy_file_url(url, partial, want)
        return _verify_and_commit(want, user, partial, hashes, url, pin, check)
    except Mismatch as exc:
        partial.reset()
        drop = f" or drop it with `paddlehub-cls cache rm {want.model}.{want.tag}`" if pin else ""
        raise ChecksumError(
            f"{src} is not {want.describe()}: {exc.short}; nothing was cached. Check that it is the file "
            f"behind {want.urls[0]} (a browser may have saved an error page or an unfinished download){drop}"
        ) from None
    except _Unreadable as exc:
        partial.reset()
        raise type(exc.error)(f"{src} is not {want.describe()}: {exc}") from None
    except (DownloadError, CacheError):
        raise
    except OSError as exc:
        partial.reset()
        raise _write_error(want, user, exc) from exc


def _write_error(want: Want, user: CacheRoot, exc: OSError) -> CacheError:
    return CacheError(
        f"cannot write {want.describe()} into the cache {user.path} ({exc}); nothing was cached. Free disk "
        "space, or point PADDLEHUB_CLS_HOME (or cache_dir=) at a bigger writable disk"
    )


def _verify_and_commit(
    want: Want,
    user: CacheRoot,
    partial: Partial,
    hashes: _Hashes,
    url: str,
    pin: Optional[str],
    check: Optional[Check] = None,
) -> Hit:
    """Move a verified partial to its content address and stamp it; ``Mismatch``/``_Unreadable`` if not.

    An unpinned artifact seen for the first time must also pass ``check``: its sha256 becomes the
    pin that every later download is held to, so a captive portal's page must never become it.
    """
    expected_algo, expected = (want.algo, want.hexdigest) if want.algo else ("sha256", pin)
    if want.size is not None and hashes.size != want.size:
        raise Mismatch(
            f"{url} gave {hashes.size} bytes but {want.describe()} is {want.size} bytes; the partial "
            f"download {partial.path} was deleted and nothing was cached. The server or mirror may serve an "
            "error page or another file: retry later or use another mirror",
            short=f"{hashes.size} bytes, expected {want.size}",
        )
    actual = hashes.digest(expected_algo)
    if expected and actual != expected:
        what = "the sha256 recorded on first use" if not want.algo else "the registry checksum"
        drop = f" or drop the recorded one with `paddlehub-cls cache rm {_advice.name(want)}`"
        raise Mismatch(
            f"checksum mismatch for {url}: expected {expected_algo}:{expected} ({what}), got "
            f"{expected_algo}:{actual} ({hashes.size} bytes); the partial download {partial.path} was "
            "deleted and nothing was cached. The server or a mirror may serve a damaged or different file: "
            "retry, remove that mirror from PADDLEHUB_CLS_MIRROR, or if the file was legitimately replaced, "
            "pin the new checksum in an extra registry file (PADDLEHUB_CLS_REGISTRY)"
            + ("" if want.algo else drop),
            resumed=hashes.resumed,
            short=f"checksum mismatch: expected {expected_algo}:{expected} ({what}), got "
            f"{expected_algo}:{actual} ({hashes.size} bytes)",
        )
    if check is not None and not want.algo and not pin:
        try:
            check(partial.path)
        except PaddleHubClsError as exc:
            with open(partial.path, "rb") as f:
                head = f.read(48)
            page = (
                "; this looks like a web page: a captive portal, proxy or error page answered with status 200"
                if head.lstrip()[:1] == b"<"
                else ""
            )
            raise _Unreadable(
                f"the {hashes.size} bytes received are {exc} (they start with {head!r}){page}. Nothing was "
                "cached and no checksum was recorded",
                exc,
            ) from None
    sha = str(hashes.digest("sha256"))
    blob = user.blob(sha)
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(partial.path, 0o644)
    # The note goes first: a crash right after the move must not leave it behind for a blob that is
    # found from then on without ever downloading (and so tidying) again.
    partial.forget()
    os.replace(partial.path, blob)
    fsync_dir(blob.parent)
    partial.reset()
    hit = record(user, sha, hashes.digest("md5"), hashes.size, want, url)
    if not want.algo and not pin:
        note = f" ({want.note})" if want.note else ""
        msg = (
            f"{want.describe()} has no published checksum{note}; trusting it on first use and recording "
            f"sha256:{sha} in {user.stamp(sha)}. Later uses are checked against it. Set "
            "PADDLEHUB_CLS_REQUIRE_CHECKSUM=1 to refuse unpinned files."
        )
        warn_user(msg)
    logger.info("verified %s -> %s", url, blob)
    return hit


def _copy_file_url(url: str, partial: Partial, want: Want) -> _Hashes:
    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    partial.reset()
    try:
        f = open(src, "rb")
    except FileNotFoundError:
        raise DownloadError(f"{src} does not exist") from None
    except OSError as exc:
        raise DownloadError(f"cannot read {src}: {exc}") from None
    # Errors from here on are the cache's (a full disk), reported by download() as CacheError.
    with f, open(partial.path, "wb") as out, _Hashes(md5=want.algo == "md5") as hashes:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            out.write(chunk)
            hashes.update(chunk)
        out.flush()
        hashes.finish()
        os.fsync(out.fileno())
    return hashes


def _http_download(
    session: Any, url: str, partial: Partial, want: Want, progress: Optional[bool], fresh: bool
) -> _Hashes:
    """Fill the partial file from ``url``, retrying transient failures with back-off."""
    retries = int(env_number("PADDLEHUB_CLS_RETRIES", 5))
    backoff = env_number("PADDLEHUB_CLS_BACKOFF", 1.0)
    if fresh:
        partial.reset()
    failed, best = 0, partial.size()
    while True:
        try:
            return http_attempt(session, url, partial, want, progress)
        except Retry as exc:
            # Attempts that grew the partial file do not count: a flaky link still finishes.
            if partial.size() > best:
                best, failed = partial.size(), 0
            failed += 1
            if failed > retries:
                raise DownloadError(f"{exc} (gave up after {retries} retries)") from None
            delay = exc.retry_after if exc.retry_after is not None else backoff * 2 ** (failed - 1)
            delay = min(delay, _MAX_BACKOFF)
            logger.warning("%s: %s; retry %d of %d in %.1fs", url, exc, failed, retries, delay)
            _sleep(delay)

