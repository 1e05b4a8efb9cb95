"""Shared fixtures: a real HTTP server on 127.0.0.1 and an isolated cache environment.

Keep this file generic; fixtures for one area belong in a conftest.py of a subfolder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from httpserver import FileServer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

# Variables that change where or how the hub caches and downloads.
_RANK_VARS = ("PADDLE_RANK_IN_NODE", "PADDLE_LOCAL_RANK", "PADDLE_TRAINER_ID")


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A started :class:`httpserver.FileServer`; ``set_file``/``add_fault`` to program it."""
    with FileServer() as server:
        yield server


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point PADDLEHUB_CLS_HOME at ``tmp_path/"cache"`` and clear every other PADDLEHUB_CLS_* variable.

    Also clears the paddle launcher's rank variables, sends XDG_CACHE_HOME into
    tmp_path and keeps 127.0.0.1 off any proxy. Returns the cache root.
    """
    for name in list(os.environ):
        if name.startswith("PADDLEHUB_CLS_") or name in _RANK_VARS:
            monkeypatch.delenv(name)
    home = tmp_path / "cache"
    monkeypatch.setenv("PADDLEHUB_CLS_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return home


@pytest.fixture
def subprocess_env(cache_env: Path) -> Dict[str, str]:
    """Environment for ``sys.executable`` subprocesses: this checkout importable, one OMP thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
