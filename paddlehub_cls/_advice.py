"""What a failed download or an offline miss tells the user: one reason per URL, then what works.

Internal to :mod:`paddlehub_cls._transfer`. The messages are built here, in one place, so that the
download error and the offline error give the same commands (with the model's own name and tag)
and a cached copy under another pin is reported wherever "not in any cache" would be said.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import List, Sequence

from paddlehub_cls._cache import (
    CacheRoot,
    Hit,
    Want,
    blob_names,
    read_stamp,
    recorded_pin,
    shared_cache_roots,
)


def roots_of(user: CacheRoot) -> List[CacheRoot]:
    """The shared caches (read-only) and ``user``, in lookup order."""
    return [CacheRoot(p, False) for p in shared_cache_roots()] + [user]


def name(want: Want) -> str:
    """``MODEL.TAG`` for commands, or a placeholder for a file that is not a registry variant."""
    return f"{want.model}.{want.tag}" if want.model and want.tag else "NAME.TAG"


def _mirror_path(want: Want, base: str = "BASE") -> str:
    """Where a mirror base must hold the file: ``BASE/HOST/PATH`` for the first http(s) URL."""
    for url in want.urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{base}/{parts.netloc}{parts.path}"
    return f"{base}/HOST/PATH"


def failure_lines(failures: Sequence[str]) -> str:
    """One ``URL: reason`` per line, indented under the message's first line."""
    return "".join(f"\n  {line}" for line in failures)


def download_failed(want: Want, user: CacheRoot, failures: Sequence[str], kept_note: str) -> str:
    """Message of the DownloadError raised when every URL failed (none gave wrong bytes)."""
    lines = [
        f"could not download {want.describe()}:{failure_lines(failures)}",
        f"Nothing was cached in {user.path}{kept_note}.",
        *other_copy_lines(want, roots_of(user)),
        "Check the network or proxy settings (HTTPS_PROXY), or get the file another way:",
    ]
    if want.model:  # a registry variant: a local file or `cache add` can stand in for the download
        lines.append('  - a weight file you already have: --weights PATH (Python: weights="PATH")')
    lines.append(
        "  - a mirror: PADDLEHUB_CLS_MIRROR=BASE (http://, https:// or file://) with the file at "
        + _mirror_path(want)
    )
    if want.model:
        lines.append(
            f"  - a file downloaded elsewhere (a browser: {want.urls[0]}): "
            f"paddlehub-cls cache add {name(want)} FILE"
        )
    lines.append("  - only what is already cached, without waiting for the network: PADDLEHUB_CLS_OFFLINE=1")
    return "\n".join(lines)


def offline_miss(want: Want, roots: Sequence[CacheRoot]) -> str:
    """Message of the OfflineError: the file is in no cache (or only under another pin)."""
    user = roots[-1]
    shared = os.environ.get("PADDLEHUB_CLS_SHARED_CACHE", "")
    where = f"user cache {user.path}; shared caches {shared or 'none'}"
    others = other_copy_lines(want, roots)
    state = "has no copy with that checksum in any cache" if others else "is in no cache"
    variant = name(want)
    command = f"{want.model} --weights {want.tag}" if want.model and want.tag else "NAME"
    download = f"paddlehub-cls download {command}"
    return "\n".join(
        [
            f"PADDLEHUB_CLS_OFFLINE=1 and {want.describe()} (checksum {want.checksum or 'none published'}) "
            f"{state} ({where}).",
            *others,
            "To get it:",
            f"  - on a machine with internet: {download} && paddlehub-cls cache export bundle.tar {variant}; "
            "here: paddlehub-cls cache import bundle.tar",
            *(
                [f"  - the file itself ({want.urls[0]}), copied here: paddlehub-cls cache add {variant} FILE"]
                if want.model
                else []
            ),
            "  - a cache that has it: PADDLEHUB_CLS_SHARED_CACHE=DIR",
            "  - a file:// mirror: PADDLEHUB_CLS_MIRROR=file:///DIR with the file at "
            + _mirror_path(want, "DIR"),
            "  - the network: unset PADDLEHUB_CLS_OFFLINE",
        ]
    )


def other_copies(want: Want, roots: Sequence[CacheRoot]) -> List[Hit]:
    """Cached files stamped as this model variant or as from its URLs (lookup already missed them).

    A bundle from a machine with a site registry, or a download under an older pin, leaves a
    blob that a lookup by this registry's checksum cannot reach.
    """
    found: List[Hit] = []
    source = {k: str(v).lower() for k, v in (want.source() or {}).items()}
    for root in roots:
        for sha in blob_names(root):
            stamp = read_stamp(root.stamp(sha))
            urls = stamp.get("urls") if isinstance(stamp.get("urls"), list) else []
            named = bool(source) and any(
                {k: str(s.get(k)).lower() for k in ("model", "tag")} == source for s in stamp["sources"]
            )
            if named or set(urls) & set(want.urls):
                found.append(Hit(root, sha, stamp))
    return found


def other_copy_lines(want: Want, roots: Sequence[CacheRoot]) -> List[str]:
    """Lines naming each cached copy under another pin, both checksums, and what to do."""
    hits = other_copies(want, roots)
    if not hits:
        return []
    pin = recorded_pin(want, roots) if not want.algo else None
    if want.algo:
        expected = f"{want.checksum} (the registry's pin)"
    else:
        recorded = f"this cache recorded sha256:{pin} on first use" if pin else "nothing recorded here yet"
        expected = f"none published (trust on first use; {recorded})"
    lines = ["A cached file of it exists, but its checksum differs from the registry's pin:"]
    for hit in hits:
        pinned = hit.stamp.get("checksum") or "none"
        lines.append(f"  cached:   sha256:{hit.sha256} (pinned there as {pinned}) {hit.path}")
    lines.append(f"  registry: {expected}")
    lines.append(
        "  If you trust the cached file, pin it: an extra registry file (PADDLEHUB_CLS_REGISTRY) setting "
        f'"checksum": "sha256:<hex>" for {name(want)}, as the machine it came from may have done'
        + (
            f"; or record it as this cache's first use: paddlehub-cls cache add {name(want)} PATH"
            if not want.algo and not pin
            else ""
        )
        + "."
    )
    return lines
