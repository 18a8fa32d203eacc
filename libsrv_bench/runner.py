"""One experiment end to end: catalog, server, load, final state, verdict, run folder.

`run_experiment` is the Python API the notebooks call; ``python -m libsrv_bench run`` is its command
line. A server it starts is always stopped, also on Ctrl-C or error.
"""

from __future__ import annotations

import itertools
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from libsrv.catalog import LENT, Catalog
from libsrv.client import BadReply, ServerUnreachable, wait_until_serving
from libsrv.generate import write_catalog
from libsrv.process import ServerProcess
from libsrv.protocol import Action
from libsrv.transports.callers import caller_for
from libsrv_bench.commanded import UNKNOWN_ISBN, CommandServer
from libsrv_bench.dialects import (
    DEFAULT_DIALECT,
    Dialect,
    DialectError,
    check_actions,
    dialect_named,
)
from libsrv_bench.engines import WAIT_MARGIN_SECONDS, EngineRun, cluster_client, run_on_engines
from libsrv_bench.faults import (
    SERVER_KINDS,
    WORKER_KINDS,
    FaultRunner,
    fault_summary,
    parse_schedule,
)
from libsrv_bench.foreign import ask_states, books_in_file, file_state
from libsrv_bench.history import Record
from libsrv_bench.judgement import not_clean_facts, reasons_in
from libsrv_bench.load import LoadResult, LoadSpec, run_load
from libsrv_bench.observe import FeedObserver, check_feed
from libsrv_bench.procstat import CostMeter, cpu_seconds, rss_mb
from libsrv_bench.proxy import FaultProxy, ProxyError
from libsrv_bench.results import machine_info, new_run_folder, records_frame, summarize, write_run
from libsrv_bench.settings import RunConfig, run_command, same_load, transport_of
from libsrv_bench.timeline import run_title, timeline_frame, write_timeline
from libsrv_bench.verifier import (
    FILE_FIELDS,
    ops_from_records,
    unreadable_file,
    verify,
    wrong_books,
)
from libsrv_bench.workloads import (
    KeySpace,
    Workload,
    has_writes,
    needs_titles,
    workload_actions,
    workload_named,
)

CACHE = Path(tempfile.gettempdir()) / "libsrv-bench-catalogs"
TITLE_SAMPLE = 1000


@dataclass
class RunOutcome:
    folder: Path
    summary: dict[str, Any]
    samples: pd.DataFrame
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def violations(self) -> int:
        """The verifier's findings plus, with --observe, the feed's."""
        return int(self.summary["violations"]) + int(self.summary.get("feed_violations", 0))

    def violations_frame(self) -> pd.DataFrame:
        """The verifier's findings, one row per violation (book, kind, detail, operations)."""
        rows = [{"book": d["book"], "kind": d["kind"], "detail": d["detail"],
                 "operations": len(d.get("ops", []))}
                for d in self.verdict.get("details", [])]
        return pd.DataFrame(rows, columns=["book", "kind", "detail", "operations"])


