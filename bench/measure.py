"""Timing and memory measurements, and their summary (median, min, max)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class OperationFailed(RuntimeError):
    """A measured command failed; the message is the command and the first line of its stderr."""


@dataclass
class Series:
    """Samples of one quantity on one system (ms for times, MB for memory)."""

    unit: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def cell(self) -> str:
        if self.error is not None:
            return "failed (below)"
        if not self.samples:
            return "n/a"
        fmt = (
            "{:.0f}"
            if self.unit == "ms" and self.median >= 10
            else "{:.1f}"
            if self.unit == "ms"
            else "{:.2f}"
        )
        lo, hi = min(self.samples), max(self.samples)
        if len(self.samples) == 1:
            return f"{fmt.format(self.median)} {self.unit}"
        return f"{fmt.format(self.median)} {self.unit} ({fmt.format(lo)}–{fmt.format(hi)}, n={len(self.samples)})"


def ratio(berth: Series, ref: Series) -> str:
    if not (berth.ok and ref.ok) or ref.median == 0:
        return "–"
    return f"{berth.median / ref.median:.2f}"


def timed(fn: Callable[[], subprocess.CompletedProcess[str]]) -> float:
    """Run `fn` (a command) once; its wall time in ms. OperationFailed if it exits non-zero."""
    t0 = time.perf_counter()
    r = fn()
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        args = r.args if isinstance(r.args, str) else " ".join(map(str, r.args))
        first = [ln for ln in (r.stderr or r.stdout or "").strip().splitlines() if ln.strip()]
        raise OperationFailed(f"`{args}` exited {r.returncode}: {first[0][:200] if first else ''}")
    return ms


def pss_kb(pid: int) -> int | None:
    """Proportional set size of `pid` in kB (/proc/<pid>/smaps_rollup), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
