"""Shared pieces of the reliability battery: fixtures' data, cache audits, registry files, counters.

Everything here is test code. The cache audit (:func:`audit_cache`) is the battery's definition of
"consistent": every file at a final path of the cache is re-hashed against its name, stamp or
completion marker, and anything else (partials, temporary files) is listed separately.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import re
import socket
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from paddlehub_cls import archive
from paddlehub_cls.formats.fluid import encode_var

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
WORKER = HERE / "_worker.py"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")

#: What the battery ran, by kind ("network scenarios", "kill points", ...): printed at the end of the run.
COUNTS: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def count(kind: str, n: int = 1, outcome: str = "run") -> None:
    """Add ``n`` to the battery counter ``kind`` (``outcome`` "run" or "passed")."""
    COUNTS[kind][outcome] += n


# --------------------------------------------------------------------------- artifacts


def tiny_tensors(seed: int = 0, scale: int = 1) -> Dict[str, np.ndarray]:
    """A few named float32/int64 tensors, about ``scale`` x 420 KB in total."""
    rng = np.random.default_rng(seed)
    return {
        "conv1_weights": rng.standard_normal((64, 3, 7, 7 * scale)).astype(np.float32),
        "res2a_branch2a_weights": rng.standard_normal((64, 64, 3, 3 * scale)).astype(np.float32),
        "bn_conv1_scale": rng.standard_normal(64 * scale).astype(np.float32),
        "fc_0.w_0": rng.standard_normal((256, 256 * scale)).astype(np.float32),
        "fc_0.b_0": np.arange(256 * scale, dtype=np.int64),
    }


def fluid_tar(tensors: Mapping[str, np.ndarray], root: str = "Tiny_pretrained", mode: str = "w") -> bytes:
    """A 2019-style release archive: ``root/<variable>`` files in the LoDTensor layout."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        dirinfo = tarfile.TarInfo(root)
        dirinfo.type, dirinfo.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(dirinfo)
        for name, arr in tensors.items():
            add_tar_bytes(tf, f"{root}/{name}", encode_var(arr))
    return buf.getvalue()


def add_tar_bytes(tf: tarfile.TarFile, name: str, data: bytes, **attrs: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data))


def tar_of(entries: Sequence[Tuple[str, Any]], mode: str = "w") -> bytes:
    """A tar from ``(name, bytes)`` regular files and ready ``TarInfo`` objects (no data)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tf:
        for name, data in entries:
            if isinstance(data, tarfile.TarInfo):
                data.name = name
                tf.addfile(data)
            else:
                add_tar_bytes(tf, name, data)
    return buf.getvalue()


def zip_of(entries: Sequence[Tuple[Any, bytes]]) -> bytes:
    """A zip from ``(name or ZipInfo, bytes)`` members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def pdparams_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    """A state_dict pickle in the shape ``paddle.save`` writes (protocol 2, numpy arrays)."""
    return pickle.dumps(dict(tensors), protocol=2)


def digests(tensors: Mapping[str, np.ndarray]) -> Dict[str, str]:
    """name -> "dtype shape sha256" of each tensor: equal digests mean equal tensors."""
    out = {}
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr)
        out[name] = f"{a.dtype.str} {list(a.shape)} {hashlib.sha256(a.tobytes()).hexdigest()}"
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- registry files


def model_entry(weights: Mapping[str, Any], **over: Any) -> Dict[str, Any]:
    """A complete, valid extra-registry model entry (a ResNet50 graph) with the given variants."""
    entry: Dict[str, Any] = {
        "architecture": "resnet50",
        "family": "resnet",
        "num_classes": 1000,
        "input_size": [3, 224, 224],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "license": "Apache-2.0",
        "default_weights": next(iter(weights), None),
        "weights": dict(weights),
    }
    entry.update(over)
    return entry


def variant_entry(url: str, data: Optional[bytes], container: str, **over: Any) -> Dict[str, Any]:
    """A weight variant served at ``url``; ``data`` None leaves it unpinned (trust on first use)."""
    v: Dict[str, Any] = {
        "urls": [url],
        "checksum": f"sha256:{sha256(data)}" if data is not None else None,
        "container": container,
        "layout": "fluid2019" if container.startswith("fluid") else "native",
    }
    if data is None:
        v["checksum_note"] = "test artifact without a published checksum"
    else:
        v["size"] = len(data)
    if container.startswith("fluid"):
        v["archive_root"] = "Tiny_pretrained"
    v.update(over)
    return v


def write_registry(path: Path, models: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "models": dict(models)}, indent=1), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- cache audit


@dataclass
class Audit:
    """What :func:`audit_cache` found: ``problems`` break the cache's promise, ``leftovers`` do not."""

    problems: List[str] = field(default_factory=list)
    leftovers: List[str] = field(default_factory=list)
    blobs: List[str] = field(default_factory=list)
    unpacked: List[str] = field(default_factory=list)
    converted: List[str] = field(default_factory=list)

    @property
    def partials(self) -> List[str]:
        return [p for p in self.leftovers if p.startswith("tmp/") and ".partial" in p]


