"""Fast warm loads: each verified artifact is converted once to a memory-mapped safetensors file.

Reading a ``.pdparams`` pickle through the restricted unpickler, or a 2019 directory of a few
hundred variable files, costs more than building the network. So the first load of a verified
artifact writes its tensors, unchanged, to ``<user cache>/fastload/v1/<key>.safetensors``, where
``<key>`` is the artifact's sha256 (plus a hash of the directory inside an unpacked archive).
Later loads map that file copy-on-write: no bytes are read or copied until a tensor is used, the
arrays are writable (a write copies the touched page into the process, never into the file), and
peak memory stays at the size of the model.

A converted file is trusted the way the hub trusts a blob: its stamp (``<file>.json``) records
the size and modification time written; a file that no longer matches is converted again from
its verified source. Files are written to a temporary name, synced and renamed, under a
per-artifact lock, so concurrent processes convert once and never see a partial file; the holder
of that lock also deletes the temporaries that killed conversions left. Read-only
shared caches (``PADDLEHUB_CLS_SHARED_CACHE``) are searched for a converted file first and never
written.

Only artifacts the hub verified are converted (the caller passes the
:class:`~paddlehub_cls.hub.Artifact` that :func:`~paddlehub_cls.hub.download_variant` returned); a
local file is read as it is. ``PADDLEHUB_CLS_FASTLOAD=0`` turns conversion off. Any failure to convert (full
disk, unwritable cache) is logged and the source is read directly.

This module never imports paddle, except inside :func:`assign`, and imports numpy only when it
reads tensors, so the cache commands can list and remove converted files cheaply.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from paddlehub_cls._cache import (
    Artifact,
    CacheRoot,
    atomic_write_json,
    cache_roots,
    locked,
    read_json,
    user_cache_root,
)
from paddlehub_cls._dtypes import DIRECT_DTYPES
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import CacheError, WeightsFormatError, WeightsMismatchError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from paddlehub_cls.formats import WeightsSource

logger = logging.getLogger(__name__)


#: directory under a cache root (``CacheRoot.converted_dir``), for tests and tools.
SUBDIR = CacheRoot(Path(), True).converted_dir
FORMAT_VERSION = 1
_META_KEY = "paddlehub_cls.fastload"
# Free space kept on the cache's filesystem beyond the converted file itself.
_SPACE_MARGIN = 64 << 20


def enabled() -> bool:
    """False when ``PADDLEHUB_CLS_FASTLOAD`` is ``0``/``false``/``no``/``off`` (read at call time)."""
    return os.environ.get("PADDLEHUB_CLS_FASTLOAD", "").strip().lower() not in {"0", "false", "no", "off"}


def converted_path(root: PathLike, key: str) -> Path:
    """Where the converted file of ``key`` lives under the cache root ``root``."""
    return CacheRoot(Path(root), True).converted(key)


def _stamp_path(file: Path) -> Path:
    return file.with_name(file.name + ".json")


def fresh_stamp(file: PathLike, key: str) -> Optional[Dict[str, Any]]:
    """The stamp of the converted ``file`` if the file is exactly what was written for ``key``, else None.

    Loads trust a converted file only when this returns its stamp (size and mtime unchanged).
    """
    return _fresh(Path(file), key)


def _fresh(file: Path, key: str) -> Optional[Dict[str, Any]]:
    try:
        st = file.stat()
    except OSError:
        return None
    stamp = read_json(_stamp_path(file))
    if not stamp:
        return None
    written = (stamp.get("version"), stamp.get("key"), stamp.get("size"), stamp.get("mtime_ns"))
    # Any write to the file changes its mtime: an unchanged (size, mtime_ns) pair means unchanged bytes.
    return stamp if written == (FORMAT_VERSION, key, st.st_size, st.st_mtime_ns) else None


def map_safetensors(path: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Map a safetensors file copy-on-write and return writable zero-copy arrays.

    The header is validated by :func:`paddlehub_cls.formats.safetensors_io.read_header`
    (bounds, dtypes, tiling). The mapping lives as long as any returned array; a write to an
    array copies that page privately and never reaches the file.

    Returns:
        ``({name: array}, metadata)``.

    Raises:
        WeightsFormatError: a malformed header, or a dtype this reader does not map
            (bfloat16 needs a widening copy: use :func:`~paddlehub_cls.formats.load_safetensors`).
    """
    import numpy as np

    from paddlehub_cls.formats.safetensors_io import read_header

    _, entries, metadata, size = read_header(path)
    tensors: Dict[str, np.ndarray] = {}
    if not entries:
        return tensors, dict(metadata)
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    if len(mapped) != size:
        raise WeightsFormatError(f"{os.fspath(path)}: file changed size while being mapped; convert it again")
    for name, (code, shape, begin, end) in entries.items():
        if code not in DIRECT_DTYPES:
            raise WeightsFormatError(
                f"{os.fspath(path)}: tensor {name!r} has dtype {code}, which cannot be mapped without a "
                "copy; "
                "read it with paddlehub_cls.formats.load_safetensors"
            )
        dtype = np.dtype(DIRECT_DTYPES[code])
        arr = np.frombuffer(mapped, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
        tensors[name] = arr.reshape(shape)
    return tensors, dict(metadata)


def _load_converted(file: Path, stamp: Mapping[str, Any]) -> "WeightsSource":
    from paddlehub_cls.formats import WeightsSource

    tensors, header = map_safetensors(file)
    try:
        meta = json.loads(header.get("source_metadata", "{}"))
    except ValueError:
        meta = {}
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["fastload"] = str(file)
    return WeightsSource(tensors, str(stamp.get("source_format")), file, meta)


def find_converted(key: str, cache_dir: Optional[PathLike] = None) -> Optional["WeightsSource"]:
    """Map the converted file of ``key`` from the first cache root holding a fresh one, or None."""
    for root in cache_roots(cache_dir):
        file = root.converted(key)
        stamp = _fresh(file, key)
        if stamp is None:
            continue
        try:
            return _load_converted(file, stamp)
        except (OSError, WeightsFormatError) as exc:
            # A stamp matching a damaged file means something changed it and kept its mtime.
            logger.warning(
                "ignoring damaged converted weights %s (%s); they will be converted again", file, exc
            )
            if root.writable:
                try:
                    _stamp_path(file).unlink()
                except FileNotFoundError:
                    pass
    return None


def read_source(
    source: "Union[Artifact, PathLike]", *, cache_dir: Optional[PathLike] = None
) -> "WeightsSource":
    """Tensors of a weight artifact, through its converted copy when the hub verified it.

    Args:
        source: the :class:`~paddlehub_cls.hub.Artifact` that
            :func:`paddlehub_cls.hub.download_variant` returned, or any local weights path
            (read directly).
        cache_dir: user cache root, as given to ``load_model``.

    Returns:
        A :class:`~paddlehub_cls.formats.WeightsSource` whose ``format`` is the artifact's own
        (``pdparams``, ``fluid``...). Converted arrays are writable copy-on-write maps;
        ``metadata["fastload"]`` names the converted file.

    Raises:
        WeightsFormatError, UnsafeWeightsError: the artifact itself cannot be read.
    """
    from paddlehub_cls import formats

    if not isinstance(source, Artifact) or not enabled():
        return formats.read_weights(source.path if isinstance(source, Artifact) else source)
    path, key = source.path, source.key
    hit = find_converted(key, cache_dir)
    if hit is not None:
        return hit
    try:
        return _convert_locked(path, key, cache_dir)
    except (OSError, CacheError) as exc:
        logger.warning(
            "could not write converted weights for %s into the cache (%s); reading it directly. Free disk "
            "space or fix the cache directory, or set PADDLEHUB_CLS_FASTLOAD=0 to stop trying",
            path,
            exc,
        )
        return formats.read_weights(path)


def _convert_locked(path: Path, key: str, cache_dir: Optional[PathLike]) -> "WeightsSource":
    root = CacheRoot(user_cache_root(cache_dir), True)
    root.prepare()
    dest = root.converted(key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fix = "raise PADDLEHUB_CLS_DOWNLOAD_TIMEOUT, delete a stale lock file, or set PADDLEHUB_CLS_FASTLOAD=0"
    with locked(root, f"fastload-{key}", f"converting {path}", fix):
        remove_temporaries(dest)
        stamp = _fresh(dest, key)  # another process may have converted it while we waited
        if stamp is None:
            stamp = convert(path, dest, key)
        else:
            logger.debug("converted weights for %s appeared while waiting: %s", path, dest)
    return _load_converted(dest, stamp)


def remove_temporaries(dest: PathLike) -> List[Path]:
    """Delete the hidden ``.<dest name>.*.tmp`` files that killed conversions left beside ``dest``.

    Only a holder of the conversion lock of ``dest`` writes them, so the caller must hold it: any
    such file it sees belongs to a process that died (a converted one is as large as the model).

    Returns:
        The files removed.
    """
    dest = Path(dest)
    removed: List[Path] = []
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue
        removed.append(tmp)
    if removed:
        logger.info("removed %d temporary file(s) of crashed conversions of %s", len(removed), dest)
    return removed


def convert(source: PathLike, dest: PathLike, key: str) -> Dict[str, Any]:
    """Write the tensors of ``source`` unchanged to the safetensors file ``dest`` and stamp it.

    The caller holds the lock of ``key``. The file is written to a temporary name, synced and
    renamed; the stamp is written last, so a crash leaves nothing that a later load trusts.

    Returns:
        The stamp written next to ``dest``.

    Raises:
        WeightsFormatError, UnsafeWeightsError: ``source`` cannot be read.
        CacheError: not enough free space for the converted file.
        OSError: the file cannot be written.
    """
    from paddlehub_cls import formats

    dest = Path(dest)
    started = time.perf_counter()
    src = formats.read_weights(source)
    nbytes = sum(int(a.nbytes) for a in src.tensors.values())
    free = shutil.disk_usage(dest.parent).free
    if free < nbytes + _SPACE_MARGIN:
        raise CacheError(
            f"{dest.parent} has {free} bytes free, the converted weights of {source} need {nbytes} "
            f"(plus {_SPACE_MARGIN} spare)"
        )
    meta = {
        _META_KEY: str(FORMAT_VERSION),
        "source_format": src.format,
        "source_metadata": json.dumps(dict(src.metadata), default=str, sort_keys=True),
    }
    try:
        formats.save_safetensors(src.tensors, dest, meta)
    except WeightsFormatError as exc:
        # A dtype safetensors cannot hold: not an error of the source, so read it directly.
        raise CacheError(f"the tensors of {source} cannot be stored as safetensors: {exc}") from exc
    st = dest.stat()
    stamp = {
        "version": FORMAT_VERSION,
        "key": key,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "source": str(source),
        "source_format": src.format,
        "tensors": len(src.tensors),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(_stamp_path(dest), stamp)
    logger.info(
        "converted %s (%s, %d tensors) to %s in %.2fs",
        source,
        src.format,
        len(src.tensors),
        dest,
        time.perf_counter() - started,
    )
    return stamp


def iter_converted(
    cache_dir: Optional[PathLike] = None, *, root: Optional[PathLike] = None
) -> Iterator[Tuple[Path, Optional[Dict[str, Any]]]]:
    """``(file, stamp or None)`` for every converted file in the user cache (for ``cache`` commands).

    Args:
        cache_dir: user cache root, as given to ``load_model``.
        root: list this cache root instead (a shared cache, say).
    """
    folder = CacheRoot(Path(root if root is not None else user_cache_root(cache_dir)), True).converted_dir
    if not folder.is_dir():
        return
    for file in sorted(folder.glob("*.safetensors")):
        yield file, read_json(_stamp_path(file))


def remove_converted(sha256: str, cache_dir: Optional[PathLike] = None) -> List[Path]:
    """Delete the converted files (and stamps) derived from the artifact ``sha256``; returns them.

    Open maps stay valid: a deleted file lives until its last map is closed.
    """
    removed: List[Path] = []
    for file, _ in list(iter_converted(cache_dir)):
        if file.stem == sha256 or file.stem.startswith(f"{sha256}-"):
            for p in (_stamp_path(file), file):
                try:
                    p.unlink()
                except FileNotFoundError:
                    continue
            removed.append(file)
    return removed


def assign(model: Any, arrays: Mapping[str, np.ndarray], skip: Collection[str] = ()) -> List[str]:
    """Set every state_dict entry of ``model`` from ``arrays`` with as few copies as possible.

    On CPU, a C-contiguous, aligned, writable array of the parameter's dtype becomes the
    parameter's memory (zero copy; the tensor keeps the array, and so its map, alive). Other
    arrays are cast or copied once. Parameters built under ``paddle.LazyGuard`` are assigned
    without ever running their initialiser, which is then dropped so nothing can re-initialise
    them later.

    Args:
        model: a ``paddle.nn.Layer``.
        arrays: our state_dict key -> array in the parameter's shape.
        skip: keys left as they are (e.g. a classifier about to be reset).

    Returns:
        The keys shared without a copy.

    Raises:
        WeightsMismatchError: an array is missing or its shape differs from the parameter's.
    """
    import numpy as np
    import paddle

    cpu = paddle.CPUPlace()
    on_cpu = isinstance(paddle.framework._current_expected_place(), paddle.CPUPlace)
    shared: List[str] = []
    # One array given for two parameters must not become one memory: each gets its own copy.
    taken = set()
    for key, param in model.state_dict().items():
        if key in skip:
            continue
        if key not in arrays:
            raise WeightsMismatchError(
                f"no array for {key} of {type(model).__name__}; this is a bug in paddlehub_cls"
            )
        arr = arrays[key]
        if tuple(arr.shape) != tuple(param.shape):
            raise WeightsMismatchError(
                f"{key}: array shape {list(arr.shape)} does not match the parameter's {list(param.shape)}"
            )
        want = np.dtype(str(param.dtype).replace("paddle.", ""))
        if arr.dtype != want:
            arr = arr.astype(want)  # the one copy a different dtype needs; the result is writable
        ptr = arr.__array_interface__["data"][0]
        if (
            on_cpu
            and arr.flags.c_contiguous
            and arr.flags.aligned
            and arr.flags.writeable
            and ptr not in taken
        ):
            param.get_tensor().set(arr, cpu, True)
            taken.add(ptr)
            shared.append(key)
        else:
            param.set_value(np.ascontiguousarray(arr))
        if getattr(param, "_init_func", None) is not None:
            param._init_func = None
    return shared


__all__ = [
    "FORMAT_VERSION",
    "SUBDIR",
    "assign",
    "convert",
    "converted_path",
    "enabled",
    "find_converted",
    "fresh_stamp",
    "iter_converted",
    "map_safetensors",
    "read_source",
    "remove_converted",
    "remove_temporaries",
]
