"""Deterministic crash points for worker processes (test-only).

:func:`install` wraps a few functions the download path calls (the body hash update, ``os.fsync``,
``os.replace``, ``os.rename``, archive member copies, the weight reader, the stamp writer). Every
call is an *event*, labelled with the artifact being loaded and the phase it happens in (``body``,
``commit``, ``extract``, ``convert``). With ``PADDLEHUB_CLS_TEST_TRACE=FILE`` the events are
written to FILE at exit; with ``PADDLEHUB_CLS_TEST_KILL=ARTIFACT|PHASE|EVENT|N`` the process
sends itself SIGKILL at the N-th such event, after writing one line to stderr saying so. The
point is chosen by counting calls, never by timing, so every run dies at the same place.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import sys
from collections import Counter
from typing import Any, Callable, List, Optional, Tuple

#: the artifact being loaded, set by the worker
ARTIFACT = "-"
_phases: List[str] = []
_seen: Counter = Counter()
_trace: List[Tuple[str, str, str]] = []
_kill: Optional[Tuple[str, str, str, int]] = None


def _event(name: str) -> None:
    key = (ARTIFACT, _phases[-1] if _phases else "other", name)
    _seen[key] += 1
    _trace.append(key)
    if _kill is not None and key == _kill[:3] and _seen[key] == _kill[3]:
        sys.stderr.write(f"KILLED at {'|'.join(key)}|{_seen[key]}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _around(fn: Callable[..., Any], name: str, after: bool = False) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _event(name)
        out = fn(*args, **kwargs)
        if after:
            _event(name + "d")
        return out

    return wrapper


def _phase(fn: Callable[..., Any], phase: str, name: Optional[str] = None) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _phases.append(phase)
        try:
            if name:
                _event(name)
            return fn(*args, **kwargs)
        finally:
            _phases.pop()

    return wrapper


def install() -> None:
    """Wrap the event sources and phase functions; reads the two environment variables."""
    global _kill
    from paddlehub_cls import _cache, _transfer, archive, fastload, formats, hub

    spec = os.environ.get("PADDLEHUB_CLS_TEST_KILL")
    if spec:
        artifact, phase, event, n = spec.split("|")
        _kill = (artifact, phase, event, int(n))
    trace = os.environ.get("PADDLEHUB_CLS_TEST_TRACE")
    if trace:
        atexit.register(lambda: open(trace, "w").write(json.dumps(_trace)))

    _transfer._Hashes.update = _around(_transfer._Hashes.update, "chunk")
    os.fsync = _around(os.fsync, "fsync")
    os.replace = _around(os.replace, "replace", after=True)
    os.rename = _around(os.rename, "rename", after=True)
    archive._copy_member = _around(archive._copy_member, "member")
    formats.read_weights = _around(formats.read_weights, "read")
    _cache.record = _around(_cache.record, "stamp")
    _transfer.record = _cache.record  # imported by name there
    _transfer._http_download = _phase(_transfer._http_download, "body")
    _transfer._verify_and_commit = _phase(_transfer._verify_and_commit, "commit", "verify")
    hub._unpack_blob = _phase(hub._unpack_blob, "extract")
    fastload._convert_locked = _phase(fastload._convert_locked, "convert")
