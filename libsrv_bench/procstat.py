"""What the operating system says about processes and the machine (Linux /proc; elsewhere the
figures are empty): resident memory, CPU time of a process tree, and how busy the cores were."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, in MB (0 where /proc is missing)."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the name in parentheses may hold spaces


def process_tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive."""
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot; (0, 0) without /proc."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    ticks = [int(x) for x in first]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


@dataclass
class CostMeter:
    """CPU spent by a server's processes and by the machine between `start` and `stop`."""

    root: int | None
    _before: dict[int, float] | None = None
    _machine: tuple[int, int] = (0, 0)

    def start(self) -> CostMeter:
        self._machine = machine_ticks()
        if self.root is not None:
            self._before = cpu_seconds(process_tree(self.root))
        return self

    def stop(self, requests: int) -> dict[str, object]:
        """The server's CPU seconds per process and per request, and the machine's busy share
        of its cores (1.0 = every core busy)."""
        busy, total = machine_ticks()
        figures: dict[str, object] = {
            "machine_busy": round((busy - self._machine[0]) / (total - self._machine[1]), 3)
            if total > self._machine[1] else None,
            "cpus": os.cpu_count()}
        if self.root is not None and self._before is not None:
            after = cpu_seconds(process_tree(self.root))
            spent = {pid: round(after[pid] - self._before.get(pid, 0.0), 3) for pid in after}
            figures["server_cpu_seconds"] = {str(pid): s for pid, s in spent.items() if s > 0}
            total_spent = sum(spent.values())
            figures["server_cpu_us_per_request"] = round(total_spent / requests * 1e6, 1) \
                if requests else None
        return figures
