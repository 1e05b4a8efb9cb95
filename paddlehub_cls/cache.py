"""The cache as data: list, verify and remove what it holds (``paddlehub-cls cache`` runs these).

Usable from Python; :mod:`paddlehub_cls.cache_cli` wraps them in subcommands. Converted files of
:mod:`paddlehub_cls.fastload` are listed, removed and checked through :mod:`paddlehub_cls._converted`.
Nothing here imports paddle (or numpy, unless ``verify_cache`` compares converted files).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from paddlehub_cls import _converted, archive
from paddlehub_cls._cache import (
    CacheRoot,
    Hit,
    Want,
    atomic_write_json,
    blob_names,
    cache_roots,
    find_in_root,
    hash_file,
    now,
    quarantine_blob,
    read_json,
    read_ref,
    read_stamp,
    try_lock,
)
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import CacheError, UnknownModelError


__all__ = [
    "Entry",
    "Problem",
    "VerifyReport",
    "list_entries",
    "remove_model",
    "verify_cache",
]


@dataclass
class Entry:
    """One cached artifact, or one converted copy of it, as ``cache ls`` shows it.

    A ``kind="converted"`` entry is a file of :mod:`paddlehub_cls.fastload` (``path``): its
    ``sha256`` is that of its source artifact, ``size`` its own, ``trust`` and ``sources`` its
    source's (``"unknown"`` and ``[]`` when no cache holds the source) and ``verified_at`` the
    time it was converted.
    """

    sha256: str
    size: int
    filename: str
    url: Optional[str]
    trust: str
    sources: List[Dict[str, Optional[str]]]
    verified_at: Optional[str]
    root: str
    shared: bool
    unpacked: bool
    kind: str = "artifact"
    path: str = ""

    def label(self) -> str:
        names = [f"{s.get('model')}.{s.get('tag')}" for s in self.sources if s.get("model")]
        return ",".join(names) or "-"


@dataclass
class Problem:
    """Something ``cache verify`` found wrong, and what it did about it."""

    path: str
    reason: str
    action: str


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_cache`."""

    checked: int = 0
    problems: List[Problem] = field(default_factory=list)
    repaired: List[str] = field(default_factory=list)
    partials: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def list_entries(cache_dir: Optional[PathLike] = None) -> List[Entry]:
    """Every artifact in the shared caches and the user cache, from their stamps (no hashing).

    Each artifact is followed by its converted copies (``kind="converted"``); converted files whose
    artifact is in no cache come last.
    """
    roots = cache_roots(cache_dir)
    out = []
    for root in roots:
        for sha in blob_names(root):
            stamp = read_stamp(root.stamp(sha))
            out.append(
                Entry(
                    sha256=sha,
                    size=root.blob(sha).stat().st_size,
                    filename=str(stamp.get("filename") or "?"),
                    url=stamp.get("url"),
                    trust=str(stamp.get("trust") or "unknown"),
                    sources=[s for s in stamp.get("sources", []) if isinstance(s, dict)],
                    verified_at=stamp.get("verified_at"),
                    root=str(root.path),
                    shared=not root.writable,
                    unpacked=archive.is_complete(root.unpacked(sha)),
                    path=str(root.blob(sha)),
                )
            )
    converted: Dict[str, List[_converted.ConvertedFile]] = {}
    for conv in _converted.scan(roots):
        converted.setdefault(conv.source_sha256, []).append(conv)
    listed: List[Entry] = []
    for entry in out:
        listed.append(entry)
        listed += [_converted_entry(c, entry) for c in converted.pop(entry.sha256, [])]
    return listed + [_converted_entry(c, None) for convs in converted.values() for c in convs]


def _converted_entry(conv: _converted.ConvertedFile, source: Optional[Entry]) -> Entry:
    when = (conv.stamp or {}).get("converted_at")
    return Entry(
        sha256=conv.source_sha256,
        size=conv.size,
        filename=conv.path.name,
        url=None,
        trust=source.trust if source else "unknown",
        sources=source.sources if source else [],
        verified_at=when if isinstance(when, str) else None,
        root=str(conv.root.path),
        shared=not conv.root.writable,
        unpacked=False,
        kind="converted",
        path=str(conv.path),
    )


