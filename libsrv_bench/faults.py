"""A fault schedule: what to do to the server's processes and to the network, and when, during a
run; and what each fault cost, read off the run's timeline.

``--fault KIND@START[+DURATION][:ARG]`` (repeatable; seconds from the start of the load):

- ``kill-worker@3``: SIGKILL one worker (the broker starts a replacement);
- ``stop-worker@5+1``: SIGSTOP one worker for 1 s, then SIGCONT (a stuck worker: the broker
  kills it once it has answered nothing for ``--worker-timeout``);
- ``kill-feed@4``: SIGKILL the live feed's process (the server starts a new one on its port;
  subscribers see the gap in the change numbers and take a snapshot);
- ``kill-server@6``: SIGKILL the whole server (broker, workers, feed), then start it again on
  the same port and catalog, as a supervisor would: acknowledged writes must survive;
- ``stop-server@6+1``: SIGSTOP the whole server for 1 s, then SIGCONT (a paused machine);
- the network, through the fault-injecting proxy (`libsrv_bench.proxy`) the bench then puts
  between its clients and the target, local or ``--endpoint``: ``partition@8+2``,
  ``delay@11+2:20ms`` (``20ms~5ms`` with jitter), ``loss@14+2:5%``, ``duplicate@3+2:10%``,
  ``reorder@6+2:20%``; an ARG ending ``,requests`` or ``,replies`` acts on one direction
  (`libsrv_bench.netfaults` says what each does).

Faults may overlap. Process faults act on a server the bench starts (its workers are listed by
its `stats`). The parsing and the recovery figures are plain functions; `FaultRunner` is the
thread that carries a schedule out.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd
import psutil

from libsrv_bench.netfaults import (
    NETWORK_KINDS,
    LinkFaults,
    NetFault,
    NetFaultError,
    combine,
    parse_arg,
)

WORKER_KINDS = ("kill-worker", "stop-worker")
SERVER_KINDS = ("kill-server", "stop-server")  # the whole server: its process group
PROCESS_KINDS = (*WORKER_KINDS, "kill-feed", *SERVER_KINDS)
KINDS = PROCESS_KINDS + NETWORK_KINDS
# how the report names each kind of fault, in a sentence
# each kind of fault in words, per language: (English, Spanish)
FAULT_WORDS = {"kill-worker": ("a killed worker", "un trabajador matado"),
               "stop-worker": ("a stopped worker", "un trabajador detenido"),
               "kill-feed": ("a killed feed process", "el proceso del feed matado"),
               "kill-server": ("the whole server killed and restarted",
                               "el servidor entero matado y arrancado de nuevo"),
               "stop-server": ("the whole server paused", "el servidor entero pausado"),
               "partition": ("a network partition", "una partición de red"),
               "delay": ("a network delay", "un retraso de red"),
               "loss": ("message loss", "pérdida de mensajes"),
               "duplicate": ("duplicated requests", "peticiones duplicadas"),
               "reorder": ("reordered messages", "mensajes reordenados")}
NEEDS_DURATION = frozenset({"stop-worker", "stop-server", *NETWORK_KINDS})
RECOVERED_SHARE = 0.9  # throughput is back when an interval reaches this share of before
BEFORE_SECONDS = 1.0  # "before": the median rate over this long before the fault
_PATTERN = re.compile(r"^(?P<kind>[a-z-]+)@(?P<at>\d+(\.\d+)?)(\+(?P<for>\d+(\.\d+)?))?"
                      r"(:(?P<arg>.*))?$")


class FaultError(ValueError):
    """A fault that cannot be read or carried out; the message says which and why."""


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # seconds from the start of the load
    duration: float = 0.0
    arg: str = ""  # a network fault's value (20ms, 5%, ...)

    @property
    def end(self) -> float:
        return self.at + self.duration

    @property
    def network(self) -> bool:
        return self.kind in NETWORK_KINDS

    def net(self) -> NetFault:
        """What a network fault does (`netfaults.parse_arg`)."""
        return parse_arg(self.kind, self.arg)

    def __str__(self) -> str:
        return f"{self.kind}@{self.at:g}" + (f"+{self.duration:g}" if self.duration else "") \
            + (f":{self.arg}" if self.arg else "")


def parse_fault(text: str) -> Fault:
    """``KIND@START[+DURATION][:ARG]`` as a Fault; FaultError saying what is wrong otherwise."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise FaultError(f"cannot read the fault {text!r}: write KIND@START[+DURATION][:ARG] "
                         f"in seconds, e.g. kill-worker@3, stop-worker@5+1 or "
                         f"delay@11+2:20ms")
    kind = match["kind"]
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r} in {text!r}; the faults are "
                         f"{', '.join(KINDS)}")
    duration = float(match["for"] or 0)
    if kind in NEEDS_DURATION and duration <= 0:
        raise FaultError(f"{kind} needs a duration: {kind}@{match['at']}+SECONDS")
    if kind not in NEEDS_DURATION and duration:
        raise FaultError(f"{kind} happens at once; drop the +{match['for']}")
    arg = match["arg"] or ""
    fault = Fault(kind, float(match["at"]), duration, arg)
    if fault.network:
        try:
            fault.net()
        except NetFaultError as error:
            raise FaultError(f"{text!r}: {error}") from None
    elif match["arg"] is not None:
        raise FaultError(f"{kind} takes no :ARG; drop the :{arg}")
    return fault


def parse_schedule(texts: Sequence[str]) -> list[Fault]:
    return sorted((parse_fault(t) for t in texts), key=lambda f: f.at)


