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
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

from paddlehub_cls import _transfer, archive
from paddlehub_cls._env import download_timeout, env_flag, local_rank
from paddlehub_cls._cache import (
    Artifact,
    CacheRoot,
    Hit,
    Want,
    add_source,
    cache_roots,
    hash_file,
    locked,
    lookup,
    quarantine_blob,
    read_ref,
    read_stamp,
    recorded_pin,
    shared_cache_roots,
    user_cache_root,
)
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import DownloadError, LockTimeoutError, UnsafeArchiveError, WeightsFormatError

if TYPE_CHECKING:  # pragma: no cover
    from paddlehub_cls.registry import ModelInfo, WeightVariant

logger = logging.getLogger(__name__)


__all__ = [
    "Artifact",
    "cache_add",
    "download_variant",
    "fetch",
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
) -> Artifact:
    """Fetch a registry weight variant and return what the format readers need.

    Returns:
        The verified artifact: its ``path`` is the verified file (``pdparams``, ``safetensors``),
        or for ``fluid-tar`` / ``fluid-zip`` the ``archive_root`` directory inside the safely
        unpacked archive; it carries the sha256 (and md5 where pinned) and the cache root.

    Raises:
        See :func:`fetch`; also UnsafeArchiveError for a hostile archive and
        WeightsFormatError when the archive lacks its ``archive_root``.
    """
    want = _variant_want(info, variant)
    hit = obtain(want, cache_dir=cache_dir, progress=progress, check=readable_check(variant.container))
    md5 = want.hexdigest if want.algo == "md5" else None
    blob = Artifact(hit.path, hit.sha256, hit.root, md5)
    if variant.container not in ("fluid-tar", "fluid-zip"):
        return blob
    try:
        top = unpack(hit, cache_dir=cache_dir)
    except UnsafeArchiveError as err:
        moved = reject_artifact(blob, str(err), cache_dir=cache_dir)
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
    # The extraction may sit in a shared root even when the archive does not (see unpack).
    where = next(r for r in cache_roots(cache_dir) if top.parent == r.unpacked_dir)
    return Artifact(target, hit.sha256, where, md5, target.relative_to(top).as_posix())


def cache_add(
    name: str, file: PathLike, *, weights: Optional[str] = None, cache_dir: Optional[PathLike] = None
) -> Path:
    """Put a weight file obtained by hand (a browser, a USB stick) into the cache as a download would.

    The file is checked against the registry checksum of the variant; a variant without one is
    trusted on first use (with the usual warning) after it was checked readable, or held to the
    sha256 this cache recorded for it before. Afterwards ``load_model(name)`` finds it, also with
    ``PADDLEHUB_CLS_OFFLINE=1``.

    Args:
        name: model name, optionally ``"Name.tag"``.
        file: the weight file, as published at the variant's URL.
        weights: variant tag; default the tag in ``name``, else the model's default variant.
        cache_dir: user cache root (default ``$PADDLEHUB_CLS_HOME`` or ``~/.cache/paddlehub_cls``).

    Returns:
        The path of what :func:`download_variant` returns for it: the cached file, or the
        unpacked directory.

    Raises:
        UnknownModelError: unknown model or tag.
        DownloadError: ``file`` is not a readable file, or the variant is unpinned and
            ``PADDLEHUB_CLS_REQUIRE_CHECKSUM=1``.
        ChecksumError: the file is not the registry's (the message names both checksums); nothing
            was cached.
        UnsafeArchiveError, WeightsFormatError: an unpinned file that cannot be read.
    """
    from paddlehub_cls.registry import load_registry

    info, variant = load_registry().resolve(name, weights)
    src = Path(os.fspath(file)).expanduser()
    if not src.is_file():
        raise DownloadError(
            f"cannot add {str(src)!r} as {info.name}.{variant.tag}: it is not a file; give the path of the "
            f"weight file downloaded from {variant.urls[0]}"
        )
    want = _variant_want(info, variant)
    if want.algo is None and env_flag("PADDLEHUB_CLS_REQUIRE_CHECKSUM"):
        raise DownloadError(_strict_message(want, cache_dir))
    user = CacheRoot(user_cache_root(cache_dir), True)
    user.prepare()
    with locked(user, want.key, f"adding {src}"):
        _transfer.add_file(want, user, src, readable_check(variant.container))
    return download_variant(info, variant, cache_dir=cache_dir, progress=False).path


