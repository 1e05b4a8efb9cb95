"""Safe extraction of tar, tar.gz and zip archives.

Every member is checked before a single byte is written: absolute paths, ``..``,
links, devices, FIFOs, oversized members, too many members and a too large total
(decompression bombs) are refused with :class:`UnsafeArchiveError` naming the
member. Extraction goes into a temporary directory beside the target, which is
renamed into place only after a completion marker has been written into it, so a
directory at the final path is always complete.

This module never imports paddle.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import stat
import tarfile
import time
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Dict, Iterator, List, Optional, Tuple

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import CacheError, UnsafeArchiveError

#: Written into the top of an extraction before it is renamed into place.
MARKER = ".paddlehub_cls_complete.json"

DEFAULT_MAX_MEMBER_SIZE = 4 << 30
DEFAULT_MAX_MEMBERS = 10_000
DEFAULT_MAX_TOTAL_SIZE = 16 << 30

_CHUNK = 1 << 20
# What a damaged or odd archive can raise while it is read (zlib and lzma errors are not OSError;
# zipfile raises RuntimeError for encryption and NotImplementedError for unknown compression).
_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)


@dataclass(frozen=True)
class Member:
    """One checked archive member: a regular file or a directory."""

    name: str  # normalised relative POSIX path
    size: int
    is_dir: bool


def is_archive(path: PathLike) -> bool:
    """True when ``path`` is a zip or a (possibly compressed) tar, judged from its content."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except _READ_ERRORS:
        return False


def is_complete(directory: PathLike) -> bool:
    """True when ``directory`` is a finished extraction (it holds the completion marker)."""
    return (Path(directory) / MARKER).is_file()


def read_marker(directory: PathLike) -> Dict:
    """The completion marker of an extraction: archive sha256 and each file's size and sha256."""
    with open(Path(directory) / MARKER, encoding="utf-8") as f:
        return json.load(f)


def check_member_name(name: str, archive: PathLike) -> str:
    """Normalise a member name, refusing anything that could leave the target directory.

    Returns:
        The name as a relative POSIX path without ``.`` components or trailing slash.

    Raises:
        UnsafeArchiveError: absolute path, drive letter, ``..``, backslash, NUL or empty name.
    """
    why = None
    if not name or "\x00" in name:
        why = "has an empty name or a NUL byte"
    elif "\\" in name:
        why = "contains a backslash, which some tools treat as a path separator"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        why = "is an absolute path"
    else:
        parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
        if any(p == ".." for p in parts):
            why = "contains '..' and would be written outside the target directory"
        elif not parts:
            why = "names the target directory itself"
    if why:
        raise UnsafeArchiveError(
            f"archive {os.fspath(archive)!r} member {name!r} {why}; refusing to extract anything from it. "
            "Use an archive from the official source or remove that member."
        )
    return "/".join(parts)


def _refuse(archive: PathLike, name: str, why: str, limit: bool = False) -> UnsafeArchiveError:
    advice = (
        "raise the limit (keyword argument of extract_archive) only if the archive is trusted and really "
        "that big"
        if limit
        else "use an archive from the official source"
    )
    return UnsafeArchiveError(
        f"archive {os.fspath(archive)!r} member {name!r} {why}; refusing to extract anything from it: "
        f"{advice}."
    )


def _tar_type(info: tarfile.TarInfo) -> Optional[str]:
    """None for a regular file or directory, else what the member is."""
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) or info.isdir():
        return None
    if info.issym():
        return f"is a symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"is a hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "is a device file"
    if info.isfifo():
        return "is a FIFO"
    return f"has unsupported tar type {info.type!r}"


def _zip_type(info: zipfile.ZipInfo) -> Optional[str]:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO"
    return f"has unsupported file mode {oct(mode)}"


