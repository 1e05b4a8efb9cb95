"""Cache layout: roots, stamps, refs and verified lookups (see docs/cache.md).

Internal to :mod:`paddlehub_cls.hub`, split out to keep modules small. Files live
by sha256 under ``blobs/sha256/`` beside a JSON stamp, so a hit costs a ``stat``;
``refs/`` maps an md5 checksum or (for unpinned files) a URL to a sha256. Shared
roots are read-only: nothing here writes into a root whose ``writable`` is False.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.parse
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from paddlehub_cls._env import download_timeout, env_flag
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import CacheError, LockTimeoutError, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    import filelock

logger = logging.getLogger(__name__)


HEX = {"md5": re.compile(r"^[0-9a-f]{32}$"), "sha256": re.compile(r"^[0-9a-f]{64}$")}


# --------------------------------------------------------------------------- roots and layout


def user_cache_root(cache_dir: Optional[PathLike] = None) -> Path:
    """The writable cache: ``cache_dir``, else ``$PADDLEHUB_CLS_HOME``, else
    ``${XDG_CACHE_HOME:-~/.cache}/paddlehub_cls``."""
    if cache_dir is not None:
        return Path(os.fspath(cache_dir)).expanduser()
    home = os.environ.get("PADDLEHUB_CLS_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "paddlehub_cls"


def shared_cache_roots() -> List[Path]:
    """Read-only caches from ``$PADDLEHUB_CLS_SHARED_CACHE`` (``os.pathsep``-separated), in order."""
    raw = os.environ.get("PADDLEHUB_CLS_SHARED_CACHE", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


@dataclass(frozen=True)
class CacheRoot:
    """One cache directory and the paths of its layout (see docs/cache.md)."""

    path: Path
    writable: bool

    @property
    def blobs(self) -> Path:
        """The folder of verified files, named by their sha256."""
        return self.path / "blobs" / "sha256"

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def stamp(self, sha256: str) -> Path:
        return self.blobs / f"{sha256}.json"

    @property
    def refs(self) -> Path:
        """Holds ``md5/`` and ``url/``: one file per key naming a blob's sha256."""
        return self.path / "refs"

    def ref(self, kind: str, key: str) -> Path:
        """``kind`` "md5": key is the md5 hex; "url": key is the URL (stored by its sha256)."""
        if kind == "url":
            key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.refs / kind / key

    @property
    def unpacked_dir(self) -> Path:
        return self.path / "unpacked"

    def unpacked(self, sha256: str) -> Path:
        return self.unpacked_dir / sha256

    @property
    def converted_dir(self) -> Path:
        """fastload's converted files; the version changes if the converted layout ever does."""
        return self.path / "fastload" / "v1"

    def converted(self, key: str) -> Path:
        return self.converted_dir / f"{key}.safetensors"

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    @property
    def locks(self) -> Path:
        return self.path / "locks"

    @property
    def quarantine(self) -> Path:
        return self.path / "quarantine"

    def prepare(self) -> None:
        """Create the writable directories, with an error that says how to fix a bad cache path."""
        try:
            for d in (self.blobs, self.tmp, self.locks):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.tmp / f".probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise CacheError(
                f"cache directory {str(self.path)!r} cannot be written ({exc}); pass cache_dir= or set "
                "PADDLEHUB_CLS_HOME to a writable directory (read-only caches belong in "
                "PADDLEHUB_CLS_SHARED_CACHE)"
            ) from exc


def cache_roots(cache_dir: Optional[PathLike] = None) -> List[CacheRoot]:
    """Shared roots first (read-only), then the user root."""
    return [CacheRoot(p, False) for p in shared_cache_roots()] + [CacheRoot(user_cache_root(cache_dir), True)]


# --------------------------------------------------------------------------- artifact locks


def _file_lock(root: CacheRoot, key: str) -> "filelock.FileLock":
    import filelock  # here, not at the top: a warm load (a cache hit) takes no lock

    # 0o664: users sharing a cache through a group can wait on each other's locks.
    return filelock.FileLock(str(root.locks / f"{key}.lock"), mode=0o664)