def verify_cache(cache_dir: Optional[PathLike] = None) -> VerifyReport:
    """Re-hash every cached file and unpacked archive.

    In the user cache a bad blob is moved to ``quarantine/`` (it is downloaded again
    on next use), a bad or unfinished unpacked directory is removed (it is unpacked
    again from its verified archive), a missing stamp is rewritten, and temporary
    files that crashed processes left (older than an hour) are deleted. Converted
    files (:mod:`paddlehub_cls.fastload`) are compared with their verified source
    artifact: a damaged or unstamped one is converted again, one whose artifact no
    cache holds is removed. Shared caches are only reported on, never changed.
    """
    report = VerifyReport()
    roots = cache_roots(cache_dir)
    for root in roots:
        blobs = blob_names(root)
        for sha in blobs:
            report.checked += 1
            blob = root.blob(sha)
            actual, md5, size = hash_file(blob)
            stamp = read_json(root.stamp(sha))
            reason = None
            if actual != sha:
                reason = f"content changed: expected sha256:{sha}, found sha256:{actual}"
            elif stamp is not None and (
                stamp.get("md5") not in (None, md5) or stamp.get("size") not in (None, size)
            ):
                reason = "stamp disagrees with the file (md5 or size)"
            if reason:
                if root.writable:
                    dest = quarantine_blob(root, sha, reason)
                    report.problems.append(Problem(str(blob), reason, f"moved to {dest}"))
                else:
                    report.problems.append(
                        Problem(str(blob), reason, "reported only (read-only shared cache)")
                    )
                continue
            if (
                stamp is None
                or stamp.get("mtime_ns") != blob.stat().st_mtime_ns
                or stamp.get("sha256") != sha
            ):
                if root.writable:
                    stamp = dict(
                        stamp or {}, sha256=sha, md5=md5, size=size, mtime_ns=blob.stat().st_mtime_ns
                    )
                    stamp.setdefault("trust", "unknown")
                    stamp["verified_at"] = now()
                    atomic_write_json(root.stamp(sha), stamp)
                    report.repaired.append(f"{blob}: stamp rewritten")
        _verify_unpacked(root, set(blobs), report)
        if root.writable:
            _remove_stale_temporaries(root, report)
        if root.tmp.is_dir():
            report.partials += [str(p) for p in sorted(root.tmp.glob("*.partial"))]
    # After every root's blobs and extractions: a converted file may come from another root's artifact.
    found = _converted.verify(roots, try_lock, [Path(p.path) for p in report.problems])
    report.checked += found.checked
    report.problems += [Problem(*p) for p in found.problems]
    report.repaired += found.repaired
    return report


#: A temporary file this old belongs to a process that died (writers replace theirs within seconds).
STALE_TEMPORARY_S = 3600


def _remove_stale_temporaries(root: CacheRoot, report: VerifyReport) -> None:
    """Delete the hidden ``.*.tmp`` files that killed processes left beside stamps, refs, partial
    notes and converted weights; a converted file's temporary only while nobody converts it."""
    old = time.time() - STALE_TEMPORARY_S
    places = [root.blobs, root.refs / "md5", root.refs / "url", root.tmp]
    converted = root.converted_dir
    for folder in places + [converted]:
        for tmp in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
            try:
                if not tmp.is_file() or tmp.stat().st_mtime > old:
                    continue
            except FileNotFoundError:
                continue
            lock = None
            if folder == converted:
                key = tmp.name[1:].split(".safetensors", 1)[0]
                lock = try_lock(root, f"fastload-{key}")
                if lock is None:  # a conversion is running right now
                    continue
            try:
                tmp.unlink()
                report.repaired.append(f"{tmp}: stale temporary file of a crashed process removed")
            except FileNotFoundError:
                pass
            finally:
                if lock is not None:
                    lock.release()


