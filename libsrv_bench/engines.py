"""Load from many machines, as one run: the load processes run on ipyparallel engines.

ipyparallel is Jupyter's own parallel engine, built on ZeroMQ: a controller (whose task
scheduler is itself a load-balancing broker) and engines, local (`--engines N` starts a cluster
here, nothing to configure) or on other machines (`--cluster FILE`, the controller's
``ipcontroller-client.json``; engines join with ``ipengine --file ipcontroller-engine.json``).

One history across machines needs one clock. Before the run, each engine's clock is compared
with the coordinator's in NTP-style exchanges (coordinator time before, engine time, coordinator
time after; the exchange with the smallest round trip is kept): the offset is the engine's time
minus the midpoint, the uncertainty half the round trip. Every time an engine recorded is mapped
onto the coordinator's clock, and for the verifier each operation's interval is widened by that
engine's uncertainty, so a clock misjudged within it can make the check less strict but never
report a violation that did not happen. All engines start at one agreed instant (each in its own
clock) and stop together; their histograms merge into one.

An engine that dies or loses its network before returning ends the run cleanly at the deadline:
the summary says whose results are missing, and the verifier, which cannot judge a history with
a part missing (the missing engine's writes would look like lost updates), is skipped and says
why.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from libsrv_bench.history import Record
from libsrv_bench.load import LoadResult, LoadSpec, new_histogram, run_load

OFFSET_SAMPLES = 16
START_DELAY_NS = 1_000_000_000  # engines start together this long after the offsets are known
WAIT_MARGIN_SECONDS = 10.0  # past the run's end and its timeouts, before an engine counts as lost
CLOCK_SHIFT_NS = 0  # set on an engine by tests: its clock then disagrees with everyone's


# ---------------------------------------------------------------- on the engine


def engine_clock() -> int:
    """This engine's clock (ns): CLOCK_MONOTONIC, shifted in tests."""
    return time.perf_counter_ns() + CLOCK_SHIFT_NS


def shift_clock(shift_ns: int) -> int:
    """(Tests.) Make this engine's clock disagree with everyone's by `shift_ns`."""
    global CLOCK_SHIFT_NS
    CLOCK_SHIFT_NS = shift_ns
    return CLOCK_SHIFT_NS


def engine_load(spec: LoadSpec, first_client: int, start_at: int) -> dict[str, Any]:
    """Drive clients `first_client`.. of `spec` from `start_at` (this engine's clock); every
    time in the answer is in this engine's clock."""
    shift = CLOCK_SHIFT_NS
    result = run_load(spec, t0=start_at - shift, first_client=first_client)

    def here(t: int | None) -> int | None:
        return None if t is None else t + shift

    records = [tuple(r._replace(t_intended=here(r.t_intended), t_send=here(r.t_send),
                                t_recv=here(r.t_recv))) for r in result.records]
    return {"host": socket.gethostname(), "pid": os.getpid(), "records": records,
            "corrected": result.corrected.encode(), "uncorrected": result.uncorrected.encode(),
            "processes": result.processes, "cpu_seconds": result.cpu_seconds,
            "wall_seconds": result.wall_seconds, "late_seconds": result.late_seconds,
            "loops": result.loops}


# ---------------------------------------------------------------- on the coordinator


@dataclass
class EngineRun:
    """One engine's part of a run, as the summary reports it."""

    engine: int
    host: str = ""
    offset_ns: int = 0  # engine clock minus coordinator clock
    uncertainty_ns: int = 0
    clients: int = 0
    requests: int = 0
    throughput: float = 0.0
    status: str = "ok"  # ok / missing (died, lost its network, or failed: see `reason`)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "host": self.host, "clients": self.clients,
                "requests": self.requests, "throughput": round(self.throughput, 1),
                "offset_ms": round(self.offset_ns / 1e6, 3),
                "uncertainty_ms": round(self.uncertainty_ns / 1e6, 3),
                "status": self.status, "reason": self.reason}


