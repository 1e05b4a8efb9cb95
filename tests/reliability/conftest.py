"""Fixtures of the reliability battery, and a summary of what it ran.

At the end of a run that collected this folder, the terminal summary lists per battery section
how many test cases passed, and the counters the tests kept with :func:`_support.count`
(scenarios, kill points, processes, hostile artifacts, fuzz examples). Set
``PADDLEHUB_CLS_BATTERY_REPORT=FILE`` to also write them to FILE as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402

from paddlehub_cls import _transfer  # noqa: E402

_SECTIONS = {
    "test_network_faults": "1 network faults",
    "test_crash_consistency": "2 crash consistency",
    "test_concurrency": "3 concurrency",
    "test_hostile_inputs": "4 hostile inputs",
    "test_fuzz": "5 fuzzing",
    "test_multiuser": "6 multi-user and full disks",
    "test_soak": "soak (slow)",
}
_outcomes: Dict[str, Counter] = defaultdict(Counter)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Back-off pauses the downloader asked for, recorded instead of slept."""
    seen: List[float] = []
    monkeypatch.setattr(_transfer, "_sleep", seen.append)
    return seen


@pytest.fixture
def wenv(subprocess_env: Dict[str, str]) -> Dict[str, str]:
    """Environment for :mod:`_worker` processes (the test's cache, one thread, no progress bars)."""
    return _support.subprocess_env(subprocess_env)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = Path(str(report.fspath)).stem
    if module not in _SECTIONS:
        return
    if report.when == "call":
        _outcomes[module][report.outcome] += 1
    elif report.outcome != "passed":  # a setup or teardown error
        _outcomes[module]["error"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    tr = terminalreporter
    tr.write_sep("=", "reliability battery")
    data: Dict[str, Any] = {"sections": {}, "counts": {}}
    for module, title in _SECTIONS.items():
        if module in _outcomes:
            c = _outcomes[module]
            total = sum(c.values())
            tr.write_line(
                f"{title}: {c['passed']}/{total} test cases passed"
                + (f" ({c['failed']} failed, {c['error']} errors)" if c["failed"] or c["error"] else "")
            )
            data["sections"][title] = dict(c)
    for kind, c in sorted(_support.COUNTS.items()):
        tr.write_line(f"  {kind}: {c['passed']}/{c['run']} passed")
        data["counts"][kind] = dict(c)
    out = os.environ.get("PADDLEHUB_CLS_BATTERY_REPORT")
    if out:
        Path(out).write_text(json.dumps(data, indent=1))
