"""The load generator: a few processes, each driving many REQ sockets from one poller.

Closed loop: a client sends its next request as soon as it has a reply (plus optional think
time). Open loop (`rate`): each client has a fixed schedule of intended send times; when the
server falls behind, a request goes out late and its latency is counted from the intended time,
so queueing cannot hide (wrk2's answer to coordinated omission). The uncorrected latency, from
the actual send, is recorded too.

Every request is recorded (see `FIELDS`); times are `time.perf_counter_ns()`, which is
CLOCK_MONOTONIC on Linux and so comparable across the processes of one machine.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray
from typing import Any

import zmq
from hdrh.histogram import HdrHistogram

from bench.workloads import KeySpace, Workload
from libsrv.protocol import Action, encode_request

FIELDS = ("client", "action", "isbn", "borrower", "t_intended", "t_send", "t_recv", "code",
          "reply_isbn", "reply_borrower", "attempts")
TIMEOUT = "TIMEOUT"
HIST_MAX_NS = 120 * 10**9  # two minutes
HIST_DIGITS = 3
START_DELAY_NS = 300_000_000  # all processes start together, this long after they are ready


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
    seed: int = 1
    processes: int = 0  # 0: one per 250 clients, at least 1, at most the CPUs

    def process_count(self) -> int:
        if self.processes:
            return max(1, min(self.processes, self.clients))
        return max(1, min(os.cpu_count() or 1, -(-self.clients // 250)))


@dataclass
class ProcessResult:
    records: list[tuple[Any, ...]]
    corrected: bytes  # HdrHistogram, encoded; latency from the intended send time
    uncorrected: bytes  # from the actual send time
    measure_from: int  # perf_counter_ns after which samples count (warm-up excluded)


class _Client:
    __slots__ = (
        "attempts",
        "fields",
        "first_sent",
        "index",
        "intended",
        "next_at",
        "payload",
        "quota",
        "request",
        "sent",
        "sent_at",
        "sock",
        "step",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.sock: zmq.Socket | None = None
        self.step = 0
        self.next_at = 0
        self.intended = 0
        self.sent = False
        self.sent_at = 0
        self.request: tuple[Action, dict[str, Any]] | None = None
        self.fields: dict[str, Any] = {}
        self.quota = -1
        self.attempts = 0
        self.first_sent = 0
        self.payload = b""


def run_clients(spec: LoadSpec, first: int, count: int, t0: int, counters: Any,
                slot: int) -> ProcessResult:
    """Drive clients first..first+count-1 from t0 (perf_counter_ns) until the run ends."""
    ctx = zmq.Context()
    poller = zmq.Poller()
    rng = random.Random(spec.seed * 1_000_003 + first)
    clients = [_Client(first + i) for i in range(count)]
    by_sock: dict[zmq.Socket, _Client] = {}
    records: list[tuple[Any, ...]] = []
    corrected, uncorrected = new_histogram(), new_histogram()
    warmup_ns = int(spec.warmup * 1e9) if spec.requests is None else 0
    measure_from = t0 + warmup_ns
    end = t0 + warmup_ns + int((spec.duration or 0) * 1e9) if spec.requests is None else None
    timeout_ns = int(spec.timeout * 1e9)
    interval = int(spec.clients / spec.rate * 1e9) if spec.rate else 0
    think = int(spec.think * 1e9)
    prefix = f"b{spec.seed}-{first}"

    def connect(client: _Client) -> None:
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(spec.endpoint)
        client.sock = sock
        by_sock[sock] = client
        poller.register(sock, zmq.POLLIN)

    def drop(client: _Client) -> None:
        assert client.sock is not None
        poller.unregister(client.sock)
        del by_sock[client.sock]
        client.sock.close(linger=0)
        connect(client)

    for n, client in enumerate(clients):
        connect(client)
        if spec.requests is not None:
            share, extra = divmod(spec.requests, spec.clients)
            client.quota = share + (1 if client.index < extra else 0)
        # spread first sends over one interval so open-loop clients do not fire in lockstep
        client.next_at = t0 + (interval * n // max(1, count) if interval else 0)
        client.intended = client.next_at

    def send(client: _Client, now: int) -> None:
        action, fields = spec.workload.next(rng, client.index, client.step, spec.keys)
        client.step += 1
        client.request = (action, fields)
        rid = f"{prefix}-{client.index}-{client.step}"
        assert client.sock is not None
        client.payload = encode_request(action, id=rid, **fields)
        client.sock.send(client.payload)
        client.sent, client.sent_at, client.first_sent, client.attempts = True, now, now, 1
        if client.quota > 0:
            client.quota -= 1

    def finish(client: _Client, now: int, reply: dict[str, Any] | None) -> None:
        assert client.request is not None
        action, fields = client.request
        book = reply.get("book") if reply else None
        code = reply.get("code") if reply else TIMEOUT
        records.append((client.index, action.value, fields.get("isbn"), fields.get("borrower"),
                        client.intended, client.first_sent, now if reply else None, code,
                        book.get("ISBN") if isinstance(book, dict) else None,
                        book.get("prestatario") if isinstance(book, dict) else None,
                        client.attempts))
        if reply is not None and client.intended >= measure_from and (end is None or
                                                                      client.intended < end):
            corrected.record_value(max(1, now - client.intended))
            uncorrected.record_value(max(1, now - client.first_sent))
        counters[slot * 2] += 1
        if reply is None or code not in ("OK", "UNAVAILABLE", "NOT_LOANED", "NOT_FOUND"):
            counters[slot * 2 + 1] += 1
        client.sent = False
        if interval:
            client.intended += interval
            client.next_at = client.intended
        else:
            client.next_at = now + think
            client.intended = client.next_at

    def has_work(client: _Client) -> bool:
        return client.quota != 0 and (end is None or client.next_at < end)

    scheduled = [(c.next_at, c.index - first) for c in clients if has_work(c)]
    heapq.heapify(scheduled)
    outstanding = 0
    next_check = t0
    while time.perf_counter_ns() < t0:
        time.sleep(0.001)
    while True:
        now = time.perf_counter_ns()
        while scheduled and scheduled[0][0] <= now:
            client = clients[heapq.heappop(scheduled)[1]]
            if has_work(client):
                send(client, now)
                outstanding += 1
        if now >= next_check:  # timeouts: a scan every 20 ms is plenty
            next_check = now + 20_000_000
            for client in clients:
                if client.sent and now - client.sent_at > timeout_ns:
                    drop(client)
                    if client.attempts <= spec.retries:  # resend, same id, fresh socket
                        assert client.sock is not None
                        client.sock.send(client.payload)
                        client.sent_at = now
                        client.attempts += 1
                        continue
                    finish(client, now, None)
                    outstanding -= 1
                    if has_work(client):
                        heapq.heappush(scheduled, (client.next_at, client.index - first))
        if not outstanding and not scheduled:
            break
        due = min(scheduled[0][0] if scheduled else next_check, next_check)
        wait_ms = max(0, (due - time.perf_counter_ns()) // 1_000_000)
        for sock, _ in poller.poll(wait_ms):
            client = by_sock[sock]
            frame = sock.recv()
            now = time.perf_counter_ns()
            try:
                reply = json.loads(frame)
            except ValueError:
                reply = {"code": "BAD_REPLY"}
            finish(client, now, reply)
            outstanding -= 1
            if not has_work(client):
                continue
            if client.next_at <= now:
                send(client, now)
                outstanding += 1
            else:
                heapq.heappush(scheduled, (client.next_at, client.index - first))
    for sock in list(by_sock):
        sock.close(linger=0)
    ctx.term()
    return ProcessResult(records, corrected.encode(), uncorrected.encode(), measure_from)


def _child(spec: LoadSpec, first: int, count: int, start: Any, counters: Any, slot: int,
           results: Any) -> None:
    start.wait()
    t0 = counters[-1]  # the parent's start time, published before `start` is set
    results.put((slot, run_clients(spec, first, count, t0, counters, slot)))


@dataclass
class LoadResult:
    records: list[tuple[Any, ...]]
    corrected: HdrHistogram
    uncorrected: HdrHistogram
    t0: int
    measure_from: int
    elapsed_s: float  # the measured part
    processes: int


def run_load(spec: LoadSpec, progress: Callable[[int, int], None] | None = None) -> LoadResult:
    """Run the load in `spec.process_count()` child processes and gather every record."""
    mp = multiprocessing.get_context("spawn")
    nproc = spec.process_count()
    counters = RawArray("q", 2 * nproc + 1)
    start = mp.Event()
    results = mp.Queue()
    share, extra = divmod(spec.clients, nproc)
    children, first = [], 0
    for slot in range(nproc):
        count = share + (1 if slot < extra else 0)
        child = mp.Process(target=_child, args=(spec, first, count, start, counters, slot,
                                                results), daemon=True)
        child.start()
        children.append(child)
        first += count
    try:
        t0 = time.perf_counter_ns() + START_DELAY_NS + 200_000_000 * nproc
        counters[-1] = t0
        start.set()
        gathered: dict[int, ProcessResult] = {}
        while len(gathered) < nproc:
            if progress is not None:
                progress(sum(counters[2 * i] for i in range(nproc)),
                         sum(counters[2 * i + 1] for i in range(nproc)))
            try:
                slot, result = results.get(timeout=0.25)
                gathered[slot] = result
            except Exception:
                if not any(c.is_alive() for c in children) and results.empty():
                    raise RuntimeError("a load process died; see its error above") from None
        if progress is not None:
            progress(sum(counters[2 * i] for i in range(nproc)),
                     sum(counters[2 * i + 1] for i in range(nproc)))
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
    corrected, uncorrected = new_histogram(), new_histogram()
    records: list[tuple[Any, ...]] = []
    for slot in sorted(gathered):
        result = gathered[slot]
        corrected.decode_and_add(result.corrected)
        uncorrected.decode_and_add(result.uncorrected)
        records.extend(result.records)
    measure_from = gathered[0].measure_from
    if spec.requests is None:
        elapsed = spec.duration or 0.0
    else:
        done = [r[6] for r in records if r[6] is not None]
        elapsed = (max(done) - t0) / 1e9 if done else 0.0
    return LoadResult(records, corrected, uncorrected, t0, measure_from, elapsed, nproc)