def _hash(path: Path) -> Tuple[str, str, int]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def audit_cache(root: Path, expected: Optional[Mapping[str, Mapping[str, str]]] = None) -> Audit:
    """Re-hash everything at a final path of the cache ``root``.

    Args:
        root: a cache root (user or shared).
        expected: converted-key prefix (artifact sha256) -> tensor digests (:func:`digests`) that a
            trusted converted file of that artifact must hold.

    Returns:
        An :class:`Audit`. A problem is a file where a verified one belongs that is not verified:
        a blob whose bytes do not hash to its name, a stamp that contradicts its blob, a ref to a
        blob with another md5, an unpacked directory without its marker or with changed files, a
        converted file whose fresh stamp vouches for wrong tensors, or an unknown file.
    """
    from paddlehub_cls import fastload

    audit = Audit()
    if not root.exists():
        return audit
    blobdir = root / "blobs" / "sha256"
    md5_of: Dict[str, str] = {}
    for p in sorted(blobdir.iterdir()) if blobdir.is_dir() else []:
        rel = str(p.relative_to(root))
        if HEX64.match(p.name):
            if not p.is_file() or p.is_symlink():
                audit.problems.append(f"{rel}: not a regular file")
                continue
            sha, md5, size = _hash(p)
            md5_of[p.name] = md5
            audit.blobs.append(p.name)
            if sha != p.name:
                audit.problems.append(f"{rel}: content hashes to {sha}")
            stamp_path = p.with_name(p.name + ".json")
            if stamp_path.exists():
                try:
                    stamp = json.loads(stamp_path.read_text())
                except ValueError:
                    audit.problems.append(f"{rel}.json: not JSON")
                    continue
                if (
                    stamp.get("sha256") != p.name
                    or stamp.get("size") != size
                    or stamp.get("md5") not in (None, md5)
                ):
                    audit.problems.append(f"{rel}.json: stamp {stamp} contradicts the blob")
        elif p.name.endswith(".json") and HEX64.match(p.name[:-5]):
            if not (blobdir / p.name[:-5]).exists():
                audit.leftovers.append(rel)  # a stamp whose blob was quarantined or not moved in
        elif p.name.startswith(".") and p.name.endswith(".tmp"):
            audit.leftovers.append(rel)
        else:
            audit.problems.append(f"{rel}: unexpected file at a final path")
    refs = root / "refs"
    for kind in ("md5", "url"):
        for p in sorted((refs / kind).iterdir()) if (refs / kind).is_dir() else []:
            rel = str(p.relative_to(root))
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                audit.leftovers.append(rel)
                continue
            target = p.read_text(errors="replace").strip()
            if not HEX64.match(target):
                audit.leftovers.append(rel)  # lookups ignore a ref that names no sha256
            elif kind == "md5" and target in md5_of and md5_of[target] != p.name:
                audit.problems.append(f"{rel}: points at a blob whose md5 is {md5_of[target]}")
    unpacked = root / "unpacked"
    for d in sorted(unpacked.iterdir()) if unpacked.is_dir() else []:
        rel = str(d.relative_to(root))
        if d.name.startswith("."):
            audit.leftovers.append(rel)
            continue
        if not HEX64.match(d.name) or not archive.is_complete(d):
            audit.problems.append(f"{rel}: an unpacked directory without its completion marker")
            continue
        problems = archive.verify_extraction(d)
        marker = archive.read_marker(d)
        if problems or marker.get("archive_sha256") not in (None, d.name):
            audit.problems.append(f"{rel}: {problems or marker.get('archive_sha256')}")
        audit.unpacked.append(d.name)
    conv = root / fastload.SUBDIR
    for p in sorted(conv.iterdir()) if conv.is_dir() else []:
        rel = str(p.relative_to(root))
        if p.name.endswith(".safetensors"):
            key = p.name[: -len(".safetensors")]
            stamp = fastload._fresh(p, key)
            if stamp is None:
                audit.leftovers.append(rel)  # never trusted: converted again on next use
                continue
            tensors, _ = fastload.map_safetensors(p)
            want = (expected or {}).get(key.split("-")[0])
            if want is not None and digests(tensors) != dict(want):
                audit.problems.append(f"{rel}: a fresh stamp vouches for tensors that differ from the source")
            audit.converted.append(key)
        elif p.name.endswith(".safetensors.json"):
            if not p.with_name(p.name[:-5]).exists():
                audit.leftovers.append(rel)
        else:
            audit.leftovers.append(rel)
    tmp = root / "tmp"
    for p in sorted(tmp.iterdir()) if tmp.is_dir() else []:
        audit.leftovers.append(str(p.relative_to(root)))
    for p in sorted(root.iterdir()):
        if p.name not in {"blobs", "refs", "unpacked", "fastload", "tmp", "locks", "quarantine"}:
            audit.problems.append(f"{p.name}: unexpected entry in the cache root")
    return audit


def snapshot(root: Path, exclude: Iterable[Path] = ()) -> List[Tuple[str, int, int, int]]:
    """(path, size, mtime_ns, mode) of everything under ``root``, links not followed."""
    skip = [Path(e) for e in exclude]
    out = []
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            p = here / name
            if p in skip:
                continue
            st = p.lstat()
            out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns, st.st_mode))
    return sorted(out)


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(base: Mapping[str, str], **extra: str) -> Dict[str, str]:
    """``base`` (the conftest ``subprocess_env``) plus test-wide settings for worker processes."""
    env = dict(base)
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PADDLEHUB_CLS_DISABLE_PROGRESS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def worker_cmd(*args: str) -> List[str]:
    return [sys.executable, str(WORKER), *args]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