def estimate_offset(view: Any, samples: int = OFFSET_SAMPLES) -> tuple[int, int]:
    """(offset, uncertainty) in ns of the engine behind `view` (a DirectView of one engine):
    NTP-style, keeping the exchange with the smallest round trip."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        before = time.perf_counter_ns()
        theirs = view.apply_sync(engine_clock)
        after = time.perf_counter_ns()
        half = (after - before) // 2
        if best is None or half < best[1]:
            best = (theirs - (before + half), half)
    assert best is not None  # samples >= 1
    return best


class ClusterError(RuntimeError):
    """The cluster could not be started, reached, or has too few engines."""


@contextmanager
def cluster_client(engines: int, cluster_file: str | None) -> Iterator[tuple[Any, list[int]]]:
    """(an ipyparallel Client, the engine ids to use): a local cluster of `engines` engines,
    or the cluster of `cluster_file` (`engines` of its engines; 0: all)."""
    try:
        import ipyparallel as ipp
    except ImportError:
        raise ClusterError("ipyparallel is not installed: pip install 'libsrv[bench]'") from None
    if cluster_file is None:
        profile = Path(tempfile.mkdtemp(prefix="libsrv-ipp-"))
        cluster = ipp.Cluster(n=engines, profile_dir=str(profile),
                              cluster_id=uuid.uuid4().hex[:8], log_level=40)
        try:
            client = cluster.start_and_connect_sync()
        except Exception as error:  # ipyparallel raises many kinds; say it in one
            raise ClusterError(f"could not start a local cluster of {engines} engines: "
                               f"{error}") from error
        try:
            yield client, list(client.ids)[:engines]
        finally:
            client.close()
            with suppress(Exception):  # a controller or engine already gone is no error
                cluster.stop_cluster_sync()
            end_cluster_processes(profile)
            shutil.rmtree(profile, ignore_errors=True)
        return
    try:
        client = ipp.Client(cluster_file, timeout=30)  # positional: 9.x ignores url_file=
        client.wait_for_engines(max(1, engines), timeout=60)
    except Exception as error:
        raise ClusterError(f"could not use the cluster of {cluster_file}: {error}") from error
    try:
        ids = list(client.ids)
        if engines:
            ids = ids[:engines]
        yield client, ids
    finally:
        client.close()


def end_cluster_processes(profile: Path | str, timeout: float = 5.0) -> int:
    """Kill what a local cluster in `profile` left running (a killed controller's schedulers,
    an engine that did not stop): every process whose command line names the folder, with its
    children. How many there were."""
    import psutil  # the bench extra: with ipyparallel

    mark = str(profile)
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            if any(mark in part for part in process.cmdline()):
                for member in [process, *process.children(recursive=True)]:
                    found[member.pid] = member
    for process in found.values():
        with suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(found.values()), timeout=timeout)
    return len(found)


def run_on_engines(spec: LoadSpec, client: Any, ids: list[int], *,
                   wait_seconds: float,
                   log: Callable[[str], None] = lambda _: None
                   ) -> tuple[LoadResult, list[EngineRun], list[Record]]:
    """Run `spec` spread over the engines `ids`; (the merged result on the coordinator's
    clock, each engine's part, the records widened by each engine's clock uncertainty for the
    verifier)."""
    runs = [EngineRun(engine) for engine in ids]
    for run in runs:
        try:
            run.offset_ns, run.uncertainty_ns = estimate_offset(client[run.engine])
        except Exception as error:  # gone before the start: the others carry the run
            run.status, run.reason = "missing", f"before the start: {type(error).__name__}: " \
                f"{error}"
            continue
        log(f"engine {run.engine}: clock offset {run.offset_ns / 1e6:+.3f} ms "
            f"± {run.uncertainty_ns / 1e6:.3f} ms")
    working = [run for run in runs if run.status == "ok"]
    if not working:
        raise ClusterError("no engine answered: " + "; ".join(r.reason for r in runs))
    share, extra = divmod(spec.clients, len(working))
    start = time.perf_counter_ns() + START_DELAY_NS
    pending = {}
    first = 0
    for index, run in enumerate(working):
        run.clients = share + (1 if index < extra else 0)
        if not run.clients:
            continue
        part = replace(spec, clients=run.clients,
                       rate=spec.rate * run.clients / spec.clients if spec.rate else None,
                       requests=_share(spec.requests, index, len(working)))
        pending[run.engine] = client[run.engine].apply_async(engine_load, part, first,
                                                             start + run.offset_ns)
        first += run.clients
    deadline = time.monotonic() + START_DELAY_NS / 1e9 + wait_seconds
    answers: dict[int, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for engine, result in list(pending.items()):
            try:
                if not result.ready():
                    continue
                answers[engine] = result.get(timeout=0)
            except Exception as error:  # the engine died, or its task failed
                broken = next(r for r in runs if r.engine == engine)
                broken.status, broken.reason = "missing", f"{type(error).__name__}: {error}"
            del pending[engine]
        time.sleep(0.05)  # polling the engines' results with a deadline
    # Engines that did not answer are left as they are: a started task cannot be aborted,
    # and ipyparallel's abort waits for an answer that an unreachable engine never sends.
    for engine in pending:
        lost = next(r for r in runs if r.engine == engine)
        lost.status = "missing"
        lost.reason = "no answer by the deadline (the engine died or lost its network)"
    return _merge(spec, start, runs, answers)


def _share(total: int | None, index: int, parts: int) -> int | None:
    if total is None:
        return None
    share, extra = divmod(total, parts)
    return share + (1 if index < extra else 0)


def _merge(spec: LoadSpec, start: int, runs: list[EngineRun],
           answers: dict[int, dict[str, Any]]) -> tuple[LoadResult, list[EngineRun],
                                                         list[Record]]:
    corrected, uncorrected = new_histogram(), new_histogram()
    records: list[Record] = []
    widened: list[Record] = []
    processes, cpu, wall = 0, [], []
    late: list[float] = []
    loops: list[str] = []
    measure_from, end = spec.window(start)
    for run in runs:
        answer = answers.get(run.engine)
        if answer is None:
            continue
        run.host = answer["host"]
        offset, widen = run.offset_ns, run.uncertainty_ns

        def ours(t: int | None, offset: int = offset) -> int | None:
            return None if t is None else t - offset

        mine = [Record(*fields)._replace(engine=run.engine, host=run.host) for fields in
                answer["records"]]
        mine = [r._replace(t_intended=ours(r.t_intended), t_send=ours(r.t_send),
                           t_recv=ours(r.t_recv)) for r in mine]
        records += mine
        widened += [r._replace(t_send=r.t_send - widen,
                               t_recv=None if r.t_recv is None else r.t_recv + widen)
                    for r in mine]
        corrected.decode_and_add(answer["corrected"])
        uncorrected.decode_and_add(answer["uncorrected"])
        processes += answer["processes"]
        cpu += answer["cpu_seconds"]
        wall += answer["wall_seconds"]
        late += answer.get("late_seconds", [])
        loops += answer.get("loops", [])
        measured = [r for r in mine if r.t_recv is not None and r.t_intended >= measure_from
                    and (end is None or r.t_intended < end)]
        run.requests = len(measured)
        if end is not None:
            seconds = (end - measure_from) / 1e9
        else:  # a count of requests: until this engine's last reply
            last = max((r.t_recv or 0 for r in mine), default=start)
            seconds = max(1e-9, (last - start) / 1e9)
        run.throughput = run.requests / seconds
    records.sort(key=lambda r: r.t_send)
    result = LoadResult(records, corrected, uncorrected, start, measure_from, end,
                        max(1, processes), cpu, wall, late, loops)
    return result, runs, widened