@contextmanager
def locked(root: CacheRoot, key: str, what: str, fix: Optional[str] = None) -> Iterator[Path]:
    """Hold the lock of artifact ``key`` in ``root`` (bounded by PADDLEHUB_CLS_DOWNLOAD_TIMEOUT).

    Args:
        root: a writable cache root.
        key: names the lock file ``<root>/locks/<key>.lock``.
        what: what the other process is doing, for the timeout message ("downloading URL").
        fix: the ways out a timeout message gives (default: wait, raise the timeout, delete a stale lock).

    Yields:
        The lock file's path.

    Raises:
        LockTimeoutError: another process held the lock for the whole timeout.
    """
    import filelock

    lock = _file_lock(root, key)
    path = root.locks / f"{key}.lock"
    timeout = download_timeout()
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise LockTimeoutError(
            f"waited {timeout:g}s for lock {path} while another process was {what}; "
            + (
                fix
                or "if that process is still working, wait or raise PADDLEHUB_CLS_DOWNLOAD_TIMEOUT; if no "
                "other process is running (a stale lock on a network filesystem), delete the lock file"
            )
        ) from None
    try:
        yield path
    finally:
        lock.release()


def try_lock(root: CacheRoot, key: str) -> Optional["filelock.FileLock"]:
    """The lock of artifact ``key`` if nobody holds it right now (release it when done), else None."""
    import filelock

    lock = _file_lock(root, key)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return None
    return lock


