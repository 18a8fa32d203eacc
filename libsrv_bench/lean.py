"""An independent load generator, as lean as one can be: one process per client, one REQ socket
each, the same request frame sent again as soon as its reply is in, nothing recorded but a count.

It shares no code with `libsrv_bench.load` on purpose: it is the calibration that tells whether
bench's own generator sets the pace of what it measures. `compare` runs it against the
reference in every round (the "calibration" row); `lean_throughput` is its Python API.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Any

import zmq

from libsrv.protocol import Action, encode_request

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

    @property
    def throughput(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0


def _client(endpoint: str, frame: bytes, seconds: float, ready: Any, go: Any, start: Any,
            results: Any) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)
    replies = timeouts = 0
    ready.put(True)
    go.wait()
    start_at = start.value
    while time.perf_counter() < start_at:
        time.sleep(0.0005)
    cpu = time.process_time()
    end = start_at + seconds
    while time.perf_counter() < end:
        sock.send(frame)
        if not sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN):
            timeouts += 1
            break  # a REQ socket without its reply cannot send again; this client is done
        sock.recv()
        replies += 1
    results.put((replies, timeouts, time.process_time() - cpu))
    sock.close()
    ctx.term()


def lean_throughput(endpoint: str, clients: int, seconds: float, *,
                    frame: bytes = DEFAULT_REQUEST) -> LeanResult:
    """Drive `endpoint` from `clients` processes for `seconds`, all starting at one instant
    once every process is up; replies per second."""
    spawn = multiprocessing.get_context("spawn")
    ready, results, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    start = spawn.RawValue("d", 0.0)
    processes = [spawn.Process(target=_client, args=(endpoint, frame, seconds, ready, go,
                                                     start, results), daemon=True)
                 for _ in range(clients)]
    for process in processes:
        process.start()
    gathered = []
    try:
        for _ in range(clients):
            ready.get(timeout=START_SECONDS)
        start.value = time.perf_counter() + START_DELAY_SECONDS
        go.set()
        deadline = start.value + seconds + REPLY_TIMEOUT_MS / 1000 + 30
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
                      round(cpu / replies * 1e6, 1) if replies else None)