def catalog_copy(books: int, seed: int, folder: Path) -> Path:
    """A fresh copy of a generated catalog (generated once per size and seed, then cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"catalog-{books}-s{seed}.json"
    if not cached.exists():
        partial = cached.with_suffix(".partial")
        write_catalog(partial, books, seed=seed)
        partial.replace(cached)
    target = folder / "catalog.json"
    shutil.copy(cached, target)
    return target


def server_command(config: RunConfig, db: Path) -> ServerProcess:
    if config.echo:
        return ServerProcess(db, command=[sys.executable, "-m", "libsrv_bench", "echo", "--workers",
                                          str(config.workers), "--via", config.echo,
                                          "--transport", config.transport])
    options = {"locking": not config.unsafe_no_lock, "fsync": config.fsync,
               "publish": not config.no_pub, "transport": config.transport}
    # every process parses the whole catalog at start-up (see docs/bench.md for how long)
    return ServerProcess(db, workers=config.workers, storage=config.storage, options=options,
                         ready_timeout=60 + config.books / 5_000)


@contextmanager
def target(config: RunConfig, scratch: Path) -> Iterator[tuple[str, Path | None,
                                                               ServerProcess | None]]:
    """The endpoint to load, and the catalog file and process when the server is ours
    (stopped on exit, whatever happens)."""
    if config.endpoint:
        if config.dialect == DEFAULT_DIALECT and transport_of(config.endpoint) == "zmq":
            # the kit's server says when all its workers serve
            _wait_until_serving(config.endpoint)
        yield config.endpoint, None, None
        return
    db = catalog_copy(config.books, config.seed, scratch)
    server = server_command(config, db)
    try:
        server.start()
        yield server.endpoint, db, server
    finally:
        server.stop()


@contextmanager
def commanded_server(config: RunConfig, dialect: Dialect) -> Iterator[CommandServer | None]:
    """The target's own server started from `config.server_cmd` (stopped on exit, whatever
    happens), else None."""
    if not config.server_cmd or not config.endpoint:
        yield None
        return
    probe = UNKNOWN_ISBN
    if config.catalog:
        listed = books_in_file(config.catalog)
        probe = listed[0]["ISBN"] if listed else probe
    theirs = CommandServer(shlex.split(config.server_cmd), config.endpoint, dialect,
                           probe=probe)
    try:
        theirs.start()
    except RuntimeError as error:
        raise RunError(f"--server-cmd {config.server_cmd!r}: the server {error}") from None
    try:
        yield theirs
    finally:
        theirs.stop()


@contextmanager
def class_gateway(endpoint: str, wanted: bool) -> Iterator[ServerProcess | None]:
    """The class's Flask gateway in front of `endpoint` when `wanted` (stopped on exit), else
    None; its `endpoint` is where the clients go."""
    if not wanted:
        yield None
        return
    gateway = ServerProcess("", command=[sys.executable, "-m", "libsrv.transports.gateway",
                                         "--to", endpoint])
    try:
        yield gateway.start()
    finally:
        gateway.stop()


@contextmanager
def fault_proxy(endpoint: str, wanted: bool, seed: int) -> Iterator[FaultProxy | None]:
    """The fault-injecting proxy in front of `endpoint` when `wanted` (stopped on exit; its
    counts are then in `stats`), else None."""
    if not wanted:
        yield None
        return
    try:
        with FaultProxy(endpoint, seed) as proxy:
            yield proxy
    except ProxyError as error:
        raise RunError(str(error)) from None


def _wait_until_serving(endpoint: str) -> None:
    """Wait until every worker of a kit server serves (a load started while some still load
    the catalog measures the loading). A server that does not say, or does not answer, is
    left to the run to judge."""
    said: set[int] = set()

    def say(serving: int, workers: int) -> None:
        if serving not in said:
            said.add(serving)
            print(f"waiting for the server: {serving} of {workers} workers serve (the others "
                  "are loading the catalog)", file=sys.stderr)

    try:
        wait_until_serving(endpoint, on_wait=say)
    except (BadReply, ServerUnreachable):
        pass
    except TimeoutError as error:
        print(f"warning: {error}; measuring anyway", file=sys.stderr)


class RunError(RuntimeError):
    """The run could not go on; the message says why."""


def server_stats(endpoint: str) -> dict[str, Any]:
    """Our server's `stats` (RunError when its reply carries none)."""
    with caller_for(endpoint) as lib:
        reply = lib.call(Action.STATS)
    stats = reply.get("stats") if reply.get("success") else None
    if not isinstance(stats, dict):
        raise RunError(f"the server's stats reply carries no stats: {reply.get('code')} "
                       f"{reply.get('message')}")
    return stats


def server_pids(endpoint: str, server: ServerProcess) -> list[int]:
    """Our server's process and its workers' (the workers as the server's stats list them)."""
    workers = [pid for pid in server_stats(endpoint).get("worker_pids", [])
               if isinstance(pid, int)]
    return [server.pid, *(pid for pid in workers if pid and pid != server.pid)]


def feed_pid(server: ServerProcess) -> int | None:
    """The pid of our server's live feed: its child process listening on the feed's port."""
    import psutil

    if not server.feed_endpoint:
        return None
    port = int(server.feed_endpoint.rsplit(":", 1)[1])
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in child.net_connections(kind="tcp")):
                return child.pid
        except psutil.Error:
            continue
    return None


