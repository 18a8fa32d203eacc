"""The load generator: a few processes, each driving many clients from one poller (REQ
sockets, or HTTP or gRPC connections: `libsrv_bench.wires`).

Closed loop: a client sends its next request as soon as it has a reply (plus optional think
time). Open loop (`rate`): each client has a fixed schedule of intended send times; when the
server falls behind, a request goes out late and its latency is counted from the intended time,
so queueing cannot hide (wrk2's answer to coordinated omission). The uncorrected latency, from
the actual send, is recorded too.

Every request is recorded as a `Record`; times are `time.perf_counter_ns()`, which is
CLOCK_MONOTONIC on Linux and so comparable across the processes of one machine. Each load
process also reports the CPU time it spent, so a run can tell when the generator, not the
server, set the pace.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import queue
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray
from typing import Any

import zmq
from hdrh.histogram import HdrHistogram

from libsrv.protocol import Action
from libsrv_bench.dialects import DEFAULT_DIALECT, Outcome, dialect_named
from libsrv_bench.history import FAILURE_CODES, TIMEOUT, Record
from libsrv_bench.wires import wire_for
from libsrv_bench.workloads import KeySpace, Workload

HIST_MAX_NS = 120 * 10**9  # two minutes
HIST_DIGITS = 3
START_DELAY_NS = 300_000_000  # all processes start together, this long after they are ready
READY_SECONDS = 120.0  # spawning many load processes on a busy 2-core machine takes a while
TIMEOUT_SCAN_NS = 20_000_000  # timeouts are looked for every 20 ms
CLIENTS_PER_PROCESS = 250
# Requests are drawn and encoded this many at a time per client. Drawn one at a time between
# two replies, a draw ran with cold caches and cost 40-50 µs of a load process's CPU at 2
# clients per process (8 load processes on 2 cores): more than the lean generator's whole
# request, so bench throttled the reference it measured (docs/bench.md, "Is the load generator
# setting the pace?"). In batches the same work costs about 15 µs a request on that machine.
DRAW_BATCH = 64
# Even batched, drawing during the run took CPU from the two cores that the target needs, and
# the target, fed more slowly, cost more per request: so what a run is expected to send is drawn
# before it starts (its count; its rate times its length; a closed loop: CLOSED_LOOP_GUESS
# requests per second in all, shared by the clients), within PREDRAW_SECONDS per load process;
# the compiled loop draws the rest during the warm-up (libsrv_bench.load_compiled). What a run
# sends beyond that is drawn as it goes, a batch at a time.
CLOSED_LOOP_GUESS = 15_000
PREDRAW_SECONDS = 0.25


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_NS, HIST_DIGITS)  # in ns: 0.1% resolution from 1 µs up


@dataclass(frozen=True)
class LoadSpec:
    endpoint: str
    clients: int
    workload: Workload
    keys: KeySpace
    duration: float | None = 10.0  # seconds of measurement, after the warm-up
    requests: int | None = None  # or a total number of requests (then no warm-up is dropped)
    rate: float | None = None  # total requests per second: open loop
    think: float = 0.0  # closed loop: pause between a reply and the next request
    warmup: float = 1.0
    timeout: float = 5.0
    retries: int = 0  # Lazy Pirate: resend a timed-out request (same id) on a new socket
    seed: int = 1  # fixes the workload
    processes: int = 0  # 0: one per 250 clients, at least 1, at most the CPUs
    ids: bool = True  # False: requests carry no id, as the class's client sends them
    dialect: str = DEFAULT_DIALECT  # the target's protocol (libsrv_bench.dialects)
    # Request ids start with this; unique per run, so a server that remembers ids never mistakes
    # a request of this run for a retry of an earlier one (the seed still fixes the workload).
    run_id: str = field(default_factory=lambda: secrets.token_hex(6))

    def window(self, t0: int) -> tuple[int, int | None]:
        """(measure_from, end) in perf_counter_ns for a run starting at `t0`: samples count
        from the end of the warm-up; clients start no request at or after `end` (None: the
        run is a count of requests, with no warm-up)."""
        if self.requests is not None:
            return t0, None
        measure_from = t0 + int(self.warmup * 1e9)
        return measure_from, measure_from + int((self.duration or 0) * 1e9)

    def process_count(self) -> int:
        if self.processes:
            return max(1, min(self.processes, self.clients))
        return max(1, min(os.cpu_count() or 1, -(-self.clients // CLIENTS_PER_PROCESS)))


@dataclass
class ProcessResult:
    records: list[Record]
    corrected: bytes  # HdrHistogram, encoded; latency from the intended send time
    uncorrected: bytes  # from the actual send time
    measure_from: int  # perf_counter_ns after which samples count (warm-up excluded)
    cpu_seconds: float  # CPU time this load process spent driving its clients
    wall_seconds: float
    late_ns: int = 0  # how long after t0 this process began driving its clients
    loop: str = "python"  # "compiled": libsrv_bench/client_loop.c drove them
    loop_note: str = ""  # why the Python loop drove ZeroMQ clients, when it was not asked for


# a request drawn ahead: (action, fields), its id, its encoded frame
Drawn = tuple[tuple[Action, dict[str, Any]], str | None, bytes]


class _Client:
    __slots__ = ("attempts", "drawn", "first_sent", "index", "intended", "next_at", "payload",
                 "quota", "request", "rid", "rng", "sent", "sent_at", "step")

    def __init__(self, index: int, seed: int) -> None:
        self.index = index
        # one generator per client: its sequence of requests depends on the seed alone, not
        # on the order in which replies happen to arrive
        self.rng = random.Random(seed * 1_000_003 + index)
        self.step = 0
        self.next_at = 0
        self.intended = 0
        self.sent = False
        self.sent_at = 0
        self.first_sent = 0
        self.request: tuple[Action, dict[str, Any]] | None = None
        self.quota = -1  # requests left; -1: no count (a run of a duration)
        self.attempts = 0
        self.payload = b""
        self.rid: str | None = None
        # requests drawn ahead, the next one last: (request, id, frame)
        self.drawn: list[Drawn] = []


class _ClientPool:
    """The clients of one load process, their connections (`libsrv_bench.wires`: ZeroMQ,
    HTTP or gRPC, by the endpoint's scheme) and schedule, and what they recorded."""

    loop = "python"  # which loop drives the clients: the run's summary says (load.loop)
    loop_note = ""  # why the Python loop drives ZeroMQ clients, when it was not asked for

    def __init__(self, spec: LoadSpec, first: int, count: int, counters: Any,
                 slot: int) -> None:
        self.spec = spec
        self.dialect = dialect_named(spec.dialect)
        self.first = first
        self.counters = counters
        self.slot = slot
        self.poller = zmq.Poller()
        self.wire = wire_for(spec.endpoint, self.poller, count)
        self.answers: list[tuple[Any, ...]] = []  # what `_finish` noted, read by `_records`
        self.given_up = 0  # requests that timed out after every retry
        self.records: list[Record] = []
        self.measure_from, self.end = 0, None
        self.timeout_ns = int(spec.timeout * 1e9)
        self.interval = int(spec.clients / spec.rate * 1e9) if spec.rate else 0
        self.think = int(spec.think * 1e9)
        self.clients = [_Client(first + i, spec.seed) for i in range(count)]
        share, extra = divmod(spec.requests or 0, spec.clients)
        for n, client in enumerate(self.clients):
            self.wire.open(n)
            if spec.requests is not None:
                client.quota = share + (1 if client.index < extra else 0)
        self._predraw()

    def _planned(self, client: _Client) -> int:
        """How many requests `client` is expected to send in the run."""
        spec = self.spec
        if client.quota >= 0:
            return client.quota
        seconds = spec.warmup + (spec.duration or 0)
        if spec.rate:
            rate = spec.rate / spec.clients
        elif spec.think:
            rate = 1 / spec.think
        else:
            rate = CLOSED_LOOP_GUESS / spec.clients
        return int(seconds * rate) + 1

    def _predraw(self) -> None:
        """Draw what each client is expected to send, before the run starts: a batch per
        client in turn, so that all have their share when PREDRAW_SECONDS is up (and at least
        one batch each)."""
        planned = [self._planned(client) for client in self.clients]
        drawn: list[list[Drawn]] = [[] for _ in self.clients]
        deadline = time.perf_counter() + PREDRAW_SECONDS
        while True:
            more = False
            for position, client in enumerate(self.clients):
                if len(drawn[position]) < max(1, planned[position]):
                    drawn[position] += self._draw_batch(client)
                    more = True
            if not more or time.perf_counter() > deadline:
                break
        for client, ahead in zip(self.clients, drawn, strict=True):
            self._take(client, ahead)

    def _has_work(self, client: _Client) -> bool:
        return client.quota != 0 and (self.end is None or client.next_at < self.end)

    def _draw_batch(self, client: _Client) -> list[Drawn]:
        """`client`'s next DRAW_BATCH requests, drawn and encoded, in order (the sequence is
        the seed's alone, however many are drawn ahead)."""
        spec, request = self.spec, self.dialect.request
        drawn = []
        for _ in range(DRAW_BATCH):
            action, fields = spec.workload.next(client.rng, client.index, client.step, spec.keys)
            client.step += 1
            rid = f"{spec.run_id}-{client.index}-{client.step}" if spec.ids else None
            drawn.append(((action, fields), rid, request(action, fields, rid)))
        return drawn

    def _take(self, client: _Client, drawn: list[Drawn]) -> None:
        """Keep `drawn` (in order) as `client`'s next requests, sent one by one once those
        it has are sent."""
        drawn.reverse()  # the next one last: popped
        client.drawn = drawn

    def _send(self, client: _Client, now: int) -> None:
        if not client.drawn:
            self._take(client, self._draw_batch(client))
        client.request, client.rid, client.payload = client.drawn.pop()
        self.wire.send(client.index - self.first, client.request[0], client.payload)
        client.sent, client.sent_at, client.first_sent, client.attempts = True, now, now, 1
        if client.quota > 0:
            client.quota -= 1

    def _finish(self, client: _Client, now: int, frame: bytes | None) -> None:
        """Note `client`'s request: answered with `frame` at `now`, or timed out (None). The
        reply is read once the run is over (`_records`), so that reading it costs the
        server's cores nothing while it is measured."""
        action, fields = client.request or (Action.PING, {})
        self.answers.append((client.index, action, fields, client.intended, client.first_sent,
                             now, frame, client.attempts, client.rid))
        if frame is None:
            self.given_up += 1
        client.sent = False
        if self.interval:
            client.intended += self.interval
            client.next_at = client.intended
        else:
            client.next_at = client.intended = now + self.think

    def _publish(self) -> None:
        """Tell the parent's progress bar how many requests ended and how many timed out
        (every timeout scan, not every request: shared memory costs a load process more than
        it seems)."""
        self.counters[self.slot * 2] = len(self.answers)
        self.counters[self.slot * 2 + 1] = self.given_up

    def _records(self) -> list[Record]:
        """Every request of the run as a `Record`, its reply read by the dialect; the error
        replies are added to the progress counters here."""
        records, errors = [], 0
        read, as_frame = self.dialect.reply, self.wire.as_frame
        for index, action, fields, intended, sent, now, frame, attempts, rid in self.answers:
            reply: Outcome | None = (read(action, fields, as_frame(frame)) if frame is not None
                                     else None)
            book = reply.book if reply is not None and reply.book is not None else {}
            code = reply.code if reply is not None else TIMEOUT
            if code in FAILURE_CODES:
                errors += 1
            records.append(Record(
                index, str(action), fields.get("isbn"), fields.get("borrower"), intended, sent,
                now if reply is not None else None, code, book.get("ISBN"),
                book.get("prestatario"), book.get("estado"), attempts, rid))
        self.counters[self.slot * 2 + 1] += errors
        return records

    def _expire(self, now: int, scheduled: list[tuple[int, int]]) -> int:
        """Retry or give up on requests past their timeout; how many were given up."""
        given_up = 0
        for client in self.clients:
            if not client.sent or now - client.sent_at <= self.timeout_ns:
                continue
            # a REQ socket that got no reply cannot send again; every wire starts afresh
            self.wire.open(client.index - self.first)
            if client.attempts <= self.spec.retries:  # resend, same id, fresh connection
                action = client.request[0] if client.request else Action.PING
                self.wire.send(client.index - self.first, action, client.payload)
                client.sent_at = now
                client.attempts += 1
                continue
            self._finish(client, now, None)
            given_up += 1
            if self._has_work(client):
                heapq.heappush(scheduled, (client.next_at, client.index - self.first))
        return given_up

    def run(self, t0: int) -> ProcessResult:
        """Drive the clients from `t0` (perf_counter_ns) until the run ends."""
        self.measure_from, self.end = self.spec.window(t0)
        for n, client in enumerate(self.clients):
            # spread first sends over one interval so open-loop clients do not fire in lockstep
            client.next_at = client.intended = t0 + self.interval * n // max(1, len(self.clients))
        while time.perf_counter_ns() < t0:
            time.sleep(0.001)
        late = max(0, time.perf_counter_ns() - t0)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        self._drive(t0)
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - wall_start
        self._publish()
        self.wire.close()
        self.records = self._records()
        corrected, uncorrected = self._histograms()
        return ProcessResult(self.records, corrected, uncorrected, self.measure_from, cpu, wall,
                             late, self.loop, self.loop_note)

    def _drive(self, t0: int) -> None:
        """Send, receive and time out until no client has anything left to do."""
        scheduled = [(c.next_at, c.index - self.first) for c in self.clients
                     if self._has_work(c)]
        heapq.heapify(scheduled)
        outstanding = 0
        next_check = t0
        while True:
            now = time.perf_counter_ns()
            while scheduled and scheduled[0][0] <= now:
                client = self.clients[heapq.heappop(scheduled)[1]]
                if self._has_work(client):
                    self._send(client, now)
                    outstanding += 1
            if now >= next_check:
                next_check = now + TIMEOUT_SCAN_NS
                outstanding -= self._expire(now, scheduled)
                self._publish()
            if not outstanding and not scheduled:
                break
            now = time.perf_counter_ns()
            if scheduled and scheduled[0][0] < next_check:
                # a send due: wake no later than it (the last sub-millisecond is spun)
                wait_ms = max(0, (scheduled[0][0] - now) // 1_000_000)
            else:
                # only the timeout scan is due, which may come a little late: rounding this
                # down would spin for up to a millisecond every scan, in every load process
                wait_ms = max(0, -(-(next_check - now) // 1_000_000))
            for polled, _ in self.poller.poll(wait_ms):
                for position, frame in self.wire.replies(polled):
                    client = self.clients[position]
                    if not client.sent:
                        continue  # a late reply to a request already given up
                    now = time.perf_counter_ns()
                    self._finish(client, now, frame)
                    outstanding -= 1
                    if not self._has_work(client):
                        continue
                    if client.next_at <= now:
                        # read the clock again: a send stamped with its reply's instant would
                        # overlap that reply for the verifier, which hides nothing wrong but
                        # lets it order the client's own two operations either way
                        self._send(client, time.perf_counter_ns())
                        outstanding += 1
                    else:
                        heapq.heappush(scheduled, (client.next_at, position))

    def _histograms(self) -> tuple[bytes, bytes]:
        """The latency histograms of the measured requests, filled after the run so that the
        loop that drives the clients does no more than it must."""
        corrected, uncorrected = new_histogram(), new_histogram()
        end = self.end
        for r in self.records:
            if r.t_recv is not None and r.t_intended >= self.measure_from and (
                    end is None or r.t_intended < end):
                corrected.record_value(max(1, r.t_recv - r.t_intended))
                uncorrected.record_value(max(1, r.t_recv - r.t_send))
        return corrected.encode(), uncorrected.encode()


def client_pool(spec: LoadSpec, first: int, count: int, counters: Any,
                slot: int) -> _ClientPool:
    """The pool that drives clients first..first+count-1: on the compiled loop when it can
    (ZeroMQ clients, the library built: `libsrv_bench.client_loop`), else in Python."""
    # imported here: the compiled pool is a subclass of the one in this module
    from libsrv_bench.load_compiled import compiled_pool

    pool, note = compiled_pool(spec, first, count, counters, slot)
    if pool is not None:
        return pool
    fallback = _ClientPool(spec, first, count, counters, slot)
    fallback.loop_note = note
    return fallback


def run_clients(spec: LoadSpec, first: int, count: int, t0: int, counters: Any,
                slot: int) -> ProcessResult:
    """Drive clients first..first+count-1 from t0 (perf_counter_ns) until the run ends."""
    return client_pool(spec, first, count, counters, slot).run(t0)


def _child(spec: LoadSpec, first: int, count: int, ready: Any, start: Any, counters: Any,
           slot: int, results: Any) -> None:
    pool = client_pool(spec, first, count, counters, slot)  # connected, first requests drawn
    ready.put(slot)  # up: the parent picks t0 once every process has said so
    start.wait()
    t0 = counters[-1]  # the parent's start time, published before `start` is set
    results.put((slot, pool.run(t0)))


@dataclass
class LoadResult:
    records: list[Record]
    corrected: HdrHistogram
    uncorrected: HdrHistogram
    t0: int
    measure_from: int
    end: int | None  # the nominal end of the schedule (ns); None for a count of requests
    processes: int
    cpu_seconds: list[float]  # per load process
    wall_seconds: list[float]
    late_seconds: list[float] = field(default_factory=list)  # per process: start after t0
    loops: list[str] = field(default_factory=list)  # per process: "compiled" or "python"
    loop_notes: list[str] = field(default_factory=list)  # per process: why Python, if unasked


def run_load(spec: LoadSpec, progress: Callable[[int, int], None] | None = None, *,
             t0: int | None = None, first_client: int = 0,
             on_start: Callable[[int], None] | None = None) -> LoadResult:
    """Run the load in `spec.process_count()` child processes and gather every record.

    `t0` (perf_counter_ns) is when all processes start (default: START_DELAY_NS after every
    process is up, so that none starts late for having been slow to spawn); clients are
    numbered from `first_client` (engines of one run number theirs apart). `late_seconds`
    says how long after t0 each process began: a given t0 may be too early for some.
    `on_start(t0)` is called once t0 is chosen (what must happen at times of the run, such as
    a fault schedule, starts from it)."""
    mp = multiprocessing.get_context("spawn")
    nproc = spec.process_count()
    counters = RawArray("q", 2 * nproc + 1)
    start = mp.Event()
    ready, results = mp.Queue(), mp.Queue()
    share, extra = divmod(spec.clients, nproc)
    children, first = [], first_client
    for slot in range(nproc):
        count = share + (1 if slot < extra else 0)
        child = mp.Process(target=_child, args=(spec, first, count, ready, start, counters,
                                                slot, results), daemon=True)
        child.start()
        children.append(child)
        first += count

    def report() -> None:
        if progress is not None:
            progress(sum(counters[2 * i] for i in range(nproc)),
                     sum(counters[2 * i + 1] for i in range(nproc)))

    gathered: dict[int, ProcessResult] = {}
    try:
        _wait_ready(ready, children)
        if t0 is None:
            t0 = time.perf_counter_ns() + START_DELAY_NS
        counters[-1] = t0
        if on_start is not None:
            on_start(t0)
        start.set()
        while len(gathered) < nproc:
            report()
            try:
                slot, result = results.get(timeout=0.25)
            except queue.Empty:
                if not any(c.is_alive() for c in children) and results.empty():
                    raise RuntimeError("a load process died; see its error above") from None
                continue
            gathered[slot] = result
        report()
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
    corrected, uncorrected = new_histogram(), new_histogram()
    records: list[Record] = []
    for slot in sorted(gathered):
        result = gathered[slot]
        corrected.decode_and_add(result.corrected)
        uncorrected.decode_and_add(result.uncorrected)
        records.extend(result.records)
    ordered = [gathered[slot] for slot in sorted(gathered)]
    measure_from, end = spec.window(t0)
    return LoadResult(records, corrected, uncorrected, t0, measure_from, end, nproc,
                      [r.cpu_seconds for r in ordered], [r.wall_seconds for r in ordered],
                      [r.late_ns / 1e9 for r in ordered], [r.loop for r in ordered],
                      [r.loop_note for r in ordered])


def _wait_ready(ready: Any, children: list[Any]) -> None:
    """Until every load process has said it is up (RuntimeError if one died first)."""
    deadline = time.monotonic() + READY_SECONDS
    for _ in children:
        while True:
            try:
                ready.get(timeout=0.25)
                break
            except queue.Empty:
                if not all(c.is_alive() for c in children):
                    raise RuntimeError("a load process died; see its error above") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"load processes not up after {READY_SECONDS:.0f} s"
                                       ) from None
