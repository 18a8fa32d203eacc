"""A load process's ZeroMQ clients driven by the compiled loop (`libsrv_bench/client_loop.c`).

The same clients, schedule and records as `libsrv_bench.load`'s Python loop: the requests are
drawn and encoded in Python as before, a batch at a time; the C loop sends them, polls, notes
each reply's times and bytes, and schedules the next send (closed loop, think time or open
loop), so a request costs the load process about what libzmq costs. Python keeps what is rare:
the timeout scan every TIMEOUT_SCAN_NS (a retry on a fresh socket, or giving up), drawing the
next batch, growing the arrays, and reading the replies once the run is over.

What a run is expected to send and was not drawn before it started is drawn during its
warm-up, by a thread (the C loop runs without the GIL), so that drawing costs the measured part
of the run nothing: with requests drawn as the run went, a load process with a core of its own
drove the reference 0.87 as fast as the independent generator; drawn ahead, 0.96-1.02
(docs/bench.md).
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

import numpy as np
import zmq

from libsrv_bench.client_loop import (
    MAX_CLIENTS,
    PYTHON_AS_ASKED,
    RECORD_FIELDS,
    STATUS,
    C,
    F,
    P,
    R,
    chosen,
)
from libsrv_bench.load import TIMEOUT_SCAN_NS, Drawn, LoadSpec, _Client, _ClientPool
from libsrv_bench.wires import ZMQ_SCHEMES

RECORDS_AT_FIRST = 1 << 14
ARENA_AT_FIRST = 1 << 22  # 4 MB of reply bytes; doubled when full


class CompiledPool(_ClientPool):
    """`_ClientPool` whose clients are driven by `bench_loop`; `library` from
    `libsrv_bench.client_loop.load`."""

    loop = "compiled"

    def __init__(self, spec: LoadSpec, first: int, count: int, counters: Any, slot: int,
                 library: ctypes.CDLL) -> None:
        self.library = library
        self.state = np.zeros((count, len(F)), dtype=np.int64)
        self.ptrs = np.zeros((count, len(P)), dtype=np.uint64)
        self.ctl = np.zeros(len(C), dtype=np.int64)
        self.records_array = np.zeros((RECORDS_AT_FIRST, len(RECORD_FIELDS)), dtype=np.int64)
        self.arena = np.zeros(ARENA_AT_FIRST, dtype=np.uint8)
        self.pending = np.zeros(8, dtype=np.int64)  # a zmq_msg_t (64 bytes, aligned)
        self.drawn_so_far: list[list[Drawn]] = [[] for _ in range(count)]
        # each client's current batch of frames and offsets, kept alive while C reads them
        self.batches: list[tuple[np.ndarray, np.ndarray] | None] = [None] * count
        self.timed_out: list[tuple[Any, ...]] = []
        # batches drawn by the warm-up's thread, not yet handed to the C loop; the lock keeps
        # each client's draws in its sequence, whichever thread draws
        self.ready: list[list[Drawn]] = [[] for _ in range(count)]
        self.draw_lock = threading.Lock()
        self.drawing_stops = threading.Event()
        super().__init__(spec, first, count, counters, slot)
        for position in range(count):
            self._socket_changed(position)

    def _socket_changed(self, position: int) -> None:
        self.ptrs[position, P["SOCKET"]] = self.wire.socks[position].underlying

    def _take(self, client: _Client, drawn: list[Drawn]) -> None:
        """Hand `drawn` (in order) to the C loop as `client`'s next requests: it asks for
        more (STATUS frames) once it has sent them all."""
        position = client.index - self.first
        kept = self.drawn_so_far[position]
        base = len(kept)
        kept.extend(drawn)
        frames = np.frombuffer(b"".join(frame for _, _, frame in drawn), dtype=np.uint8)
        offsets = np.zeros(len(drawn) + 1, dtype=np.int64)
        np.cumsum([len(frame) for _, _, frame in drawn], out=offsets[1:])
        self.batches[position] = (frames, offsets)
        self.ptrs[position, P["FRAMES"]] = frames.ctypes.data
        self.ptrs[position, P["OFFSETS"]] = offsets.ctypes.data
        self.state[position, F["BATCH_BASE"]] = base
        self.state[position, F["AVAIL"]] = base + len(drawn)

    def _refill(self, client: _Client) -> None:
        """Give the C loop `client`'s next requests: those the warm-up's thread drew, else a
        batch drawn now."""
        position = client.index - self.first
        with self.draw_lock:
            ready, self.ready[position] = self.ready[position], []
            drawn = [request for batch in ready for request in batch] or \
                self._draw_batch(client)
        self._take(client, drawn)

    def _draw_ahead(self) -> None:
        """During the warm-up: draw, a batch per client in turn, what each is expected to
        send in the run and does not have yet; stop at the end of the warm-up."""
        planned = [self._planned(client) for client in self.clients]
        while not self.drawing_stops.is_set():
            more = False
            for position, client in enumerate(self.clients):
                if time.perf_counter_ns() >= self.measure_from or self.drawing_stops.is_set():
                    return
                with self.draw_lock:
                    have = len(self.drawn_so_far[position]) + sum(
                        len(batch) for batch in self.ready[position])
                    if have < planned[position]:
                        self.ready[position].append(self._draw_batch(client))
                        more = True
            if not more:
                return

    def _grow(self) -> None:
        """Room for more records, or for a reply bigger than what is left of the arena."""
        ctl = self.ctl
        if ctl[C["RECORDS"]] >= ctl[C["RECORD_ROOM"]]:
            grown = np.zeros((2 * len(self.records_array), len(RECORD_FIELDS)), dtype=np.int64)
            grown[:len(self.records_array)] = self.records_array
            self.records_array = grown
            ctl[C["RECORD_ROOM"]] = len(grown)
        need = int(ctl[C["ARENA_USED"]] + max(ctl[C["NEED"]], 0))
        if need > len(self.arena):
            grown_arena = np.zeros(max(2 * len(self.arena), 2 * need), dtype=np.uint8)
            grown_arena[:len(self.arena)] = self.arena
            self.arena = grown_arena
            ctl[C["ARENA_ROOM"]] = len(grown_arena)

    def _drive(self, t0: int) -> None:
        state, ctl = self.state, self.ctl
        for position, client in enumerate(self.clients):
            state[position, F["NEXT_AT"]] = client.next_at
            state[position, F["INTENDED"]] = client.intended
            state[position, F["QUOTA"]] = client.quota
        ctl[C["END"]] = -1 if self.end is None else self.end
        ctl[C["INTERVAL"]], ctl[C["THINK"]] = self.interval, self.think
        ctl[C["RECORD_ROOM"]], ctl[C["ARENA_ROOM"]] = len(self.records_array), len(self.arena)
        ctl[C["WHO"]] = ctl[C["NEED"]] = -1
        ctl[C["RETURN_AT"]] = t0  # the first pass sends, then comes back for the scan
        count = len(self.clients)
        drawer = threading.Thread(target=self._draw_ahead, name="draw-ahead", daemon=True)
        drawer.start()
        try:
            self._loop(count)
        finally:
            self.drawing_stops.set()
            drawer.join()

    def _loop(self, count: int) -> None:
        """Call the C loop, and do what it returns for, until the run is over."""
        ctl, state = self.ctl, self.state
        while True:
            status = self.library.bench_loop(
                ctl.ctypes.data, state.ctypes.data, self.ptrs.ctypes.data,
                self.records_array.ctypes.data, self.arena.ctypes.data,
                self.pending.ctypes.data, count)
            if status == STATUS["done"]:
                return
            if status == STATUS["tick"]:
                now = time.perf_counter_ns()
                ctl[C["RETURN_AT"]] = now + TIMEOUT_SCAN_NS
                self._expire_compiled(now)
                self._publish()
            elif status == STATUS["frames"]:
                self._refill(self.clients[int(ctl[C["WHO"]])])
            elif status == STATUS["grow"]:
                self._grow()
            else:
                raise zmq.ZMQError(int(ctl[C["ERRNO"]]))

    def _expire_compiled(self, now: int) -> None:
        """Retry or give up on requests past their timeout (as `_expire` does, on the C
        loop's arrays)."""
        state = self.state
        late = np.nonzero((state[:, F["SENT"]] != 0)
                          & (now - state[:, F["SENT_AT"]] > self.timeout_ns))[0]
        for position in late.tolist():
            row = state[position]
            # a REQ socket that got no reply cannot send again; it starts afresh
            self.wire.open(position)
            self._socket_changed(position)
            request, rid, payload = self.drawn_so_far[position][int(row[F["CURRENT"]])]
            if row[F["ATTEMPTS"]] <= self.spec.retries:  # resend, same id, fresh connection
                self.wire.send(position, request[0], payload)
                row[F["SENT_AT"]] = now
                row[F["ATTEMPTS"]] += 1
                continue
            self.timed_out.append((self.first + position, request[0], request[1],
                                   int(row[F["INTENDED"]]), int(row[F["FIRST_SENT"]]), now,
                                   None, int(row[F["ATTEMPTS"]]), rid))
            self.given_up += 1
            row[F["SENT"]] = 0
            if self.interval:
                row[F["INTENDED"]] += self.interval
                row[F["NEXT_AT"]] = row[F["INTENDED"]]
            else:
                row[F["NEXT_AT"]] = row[F["INTENDED"]] = now + self.think

    def _publish(self) -> None:
        self.counters[self.slot * 2] = int(self.ctl[C["RECORDS"]]) + len(self.timed_out)
        self.counters[self.slot * 2 + 1] = self.given_up

    def _records(self) -> list[Any]:
        """The C loop's records as `_finish` would have noted them, with the timeouts, in
        the order they ended; then read as the Python loop's are."""
        answered = self.records_array[:int(self.ctl[C["RECORDS"]])].tolist()
        arena = self.arena
        client, index, intended, sent, received, attempts, offset, size = (
            R[name] for name in ("CLIENT", "INDEX", "INTENDED", "SENT", "RECEIVED", "ATTEMPTS",
                                 "OFFSET", "SIZE"))
        answers = []
        for row in answered:
            position = row[client]
            request, rid, _ = self.drawn_so_far[position][row[index]]
            answers.append((self.first + position, request[0], request[1], row[intended],
                            row[sent], row[received],
                            arena[row[offset]:row[offset] + row[size]].tobytes(),
                            row[attempts], rid))
        answers += self.timed_out
        answers.sort(key=lambda answer: answer[5])
        self.answers = answers
        return super()._records()


def compiled_pool(spec: LoadSpec, first: int, count: int, counters: Any,
                  slot: int) -> tuple[CompiledPool | None, str]:
    """A compiled pool for these clients, or None when the Python loop must drive them, with
    why when that was not asked for: not ZeroMQ (HTTP, gRPC) or too many clients for one C
    loop need no word; the library not available under ``LIBSRV_LOAD_LOOP=auto`` does."""
    if spec.endpoint.split("://", 1)[0] not in ZMQ_SCHEMES or count > MAX_CLIENTS:
        return None, ""
    library, why = chosen()
    if library is None:
        return None, "" if why == PYTHON_AS_ASKED else why
    return CompiledPool(spec, first, count, counters, slot, library), ""