class _Reader:
    """Uniform member listing and reading over tarfile and zipfile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if zipfile.is_zipfile(path):
                self._zip: Optional[zipfile.ZipFile] = zipfile.ZipFile(path)
                self._tar: Optional[tarfile.TarFile] = None
            else:
                self._zip = None
                self._tar = tarfile.open(path, "r:*")
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(
                f"{os.fspath(path)!r} is not a readable tar, tar.gz or zip archive ({exc}); delete it and "
                "download it again"
            ) from exc

    def close(self) -> None:
        (self._zip or self._tar).close()

    def raw_members(self) -> Iterator[Tuple[str, int, Optional[str], bool, object]]:
        """(name, size, reason-if-not-a-file-or-directory, is_dir, handle) per member, lazily."""
        if self._zip is not None:
            for zinfo in self._zip.infolist():
                yield zinfo.filename, zinfo.file_size, _zip_type(zinfo), zinfo.is_dir(), zinfo
        else:
            for tinfo in self._tar:
                yield tinfo.name, tinfo.size, _tar_type(tinfo), tinfo.isdir(), tinfo

    def open(self, handle: object, name: str) -> IO[bytes]:
        try:
            if self._zip is not None:
                f = self._zip.open(handle)  # type: ignore[arg-type]
            else:
                f = self._tar.extractfile(handle)  # type: ignore[union-attr,arg-type]
        except _READ_ERRORS as exc:
            raise _damaged(self.path, name, exc) from exc
        if f is None:  # pragma: no cover - regular members always have a file object
            raise _damaged(self.path, name, "no data")
        return f


def _damaged(archive: PathLike, name: str, exc: object) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"archive {os.fspath(archive)!r} member {name!r} cannot be read ({exc}); the archive is damaged or "
        "uses an unsupported feature: delete it and download it again"
    )


def check_archive(
    path: PathLike,
    *,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
) -> List[Member]:
    """Check every member of an archive without writing anything.

    Args:
        path: tar, tar.gz or zip file (type judged from content).
        max_member_size: largest allowed member, bytes.
        max_members: most members allowed.
        max_total_size: largest allowed sum of member sizes, bytes.

    Returns:
        The members, in archive order.

    Raises:
        UnsafeArchiveError: naming the first offending member.
    """
    members, _ = _check(Path(path), max_member_size, max_members, max_total_size, keep_reader=False)
    return [m for m, _ in members]


def _check(
    path: Path, max_member_size: int, max_members: int, max_total_size: int, keep_reader: bool
) -> Tuple[List[Tuple[Member, object]], _Reader]:
    reader = _Reader(path)
    try:
        out: List[Tuple[Member, object]] = []
        files: Dict[str, bool] = {}  # name -> is_dir
        parents: set = set()  # every directory implied by a member path
        total = 0
        try:
            for raw_name, size, bad_type, is_dir, handle in reader.raw_members():
                if len(out) >= max_members:
                    raise _refuse(path, raw_name, f"is beyond the limit of {max_members} members", True)
                name = check_member_name(raw_name, path)
                if bad_type:
                    raise _refuse(path, raw_name, bad_type)
                if size < 0 or size > max_member_size:
                    raise _refuse(
                        path, raw_name, f"is {size} bytes, over the limit of {max_member_size}", True
                    )
                total += size
                if total > max_total_size:
                    raise _refuse(
                        path,
                        raw_name,
                        f"brings the total to {total} bytes, over the limit of {max_total_size}",
                        True,
                    )
                if name in files and not (is_dir and files[name]):
                    raise _refuse(path, raw_name, "appears twice; the second copy would overwrite the first")
                if not is_dir and name in parents:
                    raise _refuse(path, raw_name, "is a file but other members lie under it")
                parent = name.rsplit("/", 1)[0] if "/" in name else None
                while parent:
                    if files.get(parent) is False:
                        raise _refuse(path, raw_name, f"lies under {parent!r}, which is a file")
                    parents.add(parent)
                    parent = parent.rsplit("/", 1)[0] if "/" in parent else None
                files[name] = is_dir
                out.append((Member(name, 0 if is_dir else size, is_dir), handle))
        except UnsafeArchiveError:
            raise
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(
                f"archive {os.fspath(path)!r} is damaged ({exc}); delete it and download it again"
            ) from exc
        if not keep_reader:
            reader.close()
        return out, reader
    except BaseException:
        reader.close()
        raise


def _copy_member(src: IO[bytes], dest: Path, limit: int, archive: Path, name: str) -> str:
    """Copy at most ``limit`` bytes into a new file, returning its sha256."""
    digest = hashlib.sha256()
    written = 0
    # O_EXCL|O_NOFOLLOW: never follow or reuse something already at the path.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _READ_ERRORS as exc:
                raise _damaged(archive, name, exc) from exc
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise _refuse(archive, name, f"expands beyond its declared size of {limit} bytes")
            digest.update(chunk)
            out.write(chunk)
        if written != limit:
            raise UnsafeArchiveError(
                f"archive {os.fspath(archive)!r} member {name!r} holds {written} bytes but declares {limit}; "
                "the archive is damaged: delete it and download it again"
            )
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def extract_archive(
    path: PathLike,
    dest: PathLike,
    *,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    archive_sha256: Optional[str] = None,
    on_member: Optional[Callable[[Member], None]] = None,
) -> Path:
    """Safely extract ``path`` so that ``dest`` appears complete or not at all.

    Every member is checked first (see :func:`check_archive`); then the files are
    written into ``.<dest name>.tmp-*`` beside ``dest``, a completion marker
    (:data:`MARKER`, listing each file's size and sha256) is added, and the
    directory is renamed to ``dest``. An existing complete ``dest`` is kept; an
    incomplete one is replaced. The caller should hold a lock if several
    processes may extract to the same ``dest``.

    Args:
        path: tar, tar.gz or zip file.
        dest: final directory.
        max_member_size: largest allowed member, bytes.
        max_members: most members allowed.
        max_total_size: largest allowed sum of member sizes, bytes.
        archive_sha256: recorded in the marker when known.
        on_member: called after each member is written (progress, tests).

    Returns:
        ``dest``.

    Raises:
        UnsafeArchiveError: an unsafe or damaged member; nothing is left behind.
        CacheError: the extraction cannot be written (full disk); nothing is left behind.
    """
    path, dest = Path(path), Path(dest)
    if is_complete(dest):
        return dest
    members, reader = _check(path, max_member_size, max_members, max_total_size, keep_reader=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o755)
    try:
        files = {}
        for member, handle in members:
            target = tmp.joinpath(*member.name.split("/"))
            if member.is_dir:
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
            else:
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                with reader.open(handle, member.name) as src:
                    sha = _copy_member(src, target, member.size, path, member.name)
                files[member.name] = {"size": member.size, "sha256": sha}
            if on_member is not None:
                on_member(member)
        marker = {
            "archive": os.fspath(path),
            "archive_sha256": archive_sha256,
            "extracted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        with open(tmp / MARKER, "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _rename_into_place(tmp, dest)
    except (UnsafeArchiveError, CacheError):
        raise
    except OSError as exc:  # reading errors were mapped above: this is the disk we write to
        raise CacheError(
            f"cannot extract {os.fspath(path)!r} into {os.fspath(dest)!r} ({exc}); nothing was left behind. "
            "Free disk space, or point PADDLEHUB_CLS_HOME (or cache_dir=) at a bigger writable disk"
        ) from exc
    finally:
        reader.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _rename_into_place(tmp: Path, dest: Path) -> None:
    try:
        os.rename(tmp, dest)
        return
    except OSError:
        if is_complete(dest):  # another extractor finished first: keep theirs
            return
    # An incomplete leftover (a crash before the marker existed) is moved aside, then replaced.
    trash = dest.parent / f".{dest.name}.trash-{uuid.uuid4().hex[:8]}"
    os.rename(dest, trash)
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(tmp, dest)


def verify_extraction(directory: PathLike) -> List[str]:
    """Re-hash every file of a finished extraction against its marker.

    Returns:
        Problems found (missing, resized or changed files, extra files); empty when intact.
    """
    directory = Path(directory)
    marker = read_marker(directory)
    problems = []
    expected = marker.get("files", {})
    for name, meta in sorted(expected.items()):
        target = directory.joinpath(*name.split("/"))
        if not target.is_file() or target.is_symlink():
            problems.append(f"{name}: missing")
            continue
        digest = hashlib.sha256()
        with open(target, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        if target.stat().st_size != meta["size"] or digest.hexdigest() != meta["sha256"]:
            problems.append(f"{name}: changed (expected sha256 {meta['sha256']}, found {digest.hexdigest()})")
    for root, _dirs, names in os.walk(directory):
        for n in names:
            rel = Path(root, n).relative_to(directory).as_posix()
            if rel != MARKER and rel not in expected:
                problems.append(f"{rel}: not in the archive")
    return problems
