"""One HTTP attempt into a resumable partial file, and the state a transfer leaves in ``tmp/``.

Internal to :mod:`paddlehub_cls._transfer`, which owns the retry loop (with its back-off) and the
verification: :func:`http_attempt` fills ``tmp/<key>.partial`` once, resuming with Range/If-Range,
and raises :class:`Retry` for what waiting can heal, :class:`Mismatch` for wrong bytes and
``DownloadError`` for what it cannot (a 404, a host that does not resolve, a refused connection).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from paddlehub_cls._cache import CacheRoot, Want, atomic_write_json, read_json
from paddlehub_cls._env import env_flag, env_number
from paddlehub_cls._hashing import Hashes as _Hashes
from paddlehub_cls.errors import DownloadError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
# Connection failures that waiting does not heal: the next URL is tried at once.
_NO_ROUTE = (errno.ENETUNREACH, errno.EHOSTUNREACH)


class Retry(Exception):
    """A transient failure of one attempt: retry the same URL after a pause."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Mismatch(Exception):
    """The bytes from one URL are not the wanted ones (size or checksum)."""

    def __init__(self, message: str, resumed: bool = False, short: str = "") -> None:
        super().__init__(message)
        self.resumed = resumed  # the transfer continued an earlier partial file
        self.short = short or message  # the reason alone, for a list of URLs


@dataclass
class Partial:
    """``tmp/<key>.partial`` plus ``.json`` (URL and validators), guarded by the artifact lock.

    A crashed process leaves both behind; the next one resumes with Range/If-Range.
    """

    path: Path
    meta_path: Path

    @classmethod
    def of(cls, root: CacheRoot, want: Want) -> "Partial":
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


def show_progress(progress: Optional[bool]) -> bool:
    if env_flag("PADDLEHUB_CLS_DISABLE_PROGRESS"):
        return False
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def new_session() -> Any:
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


def http_attempt(session: Any, url: str, partial: Partial, want: Want, progress: Optional[bool]) -> _Hashes:
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
        reason, heals = _connection_failure(exc, url, timeout)
        if not heals:
            raise DownloadError(reason) from None
        raise Retry(reason) from None
    except requests.RequestException as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from None
    with resp:
        status = resp.status_code
        if status == 429 or 500 <= status < 600:
            raise Retry(f"HTTP {status} {resp.reason}", _retry_after(resp.headers.get("Retry-After")))
        if status == 416:
            done = re.match(r"bytes \*/(\d+)$", resp.headers.get("Content-Range", ""))
            if have and done and int(done.group(1)) == have:
                # An earlier attempt already got every byte (say, the server announced a too long body).
                return hash_partial(partial, md5=want.algo == "md5")
            partial.reset()
            raise Retry(f"HTTP 416 for Range {have}-; restarting from the beginning", 0.0)
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} {resp.reason}")
        total: Optional[int] = None
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if encoded and status == 206:
            partial.reset()
            raise Retry(
                f"the server compressed its answer to Range {have}-; starting again from byte 0", 0.0
            )
        if status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                partial.reset()
                raise Retry(
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
            raise Mismatch(
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
                        raise Retry(f"connection lost after {hashes.size} bytes ({_brief(exc)})") from None
                    if not chunk:
                        break
                    if limit is not None and hashes.size + len(chunk) > limit:
                        raise Mismatch(
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
                raise Retry(f"connection closed after {hashes.size} of {total} bytes")
            hashes.finish()
            os.fsync(out.fileno())
    return hashes


def _causes(exc: BaseException) -> List[BaseException]:
    """``exc`` and what it wraps (requests -> urllib3 -> socket), outermost first."""
    chain: List[BaseException] = []
    todo: List[Optional[BaseException]] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is c for c in chain):
            continue
        chain.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return chain


def _connection_failure(exc: BaseException, url: str, timeout: Tuple[float, float]) -> Tuple[str, bool]:
    """A short reason for a failed connection, and whether waiting can heal it.

    A name that does not resolve, a refused connection or a missing route fails the same way on
    every retry (no network, a typo, a blocked host), so the next URL is tried at once; timeouts
    and resets are often transient and are retried.
    """
    import requests

    parts = urllib.parse.urlsplit(url)
    chain = _causes(exc)
    for e in chain:
        if isinstance(e, socket.gaierror):
            return f"cannot resolve host {parts.hostname} ({e.strerror or e})", False
        if isinstance(e, ConnectionRefusedError):
            return f"connection refused by {parts.netloc}", False
        if isinstance(e, OSError) and e.errno in _NO_ROUTE:
            return f"no route to {parts.netloc} ({e.strerror})", False
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection to {parts.netloc} within {timeout[0]:g}s", True
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout[1]:g}s", True
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "connection reset", True
    return f"connection failed ({_brief(chain[-1])})", True


def _brief(exc: BaseException) -> str:
    """``Type: message`` on one line, cut to a length that keeps a retry warning readable."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:100]}"


def hash_partial(partial: Partial, md5: bool) -> _Hashes:
    with open(partial.path, "rb") as f, _Hashes(md5, resumed=True) as hashes:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hashes.update(chunk)
        hashes.finish()
        os.fsync(f.fileno())
    return hashes


def _progress_bar(progress: Optional[bool], total: Optional[int], initial: int, name: str) -> Any:
    if not show_progress(progress):
        logger.info("downloading %s (%s bytes)", name, total if total is not None else "unknown")
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr
    )