@contextmanager
def worker_killer(endpoint: str, server: ServerProcess | None,
                  every: float | None) -> Iterator[list[float]]:
    """While the block runs, SIGKILL one worker of our server every `every` seconds; yields the
    list of kill times (monotonic seconds), filled as it goes."""
    kills: list[float] = []
    if not every:
        yield kills
        return
    if server is None:
        raise ValueError("--kill-worker-every needs a server started by bench (no --endpoint)")
    stop = threading.Event()

    def killer() -> None:
        rng = random.Random(0)
        while not stop.wait(every):
            try:
                pids = server_pids(endpoint, server)[1:]
            except (RunError, ServerUnreachable):
                continue  # the server is busy or between workers; try at the next tick
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it died already; the stats were older than that
                kills.append(time.monotonic())

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        yield kills
    finally:
        stop.set()
        thread.join(30)


def _fetch_books(endpoint: str, limit: int) -> list[dict[str, Any]]:
    books: list[dict[str, Any]] = []
    with caller_for(endpoint, timeout=10) as lib:
        while len(books) < limit:
            page = lib.call(Action.CATALOG, offset=len(books),
                            limit=min(1000, limit - len(books)))
            if not page.get("success"):
                raise RunError(f"the server refused to list its catalog: {page.get('code')} "
                               f"{page.get('message')}")
            if not page.get("books"):
                break
            books += page["books"]
    return books


