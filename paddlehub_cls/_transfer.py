"""Moving bytes into the user cache: mirrors, resumable HTTP, file:// copies, verification.

Internal to :mod:`paddlehub_cls.hub`, which calls :func:`download` with the
artifact lock held. A transfer fills ``tmp/<key>.partial`` (resumable by the next
process with Range/If-Range), is hashed while it streams, and is moved to its
content address only after its size and checksum match.

Hashing, the slow part, overlaps the transfer (:mod:`paddlehub_cls._hashing`), and md5
is computed only when the pin is one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from paddlehub_cls._cache import (
    CacheRoot,
    Hit,
    Want,
    atomic_write_json,
    env_flag,
    env_number,
    fsync_dir,
    read_json,
    record,
    recorded_pin,
    warn_user,
)
from paddlehub_cls._hashing import Hashes as _Hashes
from paddlehub_cls.errors import CacheError, ChecksumError, DownloadError, OfflineError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
_MAX_BACKOFF = 60.0
# Called for every back-off pause; tests replace it to observe delays without waiting.
_sleep = time.sleep


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


class _Retry(Exception):
    """A transient failure of one attempt: retry the same URL after a pause."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Mismatch(Exception):
    """The bytes from one URL are not the wanted ones (size or checksum)."""

    def __init__(self, message: str, resumed: bool = False) -> None:
        super().__init__(message)
        self.resumed = resumed  # the transfer continued an earlier partial file


