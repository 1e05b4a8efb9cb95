"""fastload's converted files as the cache commands see them (``<root>/fastload/v1/<key>.safetensors``).

A converted file holds the tensors of one verified artifact, written once so that later loads can
map them (:mod:`paddlehub_cls.fastload`); its ``<key>`` starts with that artifact's sha256. It is
derived data: ``cache ls`` lists it after its source artifact, ``cache rm`` removes it with the
artifact, ``cache verify`` compares it with the artifact (a damaged one is converted again, one
whose artifact is in no cache is removed) and bundles never carry it.

Internal to :mod:`paddlehub_cls.cache_cli`. Nothing here imports paddle; numpy is imported only
when tensors are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple

from paddlehub_cls import archive
from paddlehub_cls._cache import HEX, Artifact, CacheRoot
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import CacheError, UnsafeWeightsError, WeightsFormatError


_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ConvertedFile:
    """One converted file in one cache root."""

    root: CacheRoot
    path: Path
    key: str
    stamp: Optional[Dict[str, Any]]

    @property
    def source_sha256(self) -> str:
        """sha256 of the artifact it was converted from."""
        return self.key[:64]

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


@dataclass
class Findings:
    """What :func:`verify` found: ``(path, reason, action)`` problems and repairs (messages)."""

    checked: int = 0
    problems: List[Tuple[str, str, str]] = field(default_factory=list)
    repaired: List[str] = field(default_factory=list)


def scan(roots: Sequence[CacheRoot]) -> List[ConvertedFile]:
    """Every converted file in ``roots``, in order; files whose name is no key are left alone."""
    from paddlehub_cls import fastload

    out = []
    for root in roots:
        for path, stamp in fastload.iter_converted(root=root.path):
            key = path.name[: -len(_SUFFIX)]
            sha, rest = key[:64], key[64:]
            if HEX["sha256"].match(sha) and (not rest or (rest[0] == "-" and len(rest) == 17)):
                out.append(ConvertedFile(root, path, key, stamp))
    return out


def find_source(conv: ConvertedFile, roots: Sequence[CacheRoot]) -> Optional[Path]:
    """The cached artifact ``conv`` was converted from (a blob, or a directory in an unpacked archive)."""
    sha = conv.source_sha256
    for root in roots:
        if conv.key == sha:
            if root.blob(sha).is_file():
                return root.blob(sha)
            continue
        top = root.unpacked(sha)
        if not archive.is_complete(top):
            continue
        hint = (conv.stamp or {}).get("source")
        for candidate in _candidates(top, hint if isinstance(hint, str) else None):
            if Artifact(candidate, sha, root, inner=candidate.relative_to(top).as_posix()).key == conv.key:
                return candidate
    return None


def _candidates(top: Path, hint: Optional[str]) -> Iterator[Path]:
    # The stamp names the directory it was converted from; walk the extraction only when it moved.
    if hint and top in Path(hint).parents and Path(hint).is_dir():
        yield Path(hint)
    yield top
    for d in sorted(top.rglob("*")):
        if d.is_dir() and not d.is_symlink():
            yield d


def remove(conv: ConvertedFile) -> bool:
    """Delete a converted file and its stamp (open maps stay valid); False if it was already gone."""
    conv.path.with_name(conv.path.name + ".json").unlink(missing_ok=True)
    try:
        conv.path.unlink()
    except FileNotFoundError:
        return False
    return True


def compare(file: PathLike, source: PathLike) -> Optional[str]:
    """Why the converted ``file`` does not hold exactly the tensors of ``source``; None when it does.

    Every tensor is compared byte for byte (after byte order), so this reads both in full: it is
    meant for ``cache verify``, never for loads, which trust the stamp (``fastload.fresh_stamp``).

    Raises:
        WeightsFormatError, UnsafeWeightsError: ``source`` itself cannot be read.
    """
    import numpy as np

    from paddlehub_cls import fastload, formats

    try:
        got, _ = fastload.map_safetensors(file)
    except (OSError, WeightsFormatError) as exc:
        return f"cannot be read ({exc})"
    want = formats.read_weights(source).tensors
    if got.keys() != want.keys():
        missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        return (
            f"holds {len(got)} tensors where its source {source} has {len(want)} (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    for name in sorted(want):
        a, b = want[name], got[name]
        if a.shape != b.shape or a.dtype.newbyteorder("=") != b.dtype.newbyteorder("="):
            return (
                f"tensor {name!r} is {b.dtype}{list(b.shape)} where its source has {a.dtype}{list(a.shape)}"
            )
        # Bytes, not values: NaN weights must compare equal, and any flipped bit must not.
        same = np.ascontiguousarray(a, dtype=b.dtype).reshape(-1).view(np.uint8)
        if not np.array_equal(same, b.reshape(-1).view(np.uint8)):
            return f"tensor {name!r} differs from its source {source}"
    return None


def verify(
    roots: Sequence[CacheRoot], try_lock: Callable[[CacheRoot, str], Any], bad: Collection[Path]
) -> Findings:
    """Compare every converted file with its source artifact; repair the user cache's.

    Args:
        roots: the cache roots, shared first.
        try_lock: ``(root, key) -> lock or None``: the lock of ``key`` if nobody holds it now.
        bad: blobs and unpacked directories this run found damaged but left in place (shared
            caches): nothing is compared with them, let alone converted from them.

    In a writable root a converted file that differs from its source, cannot be read or has a
    stale stamp is converted again (or removed when that fails: the next load converts it), and
    one whose source is in no cache is removed. Read-only roots are reported on only.
    """
    from paddlehub_cls import fastload

    found = Findings()
    for conv in scan(roots):
        found.checked += 1
        source = find_source(conv, roots)
        if source is not None and any(b == source or b in source.parents for b in bad):
            source = None
        if source is None:
            if conv.root.writable and _locked(try_lock, conv, lambda: remove(conv)):
                found.repaired.append(
                    f"{conv.path}: converted from sha256:{conv.source_sha256}, of which no cache holds a "
                    "verified copy; removed (it is converted again once the artifact is back)"
                )
            continue
        try:
            reason = compare(conv.path, source)
        except (WeightsFormatError, UnsafeWeightsError) as exc:
            reason = f"its source {source} cannot be read ({exc})"
        stale = fastload.fresh_stamp(conv.path, conv.key) is None
        if reason is None and not stale:
            continue
        if not conv.root.writable:
            if reason:
                found.problems.append((str(conv.path), reason, "reported only (read-only shared cache)"))
            continue
        action = _locked(try_lock, conv, lambda: _convert_again(conv, source))
        if action is None:  # a conversion is running right now
            continue
        if reason:
            found.problems.append((str(conv.path), reason, action))
        else:
            found.repaired.append(f"{conv.path}: stamp missing or stale (loads ignore the file); {action}")
    return found


def _locked(try_lock: Callable[[CacheRoot, str], Any], conv: ConvertedFile, work: Callable[[], Any]) -> Any:
    lock = try_lock(conv.root, f"fastload-{conv.key}")
    if lock is None:
        return None
    try:
        return work()
    finally:
        lock.release()


def _convert_again(conv: ConvertedFile, source: Path) -> str:
    from paddlehub_cls import fastload

    fastload.remove_temporaries(conv.path)
    # Without its stamp nothing trusts the old file, whatever happens below.
    conv.path.with_name(conv.path.name + ".json").unlink(missing_ok=True)
    try:
        fastload.convert(source, conv.path, conv.key)
    except (OSError, CacheError, WeightsFormatError, UnsafeWeightsError) as exc:
        remove(conv)
        return f"removed (converting it again failed: {exc}); the next load converts it"
    return f"converted again from {source}"