def _progress_bar(config: RunConfig) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from tqdm.auto import tqdm

    by_time = config.requests is None  # a run of so many seconds: the bar counts seconds
    total = round((config.duration or 0) + (config.warmup or 0), 1) if by_time else \
        config.requests
    bar = tqdm(total=total, unit="s" if by_time else "req", desc=config.name(), leave=False,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s, {remaining} left{postfix}"
               if by_time else None,
               disable=not sys.stderr.isatty() and "ipykernel" not in sys.modules)
    started = time.monotonic()

    def update(done: int, errors: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        bar.n = min(elapsed, total) if by_time else done
        bar.set_postfix({"requests": f"{done:,}", "rate": f"{done / elapsed:,.0f}/s",
                         "errors": errors}, refresh=False)
        bar.refresh()

    return update, bar.close


def _load_spec(config: RunConfig, endpoint: str, workload: Workload,
               keys: KeySpace) -> LoadSpec:
    if config.echo:  # the echo answers faster than one load process can ask
        config = same_load(config)
    ids = not config.no_ids and dialect_named(config.dialect).ids
    return LoadSpec(endpoint, config.clients, workload, keys, duration=config.duration,
                    requests=config.requests, rate=config.rate, think=config.think,
                    warmup=config.warmup, timeout=config.timeout, retries=config.retries,
                    seed=config.seed, processes=config.processes, ids=ids,
                    dialect=config.dialect)


def _final_state(endpoint: str, isbns: list[str], dialect: Dialect) -> dict[str, Any]:
    """What the server serves now for each book (those it does not show are left out).

    From a server that lists its catalog in the kit's protocol, many books are read a page at
    a time (the load has stopped, so pages agree); else, and for a few, one query each in the
    target's dialect."""
    if dialect.name != DEFAULT_DIALECT or len(isbns) <= 100:
        return ask_states(endpoint, dialect, isbns)
    try:
        wanted = set(isbns)
        return {b["ISBN"]: b for b in _fetch_books(endpoint, 10**9) if b.get("ISBN") in wanted}
    except (RunError, BadReply, ServerUnreachable):
        return ask_states(endpoint, dialect, isbns)


def run_experiment(config: RunConfig, out: Path | str | None = None, *,
                   progress: bool = True, timeline_png: bool = False) -> RunOutcome:
    """Run one experiment and write its folder (under `out`, default a temporary folder),
    with its ``timeline.csv`` (and ``timeline.png`` with `timeline_png`: half a second of
    drawing, which ``bench run`` spends and rounds of many runs do not).

    The folder is named by the run's settings; a folder already there is never replaced (the
    new run gets a numbered name beside it)."""
    workload = workload_named(config.workload, config.hot)
    schedule = parse_schedule(config.faults)
    on_processes = [f for f in schedule if not f.network]
    if config.server_cmd:  # their server: bench knows its process group, not its insides
        inside = [f for f in on_processes if f.kind not in SERVER_KINDS]
        if inside:
            raise RunError(f"--fault {inside[0]} acts on the kit's server's own processes: a "
                           f"server started by --server-cmd can have {' and '.join(SERVER_KINDS)}")
    elif on_processes and (config.endpoint or config.engines or config.cluster or config.echo):
        raise RunError(f"--fault {on_processes[0]} acts on a server bench starts: not with "
                       "--endpoint (without --server-cmd), --engines, --cluster or --echo")
    on_workers = [f for f in schedule if f.kind in WORKER_KINDS]
    if on_workers and config.workers == 0:
        raise RunError(f"--fault {on_workers[0]} acts on workers: not with --workers 0")
    via_proxy = config.proxy or any(f.network for f in schedule)
    if via_proxy and (config.engines or config.cluster):
        raise RunError("the fault proxy runs on this machine: not with --engines or --cluster")
    dialect = _dialect(config, workload)
    out_root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="bench-"))
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    ops: list = []
    served: dict[str, Any] = {}
    proxy_cost: float | None = None
    gateway_cost: float | None = None
    their_file = Path(config.catalog) if config.catalog else None
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        with target(config, Path(scratch)) as (endpoint, db, server), \
                commanded_server(config, dialect) as theirs, \
                fault_proxy(endpoint, via_proxy, config.seed) as proxy, \
                class_gateway(endpoint, config.gateway) as gateway:
            if their_file is not None and db is None:
                listed = books_in_file(their_file)
            elif (needs_titles(workload) or db is None) and not config.echo:
                listed = _fetch_books(endpoint, TITLE_SAMPLE if db is not None else 100_000)
            else:
                listed = []
            books = tuple((b["ISBN"], b["titulo"]) for b in listed)
            keys = KeySpace(config.books, True, books) if db is not None else \
                KeySpace(books=books)
            initial = {b["ISBN"]: b["estado"] == LENT for b in listed}
            front = gateway.endpoint if gateway else proxy.endpoint if proxy else endpoint
            spec = _load_spec(config, front, workload, keys)
            measured = server if server is not None and not config.echo else None
            memory = {"start_mb": rss_mb(server_pids(endpoint, measured))} if measured else {}
            # which broker data path served (compiled or Python): the machine decides
            data_path = server_stats(endpoint).get("data_path") if measured else None
            update, close = _progress_bar(config) if progress else (None, lambda: None)
            observer = FeedObserver(endpoint).start() if config.observe else None
            meter = CostMeter(server.pid if server is not None else
                              theirs.pid if theirs is not None else None).start()
            proxy_cpu = cpu_seconds([proxy.pid]) if proxy else {}
            gateway_cpu = cpu_seconds([gateway.pid]) if gateway else {}
            injector = FaultRunner(
                schedule, lambda: server_pids(endpoint, server)[1:] if server else [],
                feed=lambda: feed_pid(server) if server else None,
                network=proxy.set_links if proxy else None,
                server=lambda: server.pid if server else theirs.pid if theirs else None,
                restart=server.restart if server else theirs.restart if theirs else None)
            try:
                with worker_killer(endpoint, server, config.kill_worker_every) as kills, \
                        injector:
                    # perf_counter and monotonic: one clock (CLOCK_MONOTONIC)
                    result, history, engine_runs = _drive(
                        config, spec, update, progress,
                        on_start=lambda t0: injector.begin(t0 / 1e9))
            finally:
                close()
                if observer is not None:
                    observer.finish()
            cost = meter.stop(len(result.records))
            if any(h.fault.kind == "kill-server" and not h.error for h in injector.happened):
                # the meter followed the processes that were killed, not their successors
                cost.update(server_cpu_us_per_request=None, server_restarted=True)
            if proxy is not None and result.records:
                spent = cpu_seconds([proxy.pid]).get(proxy.pid, 0.0) - \
                    proxy_cpu.get(proxy.pid, 0.0)
                proxy_cost = round(spent / len(result.records) * 1e6, 1)
            if gateway is not None and result.records:
                spent = cpu_seconds([gateway.pid]).get(gateway.pid, 0.0) - \
                    gateway_cpu.get(gateway.pid, 0.0)
                gateway_cost = round(spent / len(result.records) * 1e6, 1)
            if measured is not None:
                memory["end_mb"] = rss_mb(server_pids(endpoint, measured))
            frame = records_frame(result)
            if not config.echo:
                ops = ops_from_records(history)
                touched = sorted({op.isbn for op in ops if op.isbn is not None})
                served = _final_state(endpoint, touched, dialect)
        # our server has stopped here, so its catalog file is final
        on_disk = feed_file = file_error = None
        compared: tuple[str, ...] | None = None
        if db is not None and not config.echo:
            catalog = Catalog.from_bytes(db.read_bytes())
            on_disk = {isbn: catalog.get(isbn) for isbn in served}
            if observer is not None:
                feed_file = {c.isbn: catalog.get(c.isbn) for c in observer.changes}
        elif their_file is not None and dialect.name != DEFAULT_DIALECT and not config.echo:
            # their server still runs: its file must be current now (the class's design
            # rewrites it on every change); the kit's journal makes it current only at a stop
            on_disk, file_error = file_state(their_file)
            compared = FILE_FIELDS  # their query may format a record otherwise than the file
    verdict: dict[str, Any] = {"ok": True, "violations": 0, "details": [], "skipped": True}
    missing = [run for run in engine_runs or [] if run.status != "ok"]
    skipped = ""
    if missing:
        skipped = (f"engine(s) {', '.join(str(r.engine) for r in missing)} missing: a history "
                   "with a part missing cannot be judged (their writes would look like lost "
                   "updates), so the verifier did not run")
        verdict["reason"] = skipped
    elif not config.echo:
        judged = verify(ops, initial, served, on_disk, origin=result.t0, fields=compared)
        judged.violations.extend(wrong_books(history, result.t0))
        if file_error is not None:
            judged.violations.append(unreadable_file(file_error))
        verdict = judged.as_dict()
    feed: dict[str, Any] = {}
    if observer is not None:
        feed = check_feed(observer.changes, observer.start_seq, observer.final_seq,
                          history, feed_file,
                          ids=not config.no_ids)
    folder = new_run_folder(out_root, config.name())
    summary = summarize(result, frame, offered=config.rate)
    if feed:
        summary.update(feed=feed, feed_violations=feed["violations"])
    if engine_runs is not None:
        summary.update(engines=len(engine_runs),
                       engine_runs=[run.as_dict() for run in engine_runs])
    if skipped:
        summary["verdict_skipped"] = skipped
    summary.update(violations=verdict["violations"], verdict_ok=verdict["ok"],
                   undecided_books=len(verdict.get("undecided", [])),
                   server_memory=memory, cost=cost, workers_killed=len(kills),
                   retried=int((frame["attempts"] > 1).sum()),
                   name=folder.name, config=asdict(config), machine=machine_info(),
                   started_at=started_at, endpoint=endpoint, run_id=spec.run_id,
                   command=run_command(config))
    if not config.echo:
        facts = not_clean_facts(summary, verdict, config.max_errors,
                                writes=has_writes(workload))
        summary.update(clean=not facts, not_clean_facts=facts)
        summary["not_clean"] = reasons_in(summary, "en")
    summary.update(target=target_name(asdict(config)), dialect=dialect.name)
    if data_path is not None:
        summary["data_path"] = data_path
    events = [(round(at * 1000 - result.t0 / 1e6) / 1000, "worker killed", 0.0)
              for at in kills]
    table = timeline_frame(frame)
    if proxy is not None:
        summary["proxy"] = {**proxy.stats, "cpu_us_per_request": proxy_cost}
    if config.gateway:
        summary["gateway"] = {"cpu_us_per_request": gateway_cost}
    if schedule:
        summary["faults"] = fault_summary(injector.happened, table, frame, result.t0 / 1e6)
        events += [(f["at_s"], f["fault"], f["duration"]) for f in summary["faults"]]
    write_run(folder, summary, frame, result, verdict)
    write_timeline(folder, frame, events, title=run_title(config), figure=timeline_png)
    return RunOutcome(folder, summary, frame, verdict)