@dataclass
class _Partial:
    """``tmp/<key>.partial`` plus ``.json`` (URL and validators), guarded by the artifact lock.

    A crashed process leaves both behind; the next one resumes with Range/If-Range.
    """

    path: Path
    meta_path: Path

    @classmethod
    def of(cls, root: CacheRoot, want: Want) -> "_Partial":
        return cls(root.tmp / f"{want.key}.partial", root.tmp / f"{want.key}.partial.json")

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def meta(self) -> Dict[str, Any]:
        """The note, or {} (nothing to resume) when it is missing or damaged."""
        meta = read_json(self.meta_path) or {}
        ok = (
            isinstance(meta.get("url"), str)
            and all(isinstance(meta.get(k), (str, type(None))) for k in ("etag", "last_modified"))
            and isinstance(meta.get("encoded", False), bool)
        )
        return meta if ok else {}

    def reset(self) -> None:
        for p in (self.path, self.meta_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def forget(self) -> None:
        """Drop the note (URL, validators): without it the partial is never resumed, only replaced."""
        try:
            self.meta_path.unlink()
        except FileNotFoundError:
            pass

    def tidy(self) -> None:
        """Remove half-written notes of crashed processes (only the lock holder writes them)."""
        for stale in self.meta_path.parent.glob(f".{self.meta_path.name}.*.tmp"):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass


def _show_progress(progress: Optional[bool]) -> bool:
    if env_flag("PADDLEHUB_CLS_DISABLE_PROGRESS"):
        return False
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def download(want: Want, user: CacheRoot, progress: Optional[bool]) -> Hit:
    """Try every candidate URL in turn; the first verified transfer is committed. Lock held."""
    offline = env_flag("PADDLEHUB_CLS_OFFLINE")
    pin = recorded_pin(want, [user]) if not want.algo else None
    candidates = candidate_urls(want.urls)
    if offline:
        candidates = [u for u in candidates if u.startswith("file://")]
        if not candidates:
            raise OfflineError(offline_message(want, user))
    partial = _Partial.of(user, want)
    partial.tidy()
    failures: List[str] = []
    mismatch: Optional[_Mismatch] = None
    session = None
    try:
        for url in candidates:
            for fresh in (False, True):
                try:
                    if url.startswith("file://"):
                        hashes = _copy_file_url(url, partial, want)
                    else:
                        if session is None:
                            session = _new_session()
                        hashes = _http_download(session, url, partial, want, progress, fresh)
                    return _verify_and_commit(want, user, partial, hashes, url, pin)
                except _Mismatch as exc:
                    partial.reset()
                    if not fresh and exc.resumed:
                        # The file may have changed between two resumes: one fresh try.
                        logger.warning("%s; downloading %s again from the start", exc, url)
                        continue
                    mismatch = exc
                    failures.append(f"{url}: {exc}")
                except DownloadError as exc:
                    failures.append(f"{url}: {exc}")
                except CacheError:
                    raise
                except OSError as exc:  # writing the partial failed: full disk, quota, permissions
                    partial.reset()
                    raise CacheError(
                        f"cannot write {want.describe()} into the cache {user.path} ({exc}); nothing was "
                        "cached. Free disk space, or point PADDLEHUB_CLS_HOME (or cache_dir=) at a bigger "
                        "writable disk"
                    ) from exc
                break
    finally:
        if session is not None:
            session.close()
    if mismatch is not None and len(failures) == 1:
        msg = str(mismatch)
        raise ChecksumError(msg if str(user.path) in msg else f"{msg} (user cache {user.path})")
    if mismatch is not None:
        raise ChecksumError(
            f"no URL gave the right bytes for {want.describe()}:\n  "
            + "\n  ".join(failures)
            + f"\nNothing was cached in {user.path}."
        )
    if offline:
        raise OfflineError(offline_message(want, user) + "\n  " + "\n  ".join(failures))
    kept = partial.size()
    where = f"Nothing was cached in {user.path}" + (
        f"; the {kept} bytes received so far are kept in {partial.path} and the next attempt resumes them"
        if kept
        else ""
    )
    raise DownloadError(
        f"could not download {want.describe()}:\n  " + "\n  ".join(failures) + f"\n{where}. Check the "
        "network or proxy settings, set PADDLEHUB_CLS_MIRROR to a reachable mirror, or copy the file in with "
        "`paddlehub-cls cache import`."
    )


def offline_message(want: Want, user: CacheRoot) -> str:
    shared = os.environ.get("PADDLEHUB_CLS_SHARED_CACHE", "")
    return (
        f"PADDLEHUB_CLS_OFFLINE=1 and {want.describe()} (checksum {want.checksum or 'none published'}) is in "
        f"no cache (user cache {user.path}; shared caches {shared or 'none'}). To get it: on a machine with "
        "internet run `paddlehub-cls download NAME` and `paddlehub-cls cache export bundle.tar NAME`, then "
        "here `paddlehub-cls cache import bundle.tar`; or point PADDLEHUB_CLS_SHARED_CACHE at a cache that "
        "has it; or set PADDLEHUB_CLS_MIRROR to a file:// mirror; or unset PADDLEHUB_CLS_OFFLINE."
    )


def _verify_and_commit(
    want: Want, user: CacheRoot, partial: _Partial, hashes: _Hashes, url: str, pin: Optional[str]
) -> Hit:
    expected_algo, expected = (want.algo, want.hexdigest) if want.algo else ("sha256", pin)
    if want.size is not None and hashes.size != want.size:
        raise _Mismatch(
            f"{url} gave {hashes.size} bytes but {want.describe()} is {want.size} bytes; the partial "
            f"download {partial.path} was deleted and nothing was cached. The server or mirror may serve an "
            "error page or another file: retry later or use another mirror"
        )
    actual = hashes.digest(expected_algo)
    if expected and actual != expected:
        what = "the sha256 recorded on first use" if not want.algo else "the registry checksum"
        raise _Mismatch(
            f"checksum mismatch for {url}: expected {expected_algo}:{expected} ({what}), got "
            f"{expected_algo}:{actual} ({hashes.size} bytes); the partial download {partial.path} was "
            "deleted and nothing was cached. The server or a mirror may serve a damaged or different file: "
            "retry, remove that mirror from PADDLEHUB_CLS_MIRROR, or if the file was legitimately replaced, "
            "pin the new checksum in an extra registry file (PADDLEHUB_CLS_REGISTRY)"
            + ("" if want.algo else " or drop the recorded one with `paddlehub-cls cache rm NAME`"),
            resumed=hashes.resumed,
        )
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


def _copy_file_url(url: str, partial: _Partial, want: Want) -> _Hashes:
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


def _new_session() -> Any:
    import requests

    from paddlehub_cls import __version__

    session = requests.Session()
    # identity: a compressed transfer could not be resumed by byte offset.
    session.headers.update({"User-Agent": f"paddlehub_cls/{__version__}", "Accept-Encoding": "identity"})
    return session


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _http_download(
    session: Any, url: str, partial: _Partial, want: Want, progress: Optional[bool], fresh: bool
) -> _Hashes:
    """Fill the partial file from ``url``, retrying transient failures with back-off."""
    retries = int(env_number("PADDLEHUB_CLS_RETRIES", 5))
    backoff = env_number("PADDLEHUB_CLS_BACKOFF", 1.0)
    if fresh:
        partial.reset()
    failed, best = 0, partial.size()
    while True:
        try:
            return _http_attempt(session, url, partial, want, progress)
        except _Retry as exc:
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


def _http_attempt(session: Any, url: str, partial: _Partial, want: Want, progress: Optional[bool]) -> _Hashes:
    import requests
    import urllib3

    timeout = (
        env_number("PADDLEHUB_CLS_CONNECT_TIMEOUT", 10.0, 0.001),
        env_number("PADDLEHUB_CLS_READ_TIMEOUT", 60.0, 0.001),
    )
    meta = partial.meta()
    # A body the server compressed (despite Accept-Encoding: identity) has no byte offsets to resume at.
    have = partial.size() if meta.get("url") == url and not meta.get("encoded") else 0
    if have == 0:
        partial.reset()
    validator = meta.get("etag") or meta.get("last_modified")
    headers = {}
    # Without a validator a changed file would be stitched together; only a pinned checksum makes that safe.
    if have and (validator or want.algo):
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    elif have:
        partial.reset()
        have = 0
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _Retry(f"{type(exc).__name__}: {exc}") from None
    except requests.RequestException as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from None
    with resp:
        status = resp.status_code
        if status == 429 or 500 <= status < 600:
            raise _Retry(f"HTTP {status} {resp.reason}", _retry_after(resp.headers.get("Retry-After")))
        if status == 416:
            done = re.match(r"bytes \*/(\d+)$", resp.headers.get("Content-Range", ""))
            if have and done and int(done.group(1)) == have:
                # An earlier attempt already got every byte (say, the server announced a too long body).
                return _hash_partial(partial, md5=want.algo == "md5")
            partial.reset()
            raise _Retry(f"HTTP 416 for Range {have}-; restarting from the beginning", 0.0)
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} {resp.reason}")
        total: Optional[int] = None
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if encoded and status == 206:
            partial.reset()
            raise _Retry(
                f"the server compressed its answer to Range {have}-; starting again from byte 0", 0.0
            )
        if status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                partial.reset()
                raise _Retry(
                    f"the server answered Range {have}- with Content-Range "
                    f"{resp.headers.get('Content-Range')!r}; "
                    "restarting from the beginning",
                    0.0,
                )
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:
            if have:
                logger.info("%s did not resume at byte %d; downloading it whole", url, have)
            have = 0
            length = resp.headers.get("Content-Length")
            # The length of a compressed body says nothing about the size of the file.
            total = int(length) if length and length.isdigit() and not encoded else None
        if want.size is not None and total is not None and total != want.size:
            raise _Mismatch(
                f"{url} announces {total} bytes but {want.describe()} is {want.size} bytes; nothing was "
                "cached. The server or mirror may serve an error page or another file: retry later or use "
                "another mirror"
            )
        partial_meta = {
            "url": url,
            "etag": None if encoded else resp.headers.get("ETag"),
            "last_modified": None if encoded else resp.headers.get("Last-Modified"),
            "total": total,
            "encoded": encoded,
        }
        if status == 206:  # keep the validators of the transfer we resume
            partial_meta["etag"] = partial_meta["etag"] or meta.get("etag")
            partial_meta["last_modified"] = partial_meta["last_modified"] or meta.get("last_modified")
        partial.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(partial.path, "r+b" if have else "wb") as out,
            _Hashes(md5=want.algo == "md5", resumed=have > 0) as hashes,
        ):
            if have:  # hash what an earlier process wrote (queued first, so hashed first), then append
                for chunk in iter(lambda: out.read(1 << 20), b""):
                    hashes.update(chunk)
                out.truncate(have)
                out.seek(have)
            atomic_write_json(partial.meta_path, partial_meta)
            limit = want.size if want.size is not None else total
            bar = _progress_bar(progress, total, have, want.filename)
            try:
                while True:
                    try:
                        chunk = resp.raw.read1(_CHUNK, decode_content=encoded)
                    except (urllib3.exceptions.HTTPError, OSError) as exc:
                        raise _Retry(f"connection lost after {hashes.size} bytes ({exc})") from None
                    if not chunk:
                        break
                    if limit is not None and hashes.size + len(chunk) > limit:
                        raise _Mismatch(
                            f"{url} sent more than the {limit} bytes expected for {want.describe()}; nothing "
                            "was cached. The server or mirror may serve another file"
                        )
                    out.write(chunk)
                    out.flush()  # so a crash leaves every received byte for the next process to resume
                    hashes.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and hashes.size != total:
                raise _Retry(f"connection closed after {hashes.size} of {total} bytes")
            hashes.finish()
            os.fsync(out.fileno())
    return hashes


def _hash_partial(partial: _Partial, md5: bool) -> _Hashes:
    with open(partial.path, "rb") as f, _Hashes(md5, resumed=True) as hashes:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hashes.update(chunk)
        hashes.finish()
        os.fsync(f.fileno())
    return hashes


def _progress_bar(progress: Optional[bool], total: Optional[int], initial: int, name: str) -> Any:
    if not _show_progress(progress):
        logger.info("downloading %s (%s bytes)", name, total if total is not None else "unknown")
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr
    )
