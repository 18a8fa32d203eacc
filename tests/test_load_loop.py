"""The load generator's compiled loop (libsrv_bench/client_loop.c, driven by
libsrv_bench/load_compiled.py) does what the Python loop does: the same requests from the same
seed, every reply noted with the bytes it had, the schedule kept (closed loop, think time, open
loop), timeouts retried on a fresh socket or given up; and the lean generator's C client counts
as its Python one does. Real REQ sockets on loopback against a ROUTER in a thread of the test.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from multiprocessing.sharedctypes import RawArray
from typing import Any

import pytest
import zmq

from libsrv_bench import client_loop, load, load_compiled
from libsrv_bench.dialects import dialect_named
from libsrv_bench.lean import lean_throughput
from libsrv_bench.load import LoadSpec, _ClientPool, client_pool
from libsrv_bench.workloads import KeySpace, workload_named

pytestmark = pytest.mark.fast

Answer = Callable[[bytes, int], bytes | None]  # (request, copies seen) -> reply, None: drop it


def _compiled_or_skip() -> None:
    try:
        client_loop.load()
    except client_loop.LoopUnavailable as error:
        pytest.skip(f"no compiled load loop here: {error}")


@pytest.fixture(params=["compiled", "python"])
def each_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "compiled":
        _compiled_or_skip()
    monkeypatch.setenv(client_loop.LOOP_VARIABLE, request.param)
    return request.param


class Router:
    """A ROUTER on a random loopback port, answering each request by `answer` from a thread
    (a reply of None is dropped: the request times out)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.seen: dict[bytes, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            peer, empty, request = self.sock.recv_multipart()
            copies = self.seen[request] = self.seen.get(request, 0) + 1
            reply = self.answer(request, copies)
            if reply is not None:
                self.sock.send_multipart([peer, empty, reply])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the test's router did not stop"
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def router() -> Iterator[Callable[[Answer], Router]]:
    made: list[Router] = []

    def make(answer: Answer) -> Router:
        made.append(Router(answer))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _echo(request: bytes, copies: int) -> bytes:
    return request


def _stamped(request: bytes, copies: int) -> bytes:
    """The request back, with when the server read it (CLOCK_MONOTONIC, as the clients')."""
    return b"%d %s" % (time.perf_counter_ns(), request)


def _run(spec: LoadSpec, count: int | None = None) -> _ClientPool:
    """Drive `spec`'s clients from this process (in-process, so monkeypatches hold), as a
    load process does; the pool, with its answers."""
    pool = client_pool(spec, 0, count or spec.clients, RawArray("q", 3), 0)
    pool.run(time.perf_counter_ns())
    return pool


def _spec(endpoint: str, **settings: Any) -> LoadSpec:
    base: dict[str, Any] = {"clients": 4, "workload": workload_named("read-mostly"),
                            "keys": KeySpace(50, True), "duration": None, "requests": 400,
                            "warmup": 0.0, "timeout": 5.0, "run_id": "t"}
    return LoadSpec(endpoint, **{**base, **settings})


def _sent_frame(spec: LoadSpec, answer: tuple[Any, ...]) -> bytes:
    _, action, fields, *_, rid = answer
    return dialect_named(spec.dialect).request(action, fields, rid)


def test_both_loops_send_the_seeds_requests_and_note_each_reply_as_it_came(router) -> None:
    """Each reply is the one its request got, and the server read each request between the
    instants noted as its send and its reply (the verifier's premise)."""
    _compiled_or_skip()
    target = router(_stamped)
    spec = _spec(target.endpoint)
    by_loop = {}
    for loop in ("compiled", "python"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(client_loop.LOOP_VARIABLE, loop)
            pool = _run(spec)
        assert pool.loop == loop
        assert len(pool.answers) == 400
        for answer in pool.answers:
            seen, _, request = answer[6].partition(b" ")
            assert request == _sent_frame(spec, answer)  # its own request back
            assert answer[4] <= int(seen) <= answer[5]
            assert answer[7] == 1
        by_loop[loop] = sorted((a[0], a[8], a[1], tuple(a[2].items())) for a in pool.answers)
    assert by_loop["compiled"] == by_loop["python"]


def test_requests_drawn_during_the_warm_up_keep_each_clients_sequence(router,
                                                                      monkeypatch) -> None:
    """Nearly nothing is drawn before the run, so the warm-up's thread draws the rest while
    the C loop sends; each client's requests are still its seed's, in order, none twice."""
    _compiled_or_skip()
    monkeypatch.setenv(client_loop.LOOP_VARIABLE, "compiled")
    monkeypatch.setattr(load, "PREDRAW_SECONDS", 0.0)
    # small batches: every client's sequence crosses several, however slow the machine
    monkeypatch.setattr(load, "DRAW_BATCH", 4)
    threads: list[str] = []
    original = load._ClientPool._draw_batch

    def noted(self: load._ClientPool, client: load._Client) -> list[Any]:
        threads.append(threading.current_thread().name)
        return original(self, client)

    monkeypatch.setattr(load._ClientPool, "_draw_batch", noted)
    spec = _spec(router(_echo).endpoint, requests=None, duration=0.3, warmup=0.5)
    pool = _run(spec)
    assert isinstance(pool, load_compiled.CompiledPool)
    assert "draw-ahead" in threads, "the warm-up's thread drew nothing"
    for index in range(spec.clients):
        steps = sorted(int(a[8].rsplit("-", 1)[1]) for a in pool.answers if a[0] == index)
        assert steps == list(range(1, len(steps) + 1)) and len(steps) > load.DRAW_BATCH
        fresh = load._Client(index, spec.seed)
        expected = []
        for _ in steps:
            expected.append(spec.workload.next(fresh.rng, index, fresh.step, spec.keys))
            fresh.step += 1
        sent = [(a[1], a[2]) for a in sorted(
            (a for a in pool.answers if a[0] == index), key=lambda a: int(a[8].rsplit("-", 1)[1]))]
        assert sent == expected


def test_replies_past_the_records_and_the_arena_grow_them(router, monkeypatch) -> None:
    _compiled_or_skip()
    monkeypatch.setenv(client_loop.LOOP_VARIABLE, "compiled")
    monkeypatch.setattr(load_compiled, "RECORDS_AT_FIRST", 3)
    monkeypatch.setattr(load_compiled, "ARENA_AT_FIRST", 64)

    def padded(request: bytes, copies: int) -> bytes:
        return request + b" " * (zlib.crc32(request) % 150_000)

    spec = _spec(router(padded).endpoint, requests=120)
    pool = _run(spec)
    assert isinstance(pool, load_compiled.CompiledPool)
    assert len(pool.answers) == 120
    for answer in pool.answers:
        sent = _sent_frame(spec, answer)
        assert answer[6] == padded(sent, 1)
    assert len(pool.records_array) >= 120 and len(pool.arena) > 64


def test_a_reply_of_several_frames_is_read_whole_by_the_compiled_loop(monkeypatch) -> None:
    """The first frame is kept and the others are read, so the socket can send again."""
    _compiled_or_skip()
    monkeypatch.setenv(client_loop.LOOP_VARIABLE, "compiled")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    endpoint = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if sock.poll(50):
                peer, empty, request = sock.recv_multipart()
                sock.send_multipart([peer, empty, request, b"more", b"and more"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        spec = _spec(endpoint, clients=2, requests=50)
        pool = _run(spec)
        assert len(pool.answers) == 50
        assert all(answer[6] == _sent_frame(spec, answer) for answer in pool.answers)
    finally:
        stop.set()
        thread.join(10)
        sock.close()
        ctx.term()


@pytest.mark.parametrize("retries", [0, 1])
def test_a_silent_server_costs_a_retry_on_a_fresh_socket_or_a_timeout(router, each_loop,
                                                                     retries) -> None:
    """The first copy of every request is dropped: one retry gets every reply (same id,
    second attempt); without retries each request times out."""
    target = router(lambda request, copies: request if copies > 1 else None)
    pool = _run(_spec(target.endpoint, clients=3, requests=9, timeout=0.2, retries=retries))
    assert len(pool.answers) == 9
    if retries:
        assert all(a[6] is not None and a[7] == 2 for a in pool.answers)
        assert all(copies == 2 for copies in target.seen.values())
        assert pool.given_up == 0
    else:
        assert all(a[6] is None and a[7] == 1 for a in pool.answers)
        assert pool.given_up == 9
        # each timed out no sooner than the timeout after it was sent
        assert all(a[5] - a[4] >= 0.2e9 for a in pool.answers)


def test_an_open_loop_keeps_its_intended_times(router, each_loop) -> None:
    target = router(_echo)
    spec = _spec(target.endpoint, clients=2, requests=None, duration=0.5, rate=200.0)
    pool = _run(spec)
    interval = int(spec.clients / spec.rate * 1e9)
    for index in (0, 1):
        mine = sorted(a[3] for a in pool.answers if a[0] == index)
        assert len(mine) >= 40
        assert {b - a for a, b in itertools.pairwise(mine)} == {interval}
        # nothing sent before its intended time
    assert all(a[4] >= a[3] for a in pool.answers)


def test_think_time_separates_a_reply_from_the_next_request(router, each_loop) -> None:
    target = router(_echo)
    think = 0.02
    pool = _run(_spec(target.endpoint, clients=2, requests=20, think=think))
    for index in (0, 1):
        mine = sorted((a[4], a[5]) for a in pool.answers if a[0] == index)
        assert len(mine) == 10
        for (_, replied), (sent, _) in itertools.pairwise(mine):
            assert sent - replied >= think * 1e9


def test_without_a_compiler_auto_is_python_and_compiled_is_an_error(router, monkeypatch,
                                                                   tmp_path) -> None:
    from libsrv_bench.cli import summary_warnings
    from libsrv_bench.load import LoadResult
    from libsrv_bench.results import load_figures

    target = router(_echo)
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    client_loop.load.cache_clear()
    try:
        with pytest.raises(client_loop.LoopUnavailable, match="no C compiler"):
            client_loop.build()
        monkeypatch.setenv(client_loop.LOOP_VARIABLE, "auto")
        library, said = client_loop.chosen()
        assert library is None and "no C compiler" in said
        spec = _spec(target.endpoint, clients=2, requests=10)
        done = client_pool(spec, 0, 2, RawArray("q", 3), 0).run(time.perf_counter_ns())
        assert done.loop == "python" and "no C compiler" in done.loop_note
        # the run says so: the slower loop drove it without being asked
        figures = load_figures(LoadResult(done.records, *[None] * 4, None, 1, [1.0], [1.0],
                                          [0.0], [done.loop], [done.loop_note]), 10)
        assert "no C compiler" in figures["loop_note"]
        warnings = summary_warnings({"load": figures})
        assert any("no C compiler" in w and "Python loop" in w for w in warnings), warnings
        monkeypatch.setenv(client_loop.LOOP_VARIABLE, "python")
        assert _run(_spec(target.endpoint, clients=2, requests=10)).loop_note == ""  # asked
        monkeypatch.setenv(client_loop.LOOP_VARIABLE, "compiled")
        with pytest.raises(client_loop.LoopUnavailable, match="cannot be used"):
            client_loop.chosen()
        monkeypatch.setenv(client_loop.LOOP_VARIABLE, "sometimes")
        with pytest.raises(client_loop.LoopUnavailable, match="expected one of"):
            client_loop.chosen()
    finally:
        client_loop.load.cache_clear()


def test_the_lean_generator_counts_replies_on_either_loop(router, each_loop) -> None:
    target = router(_echo)
    result = lean_throughput(target.endpoint, 2, 0.5)
    assert result.loop == each_loop
    assert result.replies > 20 and result.timeouts == 0
    assert sum(target.seen.values()) >= result.replies


def test_the_lean_generator_stops_a_client_whose_reply_never_comes(router, each_loop) -> None:
    target = router(lambda request, copies: None)
    result = lean_throughput(target.endpoint, 2, 0.5, reply_timeout=0.3)
    assert result.replies == 0 and result.timeouts == 2