def _dialect(config: RunConfig, workload: Workload) -> Dialect:
    """The target's dialect, once it is sure the run can use it (else RunError)."""
    try:
        dialect = dialect_named(config.dialect)
        check_actions(dialect, workload_actions(workload))
    except DialectError as error:
        raise RunError(str(error)) from None
    if config.endpoint and not dialect.lists_catalog and not config.catalog:
        raise RunError(f"the {dialect.name} protocol cannot list the server's books: give "
                       "its catalog file with --catalog FILE")
    return dialect


def _drive(config: RunConfig, spec: LoadSpec, update: Callable[[int, int], None] | None,
           progress: bool, on_start: Callable[[int], None] | None = None
           ) -> tuple[LoadResult, list[Record], list[EngineRun] | None]:
    """Run the load from here or from engines: (the result, the history the verifier judges,
    each engine's part). From engines, the history's intervals are widened by each engine's
    clock uncertainty."""
    if not (config.engines or config.cluster):
        result = run_load(spec, update, on_start=on_start)
        return result, result.records, None
    wait = (config.duration or 0) + config.warmup + config.timeout * (config.retries + 1) \
        + (120 if config.requests else 0) + WAIT_MARGIN_SECONDS
    with cluster_client(config.engines, config.cluster) as (client, ids):
        result, runs, widened = run_on_engines(
            spec, client, ids, wait_seconds=wait,
            log=(lambda line: print(line, flush=True)) if progress else (lambda _: None))
    return result, widened, runs