@dataclass
class Happened:
    """A fault as carried out: the worker it hit and when, on the load's clock (ms)."""

    fault: Fault
    pid: int | None
    at_ms: float
    error: str = ""
    restart_s: float | None = None  # kill-server: how long the new server took to serve


class FaultRunner:
    """Carries a schedule out on a thread, from the `start` given to `begin` (time.monotonic
    seconds; the thread waits for it). `workers()` lists the server's worker pids at that
    moment, `feed()` its feed's pid (or None), `network(links)` sets what the fault proxy
    does in each direction, `server()` is the server's pid (its process group's), `restart()`
    kills it and starts it again; `happened` records each fault as it starts."""

    def __init__(self, schedule: Sequence[Fault], workers: Callable[[], list[int]],
                 feed: Callable[[], int | None] = lambda: None,
                 network: Callable[[dict[str, LinkFaults]], None] | None = None,
                 server: Callable[[], int | None] = lambda: None,
                 restart: Callable[[], object] | None = None) -> None:
        self.schedule = list(schedule)
        self.happened: list[Happened] = []
        self._workers = workers
        self._feed = feed
        self._network = network
        self._server = server
        self._restart = restart
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

    def _events(self) -> list[tuple[float, int, int]]:
        """(seconds, 1 for a start or 0 for an end, fault number), in the order they happen
        (an end before a start at the same instant)."""
        events = []
        for number, fault in enumerate(self.schedule):
            events.append((fault.at, 1, number))
            if fault.duration:
                events.append((fault.end, 0, number))
        return sorted(events)

    def _run(self) -> None:
        while not self._begun.wait(0.05):
            if self._stop.is_set():
                return
        stopped: dict[int, int] = {}  # fault number -> the pid it stopped
        active: dict[int, NetFault] = {}
        try:
            for at, starts, number in self._events():
                if self._stop.wait(max(0.0, self._start + at - time.monotonic())):
                    return
                fault = self.schedule[number]
                try:
                    if starts:
                        self._begin(number, fault, stopped, active)
                    else:
                        self._end(number, fault, stopped, active)
                except (FaultError, OSError, RuntimeError) as error:
                    if starts:
                        self.happened.append(Happened(fault, None, time.monotonic() * 1000,
                                                      str(error)))
        finally:  # cut short at the end: nothing is left stopped or partitioned
            for number, pid in stopped.items():
                self._resume(self.schedule[number], pid)
            if active and self._network is not None:
                with contextlib.suppress(RuntimeError):
                    self._network(combine([]))

    def _begin(self, number: int, fault: Fault, stopped: dict[int, int],
               active: dict[int, NetFault]) -> None:
        pid: int | None = None
        at_ms = time.monotonic() * 1000  # a restart takes a while: the fault is its start
        if fault.network:
            if self._network is None:
                raise FaultError("no fault proxy stands between the clients and the server")
            active[number] = fault.net()
            self._network(combine(active.values()))
        elif fault.kind in SERVER_KINDS:
            pid = self._server()
            if pid is None:
                raise FaultError("bench did not start this server: it cannot stop or restart it")
            if fault.kind == "stop-server":
                os.killpg(pid, signal.SIGSTOP)
                stopped[number] = pid
            elif self._restart is None:
                raise FaultError("bench cannot restart this server")
            else:
                self._restart()
                self.happened.append(Happened(fault, pid, at_ms, restart_s=round(
                    time.monotonic() - at_ms / 1000, 3)))
                return
        elif fault.kind == "kill-feed":
            pid = self._feed()
            if pid is None:
                raise FaultError("the server has no live feed process to kill")
            os.kill(pid, signal.SIGKILL)
        else:
            # a worker killed a moment ago may still be listed until the broker notices
            pids = [pid for pid in self._workers() if psutil.pid_exists(pid)]
            if not pids:
                raise FaultError("the server lists no live worker to act on")
            pid = pids[number % len(pids)]
            os.kill(pid, signal.SIGKILL if fault.kind == "kill-worker" else signal.SIGSTOP)
            if fault.kind == "stop-worker":
                stopped[number] = pid
        self.happened.append(Happened(fault, pid, at_ms))

    @staticmethod
    def _resume(fault: Fault, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # a worker killed as stuck meanwhile
            if fault.kind == "stop-server":
                os.killpg(pid, signal.SIGCONT)
            else:
                os.kill(pid, signal.SIGCONT)

    def _end(self, number: int, fault: Fault, stopped: dict[int, int],
             active: dict[int, NetFault]) -> None:
        if number in stopped:
            self._resume(fault, stopped.pop(number))
        if active.pop(number, None) is not None and self._network is not None:
            self._network(combine(active.values()))


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
        moved = replace(fault, at=at_s)
        recovered = recovery(table, moved)
        until_ms = (moved.end + (recovered or 0.0)) * 1000
        window = frame[(frame["send_ms"] >= at_s * 1000 - 1000) &
                       (frame["send_ms"] <= until_ms)]
        out.append({**asdict(fault), "fault": str(fault), "pid": done.pid, "at_s": at_s,
                    "error": done.error, "restart_s": done.restart_s,
                    "recovered_after_s": recovered,
                    "timeouts": int(window["timeout"].sum()) if "timeout" in window else 0,
                    "retried": int((window["attempts"] > 1).sum())
                    if "attempts" in window else 0,
                    "internal": int((window["code"] == "INTERNAL").sum())})
    return out
