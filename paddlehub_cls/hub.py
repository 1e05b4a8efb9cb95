"""Cache roots, verified resumable downloads, mirrors, offline mode and unpacking.

The cache layout, environment variables and guarantees are described in
``docs/cache.md``. In short: files are stored by sha256 under ``blobs/sha256/``
with a JSON stamp that makes a cache hit cost a ``stat``; nothing reaches a final
path before its checksum (or, for unpinned files, the sha256 recorded on first
use) is verified; read-only shared caches are searched first and never written.
The layout lives in :mod:`paddlehub_cls._cache`, the transfers in
:mod:`paddlehub_cls._transfer`.

This module never imports paddle; ``requests``, ``tqdm`` and ``filelock`` are imported
only when something is actually downloaded or unpacked (a cache hit needs no lock).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

from paddlehub_cls import _transfer, archive
from paddlehub_cls._cache import (
    HEX,
    CacheRoot,
    Hit,
    Want,
    add_source,
    cache_roots,
    download_timeout,
    env_flag,
    hash_file,
    local_rank,
    lookup,
    quarantine_blob,
    recorded_pin,
    shared_cache_roots,
    user_cache_root,
)
from paddlehub_cls.errors import DownloadError, LockTimeoutError, UnsafeArchiveError, WeightsFormatError

if TYPE_CHECKING:  # pragma: no cover
    from paddlehub_cls.registry import ModelInfo, WeightVariant

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "download_variant",
    "fetch",
    "recorded_checksum",
    "shared_cache_roots",
    "unpack_local_archive",
    "user_cache_root",
]


def fetch(
    urls: Union[str, Sequence[str]],
    checksum: Optional[str],
    *,
    size: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[bool] = None,
    filename: Optional[str] = None,
) -> Path:
    """Return the verified cached copy of a file, downloading it if no cache has it.

    Args:
        urls: one URL or several (tried in order after any ``PADDLEHUB_CLS_MIRROR`` bases);
            ``http(s)://`` and ``file://``.
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"``; None trusts the file on first use
            (a warning says so, its sha256 is recorded and checked on every later use).
        size: expected size in bytes, when known.
        cache_dir: user cache root (default ``$PADDLEHUB_CLS_HOME`` or
            ``${XDG_CACHE_HOME:-~/.cache}/paddlehub_cls``).
        progress: show a progress bar; None shows one only on a terminal;
            ``PADDLEHUB_CLS_DISABLE_PROGRESS=1`` always hides it.
        filename: name used in messages and ``cache ls`` (default: the URL's basename).

    Returns:
        Path of the verified file (``<root>/blobs/sha256/<sha256>``); treat it as read-only.

    Raises:
        ChecksumError: the bytes do not match; nothing was cached.
        OfflineError: ``PADDLEHUB_CLS_OFFLINE=1`` and no cache has the file.
        LockTimeoutError: another process's download did not finish in time.
        DownloadError: every URL failed (the message lists why).
        CacheError: the user cache cannot be written.
    """
    want = Want.make(urls, checksum, size=size, filename=filename)
    return obtain(want, cache_dir=cache_dir, progress=progress).path


def download_variant(
    info: "ModelInfo",
    variant: "WeightVariant",
    *,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[bool] = None,
) -> Path:
    """Fetch a registry weight variant and return what the format readers need.

    Returns:
        The verified file (``pdparams``, ``safetensors``), or for ``fluid-tar`` /
        ``fluid-zip`` the ``archive_root`` directory inside the safely unpacked archive.

    Raises:
        See :func:`fetch`; also UnsafeArchiveError for a hostile archive and
        WeightsFormatError when the archive lacks its ``archive_root``.
    """
    want = Want.make(
        variant.urls,
        variant.checksum,
        size=variant.size,
        model=info.name,
        tag=variant.tag,
        note=getattr(variant, "checksum_note", None),
    )
    hit = obtain(want, cache_dir=cache_dir, progress=progress)
    if variant.container not in ("fluid-tar", "fluid-zip"):
        return hit.path
    try:
        top = unpack(hit, cache_dir=cache_dir)
    except UnsafeArchiveError as err:
        moved = reject_artifact(hit.path, str(err), cache_dir=cache_dir)
        where = f" It was moved to {moved}." if moved else ""
        raise UnsafeArchiveError(f"{want.describe()}: {err}{where}") from err
    target = top / variant.archive_root if variant.archive_root else top
    if not target.is_dir():
        found = sorted(p.name for p in top.iterdir() if p.name != archive.MARKER)
        raise WeightsFormatError(
            f"{want.describe()} unpacked to {top} holds {found}, not the directory {variant.archive_root!r} "
            "the registry names; the file behind the URL may have changed: fix archive_root or the URL in "
            "the registry"
        )
    return target


def recorded_checksum(path: PathLike) -> Optional[str]:
    """``"sha256:<hex>"`` of the verified artifact behind a path this module returned, else None."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.parent.name in ("sha256", "unpacked") and HEX["sha256"].match(candidate.name):
            return f"sha256:{candidate.name}"
    return None


def reject_artifact(path: PathLike, reason: str, *, cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """Quarantine the user-cache artifact behind ``path`` whose content turned out hostile or unreadable.

    A checksum proves only that the bytes are the ones published; a file that
    then fails to unpack or parse must not stay where a verified artifact is
    expected. Shared caches are never written: their copies are left alone.

    Returns:
        The quarantine path, or None when the artifact is not in the user cache.
    """
    found = recorded_checksum(path)
    if found is None:
        return None
    sha = found.split(":", 1)[1]
    user = CacheRoot(user_cache_root(cache_dir), True)
    if not user.blob(sha).exists():
        return None
    with _locked(user, f"unpack-{sha}", f"quarantining {user.blob(sha)}"):
        shutil.rmtree(user.unpacked(sha), ignore_errors=True)
        if not user.blob(sha).exists():
            return None
        return quarantine_blob(user, sha, reason)


def unpack_local_archive(path: PathLike, *, cache_dir: Optional[PathLike] = None) -> Path:
    """Safely unpack a user-supplied archive into the user cache (keyed by its sha256).

    Returns:
        The archive's single top-level directory, or the extraction directory when
        the archive holds several top-level entries.
    """
    path = Path(path)
    sha, _md5, _size = hash_file(path)
    user = CacheRoot(user_cache_root(cache_dir), True)
    user.prepare()
    top = _unpack_blob(path, sha, [user])
    entries = [p for p in top.iterdir() if p.name != archive.MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else top


def unpack(hit: Hit, *, cache_dir: Optional[PathLike] = None) -> Path:
    """The unpacked directory of a cached archive: a shared one if complete, else one in the user cache."""
    return _unpack_blob(hit.path, hit.sha256, cache_roots(cache_dir))


def _unpack_blob(blob: Path, sha256: str, roots: Sequence[CacheRoot]) -> Path:
    for root in roots:
        if archive.is_complete(root.unpacked(sha256)):
            return root.unpacked(sha256)
    user = roots[-1]
    user.prepare()
    with _locked(user, f"unpack-{sha256}", f"unpacking {blob}"):
        dest = user.unpacked(sha256)
        if archive.is_complete(dest):
            return dest
        # Under the lock, leftovers of extractions by crashed processes are stale.
        for stale in dest.parent.glob(f".{sha256}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        logger.info("unpacking %s into %s", blob, dest)
        return archive.extract_archive(blob, dest, archive_sha256=sha256)


class _locked:
    """Per-artifact file lock in the user cache, bounded by PADDLEHUB_CLS_DOWNLOAD_TIMEOUT."""

    def __init__(self, root: CacheRoot, key: str, what: str) -> None:
        import filelock  # here, not at the top: a warm load (a cache hit) takes no lock

        self.path = root.locks / f"{key}.lock"
        self.what = what
        # 0o664: users sharing a cache through a group can wait on each other's locks.
        self.lock = filelock.FileLock(str(self.path), mode=0o664)

    def __enter__(self) -> "_locked":
        import filelock

        timeout = download_timeout()
        try:
            self.lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise LockTimeoutError(
                f"waited {timeout:g}s for lock {self.path} while another process was {self.what}; if that "
                "process is still working, wait or raise PADDLEHUB_CLS_DOWNLOAD_TIMEOUT; if no other "
                "process is running (a stale lock on a network filesystem), delete the lock file"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def obtain(want: Want, *, cache_dir: Optional[PathLike] = None, progress: Optional[bool] = None) -> Hit:
    """Find ``want`` in a cache or download it; returns the verified hit (used by :func:`fetch`)."""
    if want.algo is None and env_flag("PADDLEHUB_CLS_REQUIRE_CHECKSUM"):
        raise DownloadError(_strict_message(want, cache_dir))
    roots = cache_roots(cache_dir)
    hit = lookup(want, roots)
    if hit:
        add_source(hit, want)
        logger.debug("cache hit for %s: %s", want.describe(), hit.path)
        return hit
    rank = local_rank()
    if rank not in (None, 0):
        return _wait_for_rank0(want, roots, rank)
    user = roots[-1]
    user.prepare()
    with _locked(user, want.key, f"downloading {want.urls[0]}"):
        hit = lookup(want, roots)  # another process may have finished while we waited
        if hit:
            add_source(hit, want)
            return hit
        return _transfer.download(want, user, progress)


def _strict_message(want: Want, cache_dir: Optional[PathLike]) -> str:
    pin = recorded_pin(want, cache_roots(cache_dir))
    seen = (
        f" Your cache recorded sha256:{pin} for it on first use; if you trust that copy, pin it."
        if pin
        else ""
    )
    note = f" ({want.note})" if want.note else ""
    return (
        f"{want.describe()} has no published checksum{note} and PADDLEHUB_CLS_REQUIRE_CHECKSUM=1 refuses "
        f'unpinned files.{seen} To pin one, write an extra registry file that sets "checksum": '
        '"sha256:<hex>" for this variant and point PADDLEHUB_CLS_REGISTRY at it; or unset '
        "PADDLEHUB_CLS_REQUIRE_CHECKSUM to trust the file on first use."
    )


def _wait_for_rank0(want: Want, roots: Sequence[CacheRoot], rank: int) -> Hit:
    timeout = download_timeout()
    deadline = time.monotonic() + timeout
    poll = min(1.0, max(0.05, timeout / 20))
    logger.info("local rank %d waits for local rank 0 to download %s", rank, want.describe())
    while True:
        hit = lookup(want, roots)
        if hit:
            return hit
        if time.monotonic() >= deadline:
            raise LockTimeoutError(
                f"local rank {rank} waited {timeout:g}s for local rank 0 to download {want.describe()} into "
                f"{roots[-1].path}; make sure rank 0 loads the same weights with the same cache directory "
                "(PADDLEHUB_CLS_HOME shared by all ranks of the node), download them beforehand with "
                "`paddlehub-cls download NAME`, or raise PADDLEHUB_CLS_DOWNLOAD_TIMEOUT"
            )
        time.sleep(poll)