def start_experiment(config: RunConfig, out: Path | str | None = None) -> Future[RunOutcome]:
    """`run_experiment` on a background thread (no progress bar): a notebook's kernel stays
    free to draw widgets while the run goes on; ``.result()`` waits for the outcome."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-run")
    future = pool.submit(run_experiment, config, out, progress=False)
    pool.shutdown(wait=False)
    return future


def sweep(base: RunConfig, out: Path | str, *, progress: bool = True,
          **grid: list[Any]) -> pd.DataFrame:
    """Run every combination of `grid` (e.g. clients=[1, 16], workers=[1, 2]) over `base`;
    one tidy row per run."""
    names = list(grid)
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        config = replace(base, **dict(zip(names, values, strict=True)))
        outcome = run_experiment(config, out, progress=progress)
        rows.append(summary_row(outcome.summary))
    return pd.DataFrame(rows)


def target_name(config: dict[str, Any]) -> str:
    """What a run loaded: another server by its name (or endpoint), the kit's by its storage
    engine, or which echo ("echo" is the transport's limit, "broker echo" the kit's broker in
    front of echo workers)."""
    if config.get("endpoint"):
        return str(config.get("target") or config["endpoint"])
    echo = config.get("echo")
    if echo in (True, "proxy"):
        return "echo"
    if echo == "broker":
        return "broker echo"
    if echo == "raw":
        return "raw TCP echo"
    return str(config["storage"])


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """One tidy row: the settings that vary, the figures, and the cost per request."""
    config = summary["config"]
    cost = summary.get("cost", {})
    ours = not config.get("endpoint")  # else the server's own settings are not the bench's
    return {"name": summary["name"], "workload": config["workload"],
            "target": target_name(config), "dialect": config.get("dialect", "kit"),
            "unsafe": config["unsafe_no_lock"] if ours else None,
            "workers": config["workers"] if ours else None,
            "data_path": summary.get("data_path"),  # the broker's: compiled or python
            "clients": config["clients"], "books": config["books"],
            "throughput": summary["throughput"], "p50_ms": summary["p50_ms"],
            "p90_ms": summary["p90_ms"], "p99_ms": summary["p99_ms"],
            "p999_ms": summary["p999_ms"], "max_ms": summary["max_ms"],
            "timeouts": summary["timeouts"], "errors": summary["errors"],
            "violations": summary["violations"], "requests": summary["requests"],
            "clean": summary.get("clean"),
            "server_cpu_us": cost.get("server_cpu_us_per_request"),
            "load_cpu_us": summary.get("load", {}).get("cpu_us_per_request"),
            "machine_busy": cost.get("machine_busy")}