def _verify_unpacked(root: CacheRoot, blobs: set, report: VerifyReport) -> None:
    base = root.unpacked_dir
    if not base.is_dir():
        return
    for d in sorted(base.iterdir()):
        sha = d.name.lstrip(".").split(".", 1)[0]
        if d.name.startswith(".") or not archive.is_complete(d):
            reason, fix = "unfinished extraction (a crashed process)", "removed"
        else:
            problems = archive.verify_extraction(d)
            if not problems:
                continue
            reason, fix = (
                "; ".join(problems[:5]),
                "removed (it is unpacked again from the archive on next use)",
            )
        if not root.writable:
            report.problems.append(Problem(str(d), reason, "reported only (read-only shared cache)"))
            continue
        lock = try_lock(root, f"unpack-{sha}")
        if lock is None:  # an extraction is running right now
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()
        report.problems.append(Problem(str(d), reason, fix))


def remove_model(name: str, *, cache_dir: Optional[PathLike] = None) -> List[Path]:
    """Delete a model's files, stamps, unpacked directories, refs and converted copies from the user cache.

    Converted copies in the user cache of an artifact that only a shared cache holds are removed too.

    Returns:
        The blob paths removed, then the converted files removed.

    Raises:
        CacheError: nothing of ``name`` is in the user cache.
    """
    from paddlehub_cls import fastload

    roots = cache_roots(cache_dir)
    user = roots[-1]
    hits = hits_for(name, roots)
    mine = [h for h in hits if h.root.writable]
    converted = [
        p for sha in sorted({h.sha256 for h in hits}) for p in fastload.remove_converted(sha, cache_dir)
    ]
    if not mine and converted:
        return converted
    if not mine:
        where = " (only in read-only shared caches, which are never changed)" if hits else ""
        raise CacheError(
            f"nothing of {name!r} is in the user cache {user.path}{where}; see `paddlehub-cls cache ls`"
        )
    removed = set()
    for hit in mine:
        for p in (hit.path, user.stamp(hit.sha256)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(user.unpacked(hit.sha256), ignore_errors=True)
        removed.add(hit.sha256)
    refs = user.refs
    for ref in refs.glob("*/*") if refs.is_dir() else []:
        if read_ref(ref) in removed:
            ref.unlink()
    return [user.blob(s) for s in sorted(removed)] + converted


# --------------------------------------------------------------------------- what a model has in the cache


def registry_wants(name: str) -> List[Want]:
    """One :class:`Want` per weight variant of registry model ``name`` (only that variant for
    ``NAME.TAG``)."""
    from paddlehub_cls.registry import load_registry

    reg = load_registry()
    info, variant = reg.resolve(name)
    variants = [variant] if reg.split_name(name)[1] is not None else list(info.weights.values())
    return [Want.make(v.urls, v.checksum, size=v.size, model=info.name, tag=v.tag) for v in variants]


def hits_for(name: str, roots: Sequence[CacheRoot]) -> List[Hit]:
    """Artifacts of model ``name`` (or ``NAME.TAG``): stamps naming it, plus its registry variants found in
    ``roots``."""
    from paddlehub_cls.registry import split_name

    model, tag = split_name(name.lower())
    hits: Dict[tuple, Hit] = {}
    for root in roots:
        for sha in blob_names(root):
            stamp = read_stamp(root.stamp(sha))
            for s in stamp.get("sources", []):
                if (
                    isinstance(s, dict)
                    and str(s.get("model", "")).lower() == model
                    and (not tag or str(s.get("tag", "")).lower() == tag)
                ):
                    hits[(str(root.path), sha)] = Hit(root, sha, stamp)
    try:
        wants = registry_wants(name)
    except UnknownModelError:
        if hits:
            return list(hits.values())
        raise
    for want in wants:
        for root in roots:
            hit = find_in_root(root, want)
            if hit:
                hits.setdefault((str(root.path), hit.sha256), hit)
    return list(hits.values())
