"""An independent load generator, as lean as one can be: one process per client, one REQ socket
each, the same request frame sent again as soon as its reply is in, nothing recorded but a count.
Each client's loop is C (`lean_loop` in libsrv_bench/client_loop.c) when it can be built, so
that what a client costs is libzmq's own; else the same loop in Python, which on a 2-core
machine costs enough to hold back the reference it measures (docs/bench.md).

It shares no loop with `libsrv_bench.load` on purpose (only the library the two C loops are
built into): it is the calibration that tells whether
bench's own generator sets the pace of what it measures. `compare` runs it against the
reference in every round (the "calibration" row); `lean_throughput` is its Python API.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import queue
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from libsrv.generate import isbn_for
from libsrv.protocol import Action, encode_request
from libsrv_bench.client_loop import chosen

START_DELAY_SECONDS = 0.2  # every process starts at one instant, this long after all are up
START_SECONDS = 120.0  # spawning many processes on a busy 2-core machine takes a while
REPLY_TIMEOUT_MS = 5000
DEFAULT_REQUEST = encode_request(Action.QUERY_ISBN, isbn="9780000000002")


@dataclass(frozen=True)
class LeanResult:
    clients: int
    seconds: float
    replies: int
    timeouts: int
    cpu_us_per_request: float | None  # the generator's own CPU, all processes
    loop: str = "python"  # "compiled": each client ran libsrv_bench/client_loop.c's lean_loop

    @property
    def throughput(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0


def read_mostly_frames(count: int, books: int, *, seed: int = 1) -> list[bytes]:
    """`count` request frames in the read-mostly shares (90% queries by ISBN, 5% loans, 5%
    returns) over the first `books` books of a generated catalog (`libsrv generate`), drawn
    from `seed`: what a lean client cycles through to load a server the way the issue of the
    broker's speed measured it. Writes carry no id (the lean client never retries)."""
    draw = random.Random(seed)
    frames = []
    for _ in range(count):
        isbn, roll = isbn_for(draw.randrange(books)), draw.random()
        if roll < 0.90:
            frames.append(encode_request(Action.QUERY_ISBN, isbn=isbn))
        elif roll < 0.95:
            frames.append(encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="lean"))
        else:
            frames.append(encode_request(Action.RETURN_ISBN, isbn=isbn))
    return frames


def _python_loop(sock: zmq.Socket, frames: list[bytes], end: float,
                 timeout_ms: int) -> tuple[int, int]:
    """Replies and timeouts (0 or 1) of one client until `end` (perf_counter seconds)."""
    count, sent, replies = len(frames), 0, 0
    while time.perf_counter() < end:
        sock.send(frames[sent % count])
        sent += 1
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return replies, 1  # a REQ socket without its reply cannot send again: done
        sock.recv()
        replies += 1
    return replies, 0


def _compiled_loop(library: ctypes.CDLL, sock: zmq.Socket, frames: list[bytes], end: float,
                   timeout_ms: int) -> tuple[int, int]:
    """The same loop in C (`lean_loop`): what the client costs is then libzmq's alone."""
    sock.rcvtimeo = timeout_ms
    blob = b"".join(frames)
    offsets = (ctypes.c_int64 * (len(frames) + 1))(
        0, *itertools.accumulate(len(frame) for frame in frames))
    timed_out = ctypes.c_long(0)
    replies = library.lean_loop(sock.underlying, blob, offsets, len(frames),
                                int(end * 1e9), ctypes.byref(timed_out))
    return replies, timed_out.value


def _client(endpoint: str, frame: bytes | list[bytes], seconds: float, timeout_ms: int,
            ready: Any, go: Any, start: Any, results: Any) -> None:
    library, _ = chosen()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)
    frames = [frame] if isinstance(frame, bytes) else frame
    ready.put(True)
    go.wait()
    start_at = start.value
    while time.perf_counter() < start_at:
        time.sleep(0.0005)
    cpu = time.process_time()
    end = start_at + seconds  # perf_counter is CLOCK_MONOTONIC, the C loop's clock
    if library is None:
        replies, timeouts = _python_loop(sock, frames, end, timeout_ms)
    else:
        replies, timeouts = _compiled_loop(library, sock, frames, end, timeout_ms)
    results.put((replies, timeouts, time.process_time() - cpu))
    sock.close()
    ctx.term()


def lean_throughput(endpoint: str, clients: int, seconds: float, *,
                    frame: bytes | Sequence[bytes] = DEFAULT_REQUEST,
                    reply_timeout: float = REPLY_TIMEOUT_MS / 1000) -> LeanResult:
    """Drive `endpoint` from `clients` processes for `seconds`, all starting at one instant
    once every process is up; replies per second. `frame` is the request each client sends
    again and again, or a sequence of them each client cycles through (starting at a
    different place, so that the clients do not move in step). A client whose reply does
    not come within `reply_timeout` seconds stops (counted in `timeouts`)."""
    loop = "python" if chosen()[0] is None else "compiled"  # built here, before the clients
    spawn = multiprocessing.get_context("spawn")
    ready, results, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    start = spawn.RawValue("d", 0.0)
    frames = [frame] if isinstance(frame, bytes) else list(frame)
    step = max(1, len(frames) // max(1, clients))
    processes = [spawn.Process(target=_client, args=(
        endpoint, frames[n * step:] + frames[:n * step], seconds, int(reply_timeout * 1000),
        ready, go, start, results),
        daemon=True) for n in range(clients)]
    for process in processes:
        process.start()
    gathered = []
    try:
        for _ in range(clients):
            ready.get(timeout=START_SECONDS)
        start.value = time.perf_counter() + START_DELAY_SECONDS
        go.set()
        deadline = start.value + seconds + reply_timeout + 30
        while len(gathered) < clients:
            gathered.append(results.get(timeout=max(0.1, deadline - time.perf_counter())))
    except queue.Empty:
        raise RuntimeError(f"only {len(gathered)} of {clients} lean clients reported") from None
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
    replies = sum(r for r, _, _ in gathered)
    cpu = sum(c for _, _, c in gathered)
    return LeanResult(clients, seconds, replies, sum(t for _, t, _ in gathered),
                      round(cpu / replies * 1e6, 1) if replies else None, loop)
