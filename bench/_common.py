"""What the benchmark groups share: one measured figure and the median of samples."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class Figure:
    group: str
    name: str
    value: float
    unit: str
    target: str
    ok: Optional[bool]
    baseline: Optional[float] = None
    detail: Dict[str, Any] = field(default_factory=dict)


def median(xs: List[float]) -> float:
    return float(statistics.median(xs))
