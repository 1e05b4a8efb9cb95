"""How the command line prints a message: ``paddlehub-cls: KIND: WHAT`` on the first line.

Kept apart from :mod:`paddlehub_cls.cli` so that the cache commands, which ``cli`` imports,
print the same way without importing it back.
"""

from __future__ import annotations

from typing import Any

PROG = "paddlehub-cls"


def message_line(message: Any, kind: str = "error") -> str:
    """``paddlehub-cls: KIND: WHAT``, then any further lines of the message indented by two spaces.

    The first line holds the whole problem (scripts and log scrapers read it alone); the
    lines after it are the ways out that an error lists one per line (commands to run,
    URLs tried). Runs of spaces inside a line are collapsed and blank lines dropped.
    """
    lines = [" ".join(line.split()) for line in str(message).splitlines()]
    lines = [line for line in lines if line] or [""]
    return "\n".join([f"{PROG}: {kind}: {lines[0]}"] + [f"  {line}" for line in lines[1:]])
