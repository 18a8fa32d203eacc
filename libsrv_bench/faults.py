"""A fault schedule: what to do to the server's processes, and when, during a run; and what each
fault cost, read off the run's timeline.

``--fault KIND@START[+DURATION]`` (repeatable; seconds from the start of the load):

- ``kill-worker@3``: SIGKILL one worker (the broker starts a replacement);
- ``stop-worker@5+1``: SIGSTOP one worker for 1 s, then SIGCONT (a stuck worker: the broker
  kills it once it has answered nothing for ``--worker-timeout``);
- ``kill-feed@4``: SIGKILL the live feed's process (the server starts a new one on its port;
  subscribers see the gap in the change numbers and take a snapshot).

They act on a server the bench starts (its workers are listed by its `stats`). The parsing and
the recovery figures are plain functions; `FaultRunner` is the thread that carries a schedule out.
Still to come (see the faults issue): a fault-injecting proxy for delay, loss and partitions,
and faults of the broker, the whole server and the feed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

KINDS = ("kill-worker", "stop-worker", "kill-feed")
NEEDS_DURATION = frozenset({"stop-worker"})
RECOVERED_SHARE = 0.9  # throughput is back when an interval reaches this share of before
BEFORE_SECONDS = 1.0  # "before": the median rate over this long before the fault
_PATTERN = re.compile(r"^(?P<kind>[a-z-]+)@(?P<at>\d+(\.\d+)?)(\+(?P<for>\d+(\.\d+)?))?$")


class FaultError(ValueError):
    """A fault that cannot be read or carried out; the message says which and why."""


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # seconds from the start of the load
    duration: float = 0.0

    @property
    def end(self) -> float:
        return self.at + self.duration

    def __str__(self) -> str:
        return f"{self.kind}@{self.at:g}" + (f"+{self.duration:g}" if self.duration else "")


def parse_fault(text: str) -> Fault:
    """``KIND@START[+DURATION]`` as a Fault; FaultError saying what is wrong otherwise."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise FaultError(f"cannot read the fault {text!r}: write KIND@START[+DURATION] in "
                         f"seconds, e.g. kill-worker@3 or stop-worker@5+1")
    kind = match["kind"]
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r} in {text!r}; the faults are "
                         f"{', '.join(KINDS)}")
    duration = float(match["for"] or 0)
    if kind in NEEDS_DURATION and duration <= 0:
        raise FaultError(f"{kind} needs a duration: {kind}@{match['at']}+SECONDS")
    if kind not in NEEDS_DURATION and duration:
        raise FaultError(f"{kind} happens at once; drop the +{match['for']}")
    return Fault(kind, float(match["at"]), duration)


def parse_schedule(texts: Sequence[str]) -> list[Fault]:
    return sorted((parse_fault(t) for t in texts), key=lambda f: f.at)


@dataclass
class Happened:
    """A fault as carried out: the worker it hit and when, on the load's clock (ms)."""

    fault: Fault
    pid: int | None
    at_ms: float
    error: str = ""


class FaultRunner:
    """Carries a schedule out on a thread, from the `start` given to `begin` (time.monotonic
    seconds; the thread waits for it). `workers()` lists the server's worker pids at that
    moment, `feed()` its feed's pid (or None); `happened` records each fault."""

    def __init__(self, schedule: Sequence[Fault], workers: Callable[[], list[int]],
                 feed: Callable[[], int | None] = lambda: None) -> None:
        self.schedule = list(schedule)
        self.happened: list[Happened] = []
        self._workers = workers
        self._feed = feed
        self._start = 0.0
        self._begun = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-faults", daemon=True)

    def __enter__(self) -> FaultRunner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def begin(self, start: float) -> None:
        """Time the schedule from `start` (time.monotonic seconds)."""
        self._start = start
        self._begun.set()

    def _run(self) -> None:
        while not self._begun.wait(0.05):
            if self._stop.is_set():
                return
        for number, fault in enumerate(self.schedule):
            if self._stop.wait(max(0.0, self._start + fault.at - time.monotonic())):
                return
            try:
                if fault.kind == "kill-feed":
                    pid = self._feed()
                    if pid is None:
                        raise FaultError("the server has no live feed process to kill")
                    os.kill(pid, signal.SIGKILL)
                    self.happened.append(Happened(fault, pid, time.monotonic() * 1000))
                    continue
                pids = self._workers()
                if not pids:
                    raise FaultError("the server lists no worker to act on")
                pid = pids[number % len(pids)]
                os.kill(pid, signal.SIGKILL if fault.kind == "kill-worker" else signal.SIGSTOP)
                self.happened.append(Happened(fault, pid, time.monotonic() * 1000))
                if fault.kind == "stop-worker":
                    self._stop.wait(fault.duration)  # (cut short at the end: never left stopped)
                    with contextlib.suppress(ProcessLookupError):  # killed as stuck meanwhile
                        os.kill(pid, signal.SIGCONT)
            except (FaultError, OSError, RuntimeError) as error:
                self.happened.append(Happened(fault, None, time.monotonic() * 1000,
                                              str(error)))


def recovery(table: pd.DataFrame, fault: Fault) -> float | None:
    """Seconds from the fault's start until an interval after its end answered at least
    RECOVERED_SHARE of the median rate of the BEFORE_SECONDS before it (None: it never did,
    or there is no "before" to compare with). `table` is a `timeline_frame`."""
    if table.empty:
        return None
    step = float(table["t_s"].iloc[1] - table["t_s"].iloc[0]) if len(table) > 1 else 0.1
    before = table[(table["t_s"] >= fault.at - BEFORE_SECONDS) &
                   (table["t_s"] + step <= fault.at)]["rate_per_s"]
    if before.empty or before.median() <= 0:
        return None
    level = RECOVERED_SHARE * before.median()
    after = table[(table["t_s"] >= fault.end) & (table["rate_per_s"] >= level)]
    if after.empty:
        return None
    return round(float(after["t_s"].iloc[0]) + step - fault.at, 3)


def fault_summary(happened: Sequence[Happened], table: pd.DataFrame, frame: pd.DataFrame,
                  t0_ms: float) -> list[dict[str, Any]]:
    """Each fault as carried out (`at_s` on the run's clock, from `t0_ms`), with how long
    throughput took to come back and what it cost the requests sent during it and until
    recovery: timeouts, retried requests, INTERNAL replies."""
    out = []
    for done in happened:
        fault = done.fault
        at_s = round((done.at_ms - t0_ms) / 1000, 3)
        moved = Fault(fault.kind, at_s, fault.duration)
        recovered = recovery(table, moved)
        until_ms = (moved.end + (recovered or 0.0)) * 1000
        window = frame[(frame["send_ms"] >= at_s * 1000 - 1000) &
                       (frame["send_ms"] <= until_ms)]
        out.append({**asdict(fault), "fault": str(fault), "pid": done.pid, "at_s": at_s,
                    "error": done.error, "recovered_after_s": recovered,
                    "timeouts": int(window["timeout"].sum()) if "timeout" in window else 0,
                    "retried": int((window["attempts"] > 1).sum())
                    if "attempts" in window else 0,
                    "internal": int((window["code"] == "INTERNAL").sum())})
    return out
