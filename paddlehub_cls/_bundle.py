"""Cache bundles: move verified artifacts to air-gapped machines (``cache export`` / ``cache import``).

A bundle is an uncompressed tar holding ``manifest.json`` first, then
``blobs/sha256/<hex>`` and its stamp ``blobs/sha256/<hex>.json`` per artifact (never
the unpacked directories). Import checks every member against the manifest in a
staging directory of the user cache before anything lands in the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlehub_cls._cache import (
    HEX,
    CacheRoot,
    Hit,
    atomic_write_json,
    blob_names,
    cache_roots,
    check_blob,
    now,
    parse_checksum,
    read_stamp,
    write_ref,
)
from paddlehub_cls._types import PathLike
from paddlehub_cls.cache import hits_for
from paddlehub_cls.errors import (
    CacheError,
    ChecksumError,
    PaddleHubClsError,
    RegistryError,
    UnsafeArchiveError,
)


BUNDLE_FORMAT = "paddlehub_cls-bundle"
_MAX_MANIFEST = 16 << 20
_CHUNK = 1 << 20
# What reading a damaged (possibly compressed) tar can raise; OSError while reading is the bundle's.
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
_TEXT_FIELDS = ("url", "filename", "trust", "model", "tag", "checksum")


def export_bundle(
    bundle: PathLike, names: Optional[Sequence[str]] = None, *, cache_dir: Optional[PathLike] = None
) -> List[Dict[str, Any]]:
    """Write the cached artifacts of ``names`` (default: all) into a tar bundle for another machine.

    Returns:
        The manifest entries written.
    """
    roots = cache_roots(cache_dir)
    if names:
        hits = []
        for name in names:
            found = hits_for(name, roots)
            if not found:
                raise CacheError(
                    f"nothing of {name!r} is cached; run `paddlehub-cls download {name}` first or check "
                    "`paddlehub-cls cache ls`"
                )
            hits += found
    else:
        hits = [h for root in roots for h in (check_blob(root, s) for s in blob_names(root)) if h]
    entries: Dict[str, Dict[str, Any]] = {}
    paths: Dict[str, Hit] = {}
    for hit in hits:
        checked = check_blob(hit.root, hit.sha256)
        if checked is None or hit.sha256 in entries:
            continue
        st = checked.stamp
        sources = [s for s in st.get("sources", []) if isinstance(s, dict)]
        entries[hit.sha256] = {
            "sha256": hit.sha256,
            "size": st.get("size"),
            "md5": st.get("md5"),
            "filename": st.get("filename"),
            "url": st.get("url"),
            "urls": st.get("urls") or [],
            "checksum": st.get("checksum"),
            "trust": st.get("trust", "unknown"),
            "sources": sources,
            "model": sources[0].get("model") if sources else None,
            "tag": sources[0].get("tag") if sources else None,
        }
        paths[hit.sha256] = checked
    manifest = {"format": BUNDLE_FORMAT, "version": 1, "created": now(), "entries": list(entries.values())}
    bundle = Path(bundle)
    tmp = bundle.with_name(f".{bundle.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            _add_bytes(tf, "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
            for sha, hit in paths.items():
                _add_file(tf, f"blobs/sha256/{sha}", hit.path)
                _add_bytes(tf, f"blobs/sha256/{sha}.json", json.dumps(hit.stamp, indent=1).encode("utf-8"))
        os.replace(tmp, bundle)
    finally:
        if tmp.exists():
            tmp.unlink()
    return manifest["entries"]


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    tf.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _add_file(tf: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as f:
        tf.addfile(_tarinfo(name, os.fstat(f.fileno()).st_size), f)


def _bad_bundle(bundle: Path, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"bundle {str(bundle)!r} {why}; nothing was imported. Re-create it with `paddlehub-cls cache export`."
    )


def _check_manifest(bundle: Path, data: bytes) -> List[Dict[str, Any]]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad_bundle(bundle, f"has an unreadable manifest.json ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise _bad_bundle(bundle, f"manifest.json is not a {BUNDLE_FORMAT} manifest")
    entries = manifest.get("entries")
    if not isinstance(entries, list):
        raise _bad_bundle(bundle, "manifest.json has no 'entries' list")
    seen = set()
    for i, e in enumerate(entries):
        ok = (
            isinstance(e, dict)
            and isinstance(e.get("sha256"), str)
            and HEX["sha256"].match(e["sha256"])
            and isinstance(e.get("size"), int)
            and not isinstance(e["size"], bool)
            and e["size"] >= 0
            and (e.get("md5") is None or (isinstance(e["md5"], str) and HEX["md5"].match(e["md5"])))
            and isinstance(e.get("urls") or [], list)
            and all(isinstance(u, str) for u in e.get("urls") or [])
            and all(e.get(k) is None or isinstance(e[k], str) for k in _TEXT_FIELDS)
            and isinstance(e.get("sources") or [], list)
            and all(
                isinstance(src, dict)
                and all(src.get(k) is None or isinstance(src[k], str) for k in ("model", "tag"))
                for src in e.get("sources") or []
            )
        )
        if not ok:
            raise _bad_bundle(bundle, f"manifest entry {i} is malformed: {str(e)[:500]}")
        if e["sha256"] in seen:
            raise _bad_bundle(bundle, f"manifest lists sha256 {e['sha256']} twice")
        seen.add(e["sha256"])
        try:
            parse_checksum(e.get("checksum"))
        except RegistryError:
            raise _bad_bundle(
                bundle,
                f"manifest entry {i} has a malformed checksum {e['checksum']!r} (not md5:/sha256:<hex>)",
            ) from None
    return entries


def import_bundle(bundle: PathLike, *, cache_dir: Optional[PathLike] = None) -> List[Dict[str, Any]]:
    """Verify a bundle member by member against its manifest, then add it to the user cache.

    Nothing lands in the cache unless every member is expected, a regular file, and
    hashes to the manifest's sha256 (and md5 / pinned checksum when given).

    Returns:
        The manifest entries imported.

    Raises:
        UnsafeArchiveError: an unexpected, duplicated or non-file member, or a bad manifest.
        ChecksumError: a member's bytes do not match the manifest.
    """
    bundle = Path(bundle)
    if not bundle.is_file():
        raise CacheError(
            f"bundle {str(bundle)!r} does not exist; give a file made by `paddlehub-cls cache export`"
        )
    user = cache_roots(cache_dir)[-1]
    user.prepare()
    staging = user.tmp / f"import-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        try:
            tf = tarfile.open(bundle, "r:*")
        except _READ_ERRORS as exc:
            raise _bad_bundle(bundle, f"is not a readable tar file ({exc})") from None
        with tf:
            entries = _stage(tf, bundle, staging)
        for e in entries:
            _commit_import(user, staging, e)
    except OSError as exc:
        if isinstance(exc, PaddleHubClsError):
            raise
        # Reading errors were mapped above: this is the cache that cannot be written (full disk).
        raise CacheError(
            f"cannot import {str(bundle)!r} into the cache {user.path} ({exc}); artifacts verified and moved "
            "in before the error stay, nothing half-written does. Free disk space, or point "
            "PADDLEHUB_CLS_HOME (or cache_dir=) at a bigger writable disk"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entries


def _stage(tf: tarfile.TarFile, bundle: Path, staging: Path) -> List[Dict[str, Any]]:
    try:
        first = tf.next()
        if first is None or first.name != "manifest.json" or not first.isreg() or first.size > _MAX_MANIFEST:
            raise _bad_bundle(bundle, "does not start with a manifest.json file")
        raw = tf.extractfile(first).read()
    except _READ_ERRORS as exc:
        raise _bad_bundle(bundle, f"is damaged ({exc})") from None
    entries = _check_manifest(bundle, raw)
    by_name = {f"blobs/sha256/{e['sha256']}": e for e in entries}
    stamps = {f"{n}.json" for n in by_name}
    seen = set()
    while True:
        try:
            member = tf.next()
        except _READ_ERRORS as exc:
            raise _bad_bundle(bundle, f"is damaged ({exc})") from None
        if member is None:
            break
        name = member.name
        if name in seen or (name not in by_name and name not in stamps):
            raise _bad_bundle(bundle, f"member {name!r} is unexpected or repeated")
        if not member.isreg():
            raise _bad_bundle(bundle, f"member {name!r} is not a regular file")
        seen.add(name)
        if name in stamps:
            continue  # stamps are rewritten from the manifest and our own hashes
        e = by_name[name]
        if member.size != e["size"]:
            raise ChecksumError(
                f"bundle {bundle} member {name!r} is {member.size} bytes, manifest says {e['size']}"
            )
        try:
            src = tf.extractfile(member)
        except _READ_ERRORS as exc:
            raise _bad_bundle(bundle, f"is damaged ({exc})") from None
        sha, md5 = _stream_hash(src, staging / e["sha256"], bundle)
        expected = {"sha256": e["sha256"], "md5": e.get("md5")}
        if e.get("checksum"):
            algo, _, hexd = e["checksum"].lower().partition(":")
            if expected.get(algo) not in (None, hexd):
                raise _bad_bundle(bundle, f"manifest entry {name!r} has contradicting checksums")
            expected[algo] = hexd
        for algo, actual in (("sha256", sha), ("md5", md5)):
            if expected[algo] is not None and actual != expected[algo]:
                raise ChecksumError(
                    f"bundle {bundle} member {name!r}: expected {algo}:{expected[algo]}, got "
                    f"{algo}:{actual}; the bundle is damaged or was altered. Nothing was imported: export it "
                    "again."
                )
        e["md5"] = md5
    missing = sorted(set(by_name) - seen)
    if missing:
        raise _bad_bundle(bundle, f"lacks members listed in its manifest: {missing}")
    return entries


def _stream_hash(src: Any, dest: Path, bundle: Path) -> Tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with src, open(dest, "wb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _READ_ERRORS as exc:
                raise _bad_bundle(bundle, f"is damaged ({exc})") from None
            if not chunk:
                break
            sha.update(chunk)
            md5.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return sha.hexdigest(), md5.hexdigest()


def _commit_import(user: CacheRoot, staging: Path, e: Dict[str, Any]) -> None:
    sha = e["sha256"]
    if check_blob(user, sha) is None:
        user.blob(sha).parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staging / sha, 0o644)
        os.replace(staging / sha, user.blob(sha))
    old = read_stamp(user.stamp(sha))
    sources = list(old["sources"])
    sources += [s for s in e.get("sources", []) if isinstance(s, dict) and s not in sources]
    stamp = {
        "sha256": sha,
        "md5": e["md5"],
        "size": e["size"],
        "mtime_ns": user.blob(sha).stat().st_mtime_ns,
        "url": e.get("url"),
        "urls": e.get("urls") or [],
        "filename": e.get("filename") or sha,
        "checksum": e.get("checksum") or old.get("checksum"),
        "trust": e.get("trust") or "unknown",
        "sources": sources,
        "verified_at": now(),
        "imported": True,
    }
    atomic_write_json(user.stamp(sha), stamp)
    checksum = str(e.get("checksum") or "")
    if checksum.startswith("md5:"):
        write_ref(user.ref("md5", checksum[4:].lower()), sha)
    if not checksum:  # an unpinned file: the bundle's copy becomes the first-use pin
        for url in e.get("urls") or []:
            write_ref(user.ref("url", url), sha)