def warn_user(message: str) -> None:
    """``warnings.warn`` pointing at the first caller outside this package (and log it)."""
    logger.warning("%s", message)
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("paddlehub_cls"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def atomic_write_json(
    path: Path, data: Any, *, indent: int = 1, sort_keys: bool = True, end: str = ""
) -> None:
    """Write JSON so that readers see the old file or the complete new one (``end`` follows it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=indent, sort_keys=sort_keys) + end)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``, or None when it is absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_stamp(path: Path) -> Dict[str, Any]:
    """A blob's stamp, or {} when absent or unreadable; ``sources`` is always a list of dicts.

    Stamps are written by this package, but a damaged or hand-edited one must cost a re-hash,
    never a crash in every process that loads the artifact.
    """
    stamp = read_json(path) or {}
    sources = stamp.get("sources")
    stamp["sources"] = [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    for key in ("checksum", "trust", "url", "filename"):
        if not isinstance(stamp.get(key), (str, type(None))):
            del stamp[key]
    return stamp


def hash_file(path: Path) -> Tuple[str, str, int]:
    """(sha256, md5, size) of a file, streamed."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself was synced
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- what is wanted


def parse_checksum(checksum: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """``"md5:<hex>"`` / ``"sha256:<hex>"`` / None -> (algorithm, lower-case hex)."""
    if checksum is None:
        return None, None
    algo, _, hexd = str(checksum).partition(":")
    algo, hexd = algo.strip().lower(), hexd.strip().lower()
    if algo not in HEX or not HEX[algo].match(hexd):
        raise RegistryError(
            f"checksum {checksum!r} is not 'md5:<32 hex digits>' or 'sha256:<64 hex digits>'; fix it in the "
            "registry entry (or pass None to trust on first use)"
        )
    return algo, hexd


@dataclass(frozen=True)
class Want:
    """One artifact to find or fetch: its URLs and what its bytes must hash to."""

    urls: Tuple[str, ...]
    algo: Optional[str]
    hexdigest: Optional[str]
    size: Optional[int] = None
    filename: str = ""
    model: Optional[str] = None
    tag: Optional[str] = None
    note: Optional[str] = None

    @classmethod
    def make(
        cls,
        urls: Union[str, Sequence[str]],
        checksum: Optional[str],
        *,
        size: Optional[int] = None,
        filename: Optional[str] = None,
        model: Optional[str] = None,
        tag: Optional[str] = None,
        note: Optional[str] = None,
    ) -> "Want":
        url_list = (urls,) if isinstance(urls, str) else tuple(urls)
        if not url_list or not all(isinstance(u, str) and u for u in url_list):
            raise RegistryError(f"urls must be one or more non-empty URL strings, got {urls!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise RegistryError(f"size must be a non-negative int or None, got {size!r}")
        algo, hexd = parse_checksum(checksum)
        name = filename or Path(urllib.parse.urlparse(url_list[0]).path).name or "download"
        return cls(url_list, algo, hexd, size, name, model, tag, note)

    @property
    def checksum(self) -> Optional[str]:
        return f"{self.algo}:{self.hexdigest}" if self.algo else None

    @property
    def key(self) -> str:
        """Names this artifact's lock and partial file in the user cache."""
        if self.algo:
            return f"{self.algo}-{self.hexdigest}"
        return "url-" + hashlib.sha256(self.urls[0].encode("utf-8")).hexdigest()[:40]

    def describe(self) -> str:
        who = f"{self.model} weights {self.tag!r}: " if self.model else ""
        return f"{who}{self.filename} ({self.urls[0]})"

    def source(self) -> Optional[Dict[str, Optional[str]]]:
        return {"model": self.model, "tag": self.tag} if self.model else None


# --------------------------------------------------------------------------- cache lookup


@dataclass
class Hit:
    """A verified artifact found in a cache root."""

    root: CacheRoot
    sha256: str
    stamp: Dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root.blob(self.sha256)


@dataclass(frozen=True)
class Artifact:
    """A verified artifact as :func:`paddlehub_cls.hub.download_variant` returns it.

    Attributes:
        path: what the format readers need: the verified file, or for an archive the
            ``archive_root`` directory inside its unpacked copy.
        sha256: hex sha256 of the verified file (the archive itself for an unpacked directory).
        root: the cache root holding it (``root.writable`` is False for a shared cache).
        md5: hex md5 where the registry pins one, else None.
        inner: for an unpacked archive, ``path`` relative to the extraction (posix), else None.
    """

    path: Path
    sha256: str
    root: CacheRoot
    md5: Optional[str] = None
    inner: Optional[str] = None

    @property
    def checksum(self) -> str:
        """``"sha256:<hex>"``, as :class:`~paddlehub_cls.api.LoadReport` reports it."""
        return f"sha256:{self.sha256}"

    @property
    def shared(self) -> bool:
        """True when the artifact is in a read-only shared cache."""
        return not self.root.writable

    @property
    def key(self) -> str:
        """Names its converted copy: the sha256, plus 16 hex of ``inner`` inside an archive."""
        if self.inner is None:
            return self.sha256
        return f"{self.sha256}-{hashlib.sha256(self.inner.encode('utf-8')).hexdigest()[:16]}"

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def read_ref(path: Path) -> Optional[str]:
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if HEX["sha256"].match(value) else None


def quarantine_blob(root: CacheRoot, sha256: str, reason: str) -> Path:
    """Move a bad blob (and its stamp) out of the way into ``<root>/quarantine/``."""
    root.quarantine.mkdir(parents=True, exist_ok=True)
    dest = root.quarantine / f"{sha256}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    os.replace(root.blob(sha256), dest)
    atomic_write_json(dest.with_name(dest.name + ".json"), {"sha256": sha256, "reason": reason, "at": now()})
    try:
        root.stamp(sha256).unlink()
    except FileNotFoundError:
        pass
    logger.warning("moved %s to %s: %s", root.blob(sha256), dest, reason)
    return dest


def check_blob(root: CacheRoot, sha256: str, *, want: Optional[Want] = None) -> Optional[Hit]:
    """A verified hit for ``sha256`` in ``root``, trusting the stamp when size and mtime agree.

    A blob that changed since it was stamped is re-hashed; if it no longer matches
    it is quarantined (writable roots only) with a warning, and None is returned.
    """
    blob = root.blob(sha256)
    try:
        st = blob.stat()
    except OSError:
        return None
    stamp = read_stamp(root.stamp(sha256))
    # Any write to the file changes its mtime: an unchanged (size, mtime_ns) pair means unchanged bytes.
    fresh = (stamp.get("sha256"), stamp.get("size"), stamp.get("mtime_ns")) == (
        sha256,
        st.st_size,
        st.st_mtime_ns,
    )
    if not fresh:
        actual, md5, size = hash_file(blob)
        if actual != sha256:
            msg = (
                f"cached file {blob} changed after it was verified: expected sha256:{sha256}, found "
                f"sha256:{actual}"
            )
            if root.writable:
                quarantine_blob(root, sha256, msg)
            warn_user(msg + "; it will be fetched again")
            return None
        stamp.update(sha256=sha256, md5=md5, size=size, mtime_ns=st.st_mtime_ns)
        if root.writable:
            atomic_write_json(root.stamp(sha256), stamp)
    if want is not None:
        if want.algo == "md5" and stamp.get("md5") != want.hexdigest:
            return None
        if want.size is not None and stamp.get("size") != want.size:
            return None
    return Hit(root, sha256, stamp)


def find_in_root(root: CacheRoot, want: Want) -> Optional[Hit]:
    """Look ``want`` up by checksum or (for unpinned files) by URL; no hashing unless a stamp is stale."""
    if want.algo == "sha256":
        candidates = [want.hexdigest]
    elif want.algo == "md5":
        candidates = [read_ref(root.ref("md5", want.hexdigest))]
    else:
        candidates = [read_ref(root.ref("url", u)) for u in want.urls]
    for sha in candidates:
        if sha:
            hit = check_blob(root, sha, want=want)
            if hit:
                return hit
    return None


def lookup(want: Want, roots: Sequence[CacheRoot]) -> Optional[Hit]:
    """The first verified hit for ``want`` in ``roots`` (shared roots come first)."""
    for root in roots:
        hit = find_in_root(root, want)
        if hit:
            return hit
    return None


def recorded_pin(want: Want, roots: Sequence[CacheRoot]) -> Optional[str]:
    """For an unpinned artifact, the sha256 recorded on first use (kept even if the blob is gone)."""
    for root in roots:
        for url in want.urls:
            sha = read_ref(root.ref("url", url))
            if sha:
                return sha
    return None


def record(root: CacheRoot, sha256: str, md5: Optional[str], size: int, want: Want, url: str) -> Hit:
    """Write the stamp and refs of a verified blob at ``root.blob(sha256)`` (md5: None unless pinned)."""
    old = read_stamp(root.stamp(sha256))
    sources = list(old["sources"])
    if want.source() and want.source() not in sources:
        sources.append(want.source())
    stamp = {
        "sha256": sha256,
        "md5": md5,
        "size": size,
        "mtime_ns": root.blob(sha256).stat().st_mtime_ns,
        "url": url,
        "urls": list(want.urls),
        "filename": want.filename,
        "checksum": want.checksum or old.get("checksum"),
        "trust": "pinned" if want.algo or old.get("trust") == "pinned" else "tofu",
        "sources": sources,
        "verified_at": now(),
    }
    atomic_write_json(root.stamp(sha256), stamp)
    if want.algo == "md5":
        write_ref(root.ref("md5", want.hexdigest), sha256)
    if not want.algo:
        for u in want.urls:
            write_ref(root.ref("url", u), sha256)
    return Hit(root, sha256, stamp)


def write_ref(path: Path, sha256: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(sha256 + "\n", encoding="ascii")
    os.replace(tmp, path)


def add_source(hit: Hit, want: Want) -> None:
    if hit.root.writable and want.source() and want.source() not in hit.stamp.get("sources", []):
        hit.stamp.setdefault("sources", []).append(want.source())
        atomic_write_json(hit.root.stamp(hit.sha256), hit.stamp)


def blob_names(root: CacheRoot) -> List[str]:
    """sha256 names of the blobs in ``root``, sorted."""
    try:
        return sorted(n for n in os.listdir(root.blobs) if HEX["sha256"].match(n))
    except FileNotFoundError:
        return []