def _variant_want(info: "ModelInfo", variant: "WeightVariant") -> Want:
    return Want.make(
        variant.urls,
        variant.checksum,
        size=variant.size,
        model=info.name,
        tag=variant.tag,
        note=getattr(variant, "checksum_note", None),
    )


def readable_check(container: str) -> "_transfer.Check":
    """How an artifact of ``container`` is checked readable before its first-use sha256 is recorded.

    Archives are listed and checked member by member (nothing is written); a pickle must start
    with its protocol header and end with its STOP opcode; a safetensors header must parse. A
    full parse happens at load time, and a file that fails it is quarantined with its first-use
    record (:func:`reject_artifact`).
    """

    def check(path: Path) -> None:
        if container in ("fluid-tar", "fluid-zip"):
            kind = container.split("-")[1]
            if not archive.is_archive(path):
                raise UnsafeArchiveError(f"not a readable {kind} archive")
            try:
                archive.check_archive(path)
            except UnsafeArchiveError as exc:
                raise UnsafeArchiveError(f"an unsafe {kind} archive ({exc})") from None
        elif container == "pdparams":
            head, tail = _ends(path)
            if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
                raise WeightsFormatError("not a readable pdparams file (no pickle protocol 2-5 header)")
            if tail != b".":
                raise WeightsFormatError("not a complete pdparams file (no pickle STOP opcode at its end)")
        elif container == "safetensors":
            from paddlehub_cls.formats.safetensors_io import read_header

            try:
                read_header(path)
            except WeightsFormatError as exc:
                raise WeightsFormatError(f"not a readable safetensors file ({exc})") from None

    return check


def _ends(path: Path) -> Tuple[bytes, bytes]:
    """The first two bytes and the last byte of a file."""
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return head, b""
        f.seek(-1, os.SEEK_END)
        return head, f.read(1)


def reject_artifact(
    artifact: Artifact, reason: str, *, cache_dir: Optional[PathLike] = None
) -> Optional[Path]:
    """Quarantine a user-cache artifact whose content turned out hostile or unreadable.

    A checksum proves only that the bytes are the ones published; a file that
    then fails to unpack or parse must not stay where a verified artifact is
    expected. A sha256 recorded on first use for it is dropped too, so that the
    next download can fetch the real file instead of failing against the bad
    one's checksum. Shared caches are never written: their copies are left alone.

    Returns:
        The quarantine path, or None when the artifact is not in the user cache.
    """
    sha = artifact.sha256
    user = CacheRoot(user_cache_root(cache_dir), True)
    if not user.blob(sha).exists():
        return None
    with locked(user, f"unpack-{sha}", f"quarantining {user.blob(sha)}"):
        shutil.rmtree(user.unpacked(sha), ignore_errors=True)
        if not user.blob(sha).exists():
            return None
        first_use = read_stamp(user.stamp(sha)).get("trust") == "tofu"
        moved = quarantine_blob(user, sha, reason)
        if first_use:
            _drop_first_use_refs(user, sha)
        return moved


def _drop_first_use_refs(root: CacheRoot, sha256: str) -> None:
    refs = root.refs / "url"
    for ref in sorted(refs.iterdir()) if refs.is_dir() else []:
        if read_ref(ref) == sha256:
            try:
                ref.unlink()
            except FileNotFoundError:
                pass
            logger.warning("dropped the sha256 recorded on first use for %s (%s)", sha256, ref)


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
    with locked(user, f"unpack-{sha256}", f"unpacking {blob}"):
        dest = user.unpacked(sha256)
        if archive.is_complete(dest):
            return dest
        # Under the lock, leftovers of extractions by crashed processes are stale.
        for stale in dest.parent.glob(f".{sha256}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        logger.info("unpacking %s into %s", blob, dest)
        return archive.extract_archive(blob, dest, archive_sha256=sha256)


def obtain(
    want: Want,
    *,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[bool] = None,
    check: Optional["_transfer.Check"] = None,
) -> Hit:
    """Find ``want`` in a cache or download it; returns the verified hit (used by :func:`fetch`).

    ``check`` must pass before a first-use sha256 is recorded (see :func:`readable_check`).
    """
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
    with locked(user, want.key, f"downloading {want.urls[0]}"):
        hit = lookup(want, roots)  # another process may have finished while we waited
        if hit:
            add_source(hit, want)
            return hit
        return _transfer.download(want, user, progress, check)


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
