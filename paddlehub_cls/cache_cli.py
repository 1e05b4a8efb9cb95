"""Cache management (list, verify, remove, export, import) and the CLI subcommands for it.

The functions are usable from Python; :func:`add_parsers` registers
``download NAME... | --all [--weights TAG]`` and ``cache ls | verify | rm | add | export | import``
on an argparse subparsers object; each subcommand sets ``handler(args) -> int`` (the
exit status). Nothing here imports paddle.

Bundles (``cache export`` / ``cache import``) are built in :mod:`paddlehub_cls._bundle`; the
converted files of :mod:`paddlehub_cls.fastload` are listed, removed and checked through
:mod:`paddlehub_cls._converted` (bundles never carry them: they are derived).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from paddlehub_cls import _converted, archive
from paddlehub_cls._bundle import BUNDLE_FORMAT, export_bundle, import_bundle
from paddlehub_cls._cache import (
    CacheRoot,
    atomic_write_json,
    blob_names,
    cache_roots,
    hash_file,
    hits_for,
    now,
    quarantine_blob,
    read_json,
    read_ref,
    read_stamp,
)
from paddlehub_cls._messages import message_line
from paddlehub_cls.errors import CacheError, PaddleHubClsError

if TYPE_CHECKING:  # pragma: no cover
    import filelock

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "BUNDLE_FORMAT",
    "Entry",
    "Problem",
    "VerifyReport",
    "add_parsers",
    "export_bundle",
    "import_bundle",
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


def _try_lock(root: CacheRoot, key: str) -> Optional["filelock.FileLock"]:
    """The artifact lock if nobody holds it right now, else None."""
    import filelock  # only when a lock is needed: `paddlehub-cls list` imports this module

    lock = filelock.FileLock(str(root.locks / f"{key}.lock"), mode=0o664)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return None
    return lock


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
    found = _converted.verify(roots, _try_lock, [Path(p.path) for p in report.problems])
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
    places = [
        root.path / "blobs" / "sha256",
        root.path / "refs" / "md5",
        root.path / "refs" / "url",
        root.tmp,
    ]
    converted = root.path / "fastload" / "v1"
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
                lock = _try_lock(root, f"fastload-{key}")
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
    base = root.path / "unpacked"
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
        lock = _try_lock(root, f"unpack-{sha}")
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
    refs = user.path / "refs"
    for ref in refs.glob("*/*") if refs.is_dir() else []:
        if read_ref(ref) in removed:
            ref.unlink()
    return [user.blob(s) for s in sorted(removed)] + converted


# --------------------------------------------------------------------------- CLI


def add_parsers(subparsers: Any) -> None:
    """Register ``download`` and ``cache`` on an ``ArgumentParser.add_subparsers()`` object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir", help="user cache root (default $PADDLEHUB_CLS_HOME or ~/.cache/paddlehub_cls)"
    )

    p = subparsers.add_parser(
        "download",
        parents=[common],
        help="download and verify weights into the cache",
        description="Download and verify weights; prints MODEL.TAG and the path for each.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="model names (or NAME.TAG)")
    p.add_argument("--all", action="store_true", help="every model with weights")
    p.add_argument("--weights", metavar="TAG", help="weight variant tag (default: each model's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_download)

    cache = subparsers.add_parser("cache", help="inspect and manage the weight cache")
    sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND")
    sub.required = True
    ls = sub.add_parser(
        "ls",
        parents=[common],
        help="list cached artifacts and their converted copies (user and shared caches)",
    )
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=run_ls)
    ver = sub.add_parser("verify", parents=[common], help="re-hash everything; quarantine bad files")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(handler=run_verify)
    rm = sub.add_parser("rm", parents=[common], help="remove a model's files from the user cache")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=run_rm)
    add = sub.add_parser(
        "add",
        parents=[common],
        help="verify a weight file downloaded by hand and store it as a download would",
    )
    add.add_argument("name", metavar="NAME[.TAG]", help="the model (and weight variant) the file holds")
    add.add_argument("file", metavar="FILE", help="the file, as published at the variant's URL")
    add.set_defaults(handler=run_add)
    ex = sub.add_parser("export", parents=[common], help="write cached artifacts into a bundle (tar)")
    ex.add_argument("bundle", metavar="BUNDLE.tar")
    ex.add_argument("names", nargs="*", metavar="NAME", help="models to export (default: everything)")
    ex.set_defaults(handler=run_export)
    im = sub.add_parser("import", parents=[common], help="verify a bundle and add it to the user cache")
    im.add_argument("bundle", metavar="BUNDLE.tar")
    im.set_defaults(handler=run_import)


def _err(msg: str) -> None:
    sys.stderr.write(message_line(msg) + "\n")


def run_download(args: argparse.Namespace) -> int:
    from paddlehub_cls import hub
    from paddlehub_cls.registry import load_registry

    if bool(args.all) == bool(args.names):
        _err("give model names or --all (not both); see `paddlehub-cls list`")
        return 2
    reg = load_registry()
    names = [n for n in reg.names() if reg.get(n).weights] if args.all else args.names
    failed = 0
    for name in names:
        try:
            if args.all and args.weights and args.weights not in reg.get(name).weights:
                print(f"{name}: no {args.weights!r} weights, skipped")
                continue
            info, variant = reg.resolve(name, args.weights)
            path = hub.download_variant(
                info, variant, cache_dir=args.cache_dir, progress=False if args.no_progress else None
            )
            print(f"{info.name}.{variant.tag}\t{path}")
        except PaddleHubClsError as exc:
            failed += 1
            _err(f"{name}: {exc}")
    return 1 if failed else 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def run_ls(args: argparse.Namespace) -> int:
    entries = list_entries(args.cache_dir)
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=1))
        return 0
    if not entries:
        print("cache is empty")
        return 0
    source = None
    for e in entries:
        where = "shared" if e.shared else "user"
        flags = e.trust + (",unpacked" if e.unpacked else "")
        label = e.label()
        if e.kind == "converted":
            flags = "converted"
            # Right after its artifact; the orphans, last, name theirs.
            label = "  converted copy" if e.sha256 == source else "converted, artifact not cached"
            name = os.path.relpath(e.path, e.root)
        else:
            source, name = e.sha256, e.filename
        print(f"{label:32} {_size(e.size):>10}  {e.sha256[:12]}  {flags:18} {where:6} {name}  {e.root}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    report = verify_cache(args.cache_dir)
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        for p in report.problems:
            print(f"BAD  {p.path}: {p.reason} -> {p.action}")
        for r in report.repaired:
            print(f"FIXED {r}")
        if report.partials:
            print(f"{len(report.partials)} unfinished download(s) in tmp/ (resumed on next download)")
        print(f"checked {report.checked} file(s): {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def run_rm(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.names:
        try:
            for path in remove_model(name, cache_dir=args.cache_dir):
                print(f"removed {path}")
        except PaddleHubClsError as exc:
            failed += 1
            _err(str(exc))
    return 1 if failed else 0


def run_add(args: argparse.Namespace) -> int:
    from paddlehub_cls import hub

    path = hub.cache_add(args.name, args.file, cache_dir=args.cache_dir)
    print(f"added {args.file}\t{path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    entries = export_bundle(args.bundle, args.names or None, cache_dir=args.cache_dir)
    print(f"wrote {len(entries)} artifact(s) to {args.bundle}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    entries = import_bundle(args.bundle, cache_dir=args.cache_dir)
    for e in entries:
        print(
            f"imported {e['sha256'][:12]} {e.get('filename') or ''} "
            f"({e.get('model') or '-'}.{e.get('tag') or '-'})"
        )
    return 0
