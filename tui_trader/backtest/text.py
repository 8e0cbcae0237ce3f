"""Formatting shared by the terminal and HTML reports."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def downsample(times: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about `points` points, keeping each bucket's first, lowest and highest value."""
    n = len(values)
    if n <= points:
        return times, values
    step = math.ceil(n / (points / 3))
    keep = set(range(0, n, step))
    for lo in range(0, n, step):
        chunk = values[lo:lo + step]
        keep.add(lo + int(np.argmin(chunk)))
        keep.add(lo + int(np.argmax(chunk)))
    keep.add(n - 1)
    idx = np.array(sorted(keep))
    return times[idx], values[idx]


def money(v: float) -> str:
    return "-" if v != v else f"{v:+,.2f}"


def pct(v: float, signed: bool = True) -> str:
    return "-" if v != v else (f"{v:+.2f}%" if signed else f"{v:.2f}%")


def num(v: float) -> str:
    return "-" if v != v else ("inf" if v == math.inf else f"{v:.3f}")


def duration(ms: int) -> str:
    minutes = ms // 60_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d {hours:02d}h{mins:02d}m" if days else f"{hours}h{mins:02d}m"
