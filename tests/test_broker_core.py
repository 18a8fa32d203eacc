"""The broker's decisions without sockets or processes (libsrv.broker_core): credits, re-sends,
MAX_ATTEMPTS, stuck kills, lock waits, spoofed control, flood protection. Milliseconds each."""

from __future__ import annotations

import itertools
import json

import pytest

from libsrv.broker_core import (
    CONTROL,
    MAX_ATTEMPTS,
    MAX_QUICK_DEATHS,
    READY,
    STOP_GRACE_SECONDS,
    TRANSITIONS,
    WAITING,
    WORKER_CREDITS,
    BrokerState,
    Event,
    Phase,
    WorkersKeepDying,
    ready_message,
)
from libsrv.envelope import MAX_HOPS
from libsrv.peers import PEER_BACKLOG_BYTES, PEER_IN_PROGRESS

pytestmark = pytest.mark.fast

TIMEOUT = 10.0


def _keys():
    return (f"k{n}".encode() for n in itertools.count())


def _state(workers: int = 2, *, serving: bool = True) -> tuple[BrokerState, list[tuple]]:
    counted: list[tuple] = []
    state = BrokerState(workers, worker_timeout=TIMEOUT, keys=_keys(),
                        count=lambda action, code: counted.append((action, code)))
    state.start()
    for row, _ in state.take().spawn:
        state.worker_started(row, f"w{row}".encode(), 0.0)
        if serving:
            state.from_worker([f"w{row}".encode(), *ready_message()], 0.0)
    return state, counted


def _request(peer: bytes, n: int = 0, action: str = "ping") -> list[bytes]:
    return [peer, b"", json.dumps({"action": action, "id": f"r{n}"}).encode()]


def _reply_to(sent: list[bytes], body: bytes = b"{}") -> list[bytes]:
    """The worker's reply to a message the broker sent it: [worker, peer, key, reply]."""
    worker, peer, key, _ = sent
    return [worker, peer, key, body]


def test_a_request_goes_to_the_worker_with_most_room_and_its_reply_back() -> None:
    state, _ = _state()
    state.from_client(_request(b"c1"))
    state.tick(1.0)
    sent = state.take().to_workers
    assert len(sent) == 1 and sent[0][1] == b"c1"
    assert state.credits == 2 * WORKER_CREDITS - 1
    state.from_worker(_reply_to(sent[0], b"pong"), 1.1)
    assert state.take().to_clients == [[b"c1", b"", b"pong"]]
    assert state.credits == 2 * WORKER_CREDITS


def test_requests_wait_in_order_while_no_worker_has_room() -> None:
    state, _ = _state(1)
    for n in range(WORKER_CREDITS + 2):
        state.from_client(_request(f"c{n}".encode(), n))
    state.tick(1.0)
    sent = state.take().to_workers
    assert [m[1] for m in sent] == [f"c{n}".encode() for n in range(WORKER_CREDITS)]
    assert state.room == -2  # the loop reads nothing more from the clients
    state.from_worker(_reply_to(sent[0]), 1.1)
    state.tick(1.1)
    assert [m[1] for m in state.take().to_workers] == [f"c{WORKER_CREDITS}".encode()]


@pytest.mark.parametrize("name", [READY, WAITING, b"", b"w0"])
def test_a_client_named_like_control_or_a_worker_is_just_a_client(name: bytes) -> None:
    state, _ = _state(1)
    peer = name or b"\x00anon"
    state.from_client(_request(peer))
    state.tick(1.0)
    sent = state.take().to_workers[0]
    state.from_worker(_reply_to(sent, b"pong"), 1.1)
    assert state.take().to_clients == [[peer, b"", b"pong"]]
    assert state.credits == WORKER_CREDITS and state.violations == 0


def test_a_second_ready_changes_no_credits() -> None:
    state, _ = _state(1)
    state.from_worker([b"w0", CONTROL, READY, b"1000"], 1.0)
    assert state.credits == WORKER_CREDITS
    assert state.violations == 1


def test_what_a_starting_worker_sends_out_of_turn_is_ignored() -> None:
    state, _ = _state(1, serving=False)
    state.from_worker([b"w0", b"c1", b"k0", b"{}"], 1.0)  # a reply to nothing it was given
    state.from_worker([b"w0", CONTROL, WAITING], 1.0)
    state.from_worker([b"w0", b"odd"], 1.0)
    assert state.violations == 3
    assert not state.take() and state.workers[b"w0"].phase is Phase.STARTING


def test_a_reply_under_a_key_the_worker_does_not_hold_is_ignored() -> None:
    state, _ = _state(1)
    state.from_client(_request(b"c1"))
    state.tick(1.0)
    sent = state.take().to_workers[0]
    state.from_worker([b"w0", b"c1", b"forged", b"{}"], 1.1)
    assert not state.take().to_clients and state.violations == 1
    state.from_worker(_reply_to(sent), 1.2)
    assert len(state.take().to_clients) == 1


@pytest.mark.parametrize(("phase", "event"), [
    (p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS])
def test_every_event_outside_the_table_is_a_violation(phase: Phase, event: Event) -> None:
    state, _ = _state(1)
    worker = state.workers[b"w0"]
    worker.phase = phase
    assert not state._move(worker, event)
    assert worker.phase is phase and state.violations == 1


def test_a_dead_workers_requests_are_sent_again_in_order_then_answered_internal() -> None:
    state, counted = _state(2)
    for n in range(3):
        state.from_client(_request(b"c%d" % n, n))
    state.tick(1.0)
    first = state.take().to_workers
    victim = first[0][0]
    held = [m[1] for m in first if m[0] == victim]
    state.worker_died(victim, 2.0)
    assert state.take().spawn == [(int(victim[1:]), True)]
    state.tick(2.0)
    again = state.take().to_workers
    assert [m[1] for m in again] == held
    assert {m[2] for m in again} == {m[2] for m in first if m[0] == victim}  # same keys
    # the survivor dies too while holding them: MAX_ATTEMPTS reached, INTERNAL
    assert MAX_ATTEMPTS == 2
    state.worker_died(again[0][0], 3.0)
    replies = state.take().to_clients
    assert sorted(r[0] for r in replies) == sorted(held)
    assert all(json.loads(r[2])["code"] == "INTERNAL" for r in replies)
    assert counted.count(("ping", "INTERNAL")) == len(held)


def test_a_silent_worker_is_killed_but_heartbeats_keep_it() -> None:
    state, _ = _state(1)
    state.from_client(_request(b"c1"))
    state.tick(0.0)
    state.take()
    state.tick(TIMEOUT - 1)
    state.from_worker([b"w0", CONTROL, WAITING], TIMEOUT - 1)  # waiting for a lock
    state.tick(TIMEOUT + 5)
    assert not state.take().kill
    state.tick(2 * TIMEOUT)
    assert state.take().kill == [b"w0"]
    assert state.workers[b"w0"].phase is Phase.KILLED and state.credits == 0
    state.tick(2 * TIMEOUT + 1)
    assert not state.take().kill  # killed once


def test_a_killed_workers_late_reply_still_goes_back_and_it_gets_nothing_more() -> None:
    state, _ = _state(2)
    state.from_client(_request(b"c1"))
    state.tick(0.0)
    sent = state.take().to_workers[0]
    state.tick(TIMEOUT + 1)
    assert state.take().kill == [sent[0]]
    state.from_worker(_reply_to(sent, b"late"), TIMEOUT + 1)
    assert state.take().to_clients == [[b"c1", b"", b"late"]]
    assert state.credits == WORKER_CREDITS  # only the other worker's
    for n in range(3):
        state.from_client(_request(b"d%d" % n, n))
    state.tick(TIMEOUT + 2)
    assert {m[0] for m in state.take().to_workers} == {b"w0", b"w1"} - {sent[0]}


def test_a_request_of_several_frames_is_refused_by_the_broker_itself() -> None:
    state, counted = _state(1)
    state.from_client([b"c1", b"", b"{}", b"more"], extra_frames=400)
    state.tick(1.0)
    actions = state.take()
    assert not actions.to_workers
    reply = json.loads(actions.to_clients[0][2])
    assert reply["code"] == "BAD_REQUEST" and "402" in reply["message"]
    assert counted == [("invalid", "BAD_REQUEST")]


@pytest.mark.parametrize("hops", [[b"proxy"], [b"gateway", b"proxy"],
                                  [b"h1", b"h2", b"h3"][:MAX_HOPS]])
def test_a_request_through_proxies_is_answered_along_the_same_route(hops: list[bytes]) -> None:
    """Each ROUTER-DEALER hop in front (zmq.proxy, a gateway) adds a routing frame; a REP
    socket answers along them, and so does the broker."""
    state, _ = _state(1)
    state.from_client([b"c1", *hops, b"", b'{"action": "ping"}'])
    state.tick(1.0)
    sent = state.take().to_workers
    assert [frame for frame in sent[0][3:]] == [b'{"action": "ping"}']
    state.from_worker(_reply_to(sent[0], b"pong"), 1.1)
    assert state.take().to_clients == [[b"c1", *hops, b"", b"pong"]]


def test_a_request_of_several_frames_through_a_proxy_is_refused_along_its_route() -> None:
    state, _ = _state(1)
    state.from_client([b"c1", b"proxy", b"", b"{}", b"more"])
    state.tick(1.0)
    (reply,) = state.take().to_clients
    assert reply[:3] == [b"c1", b"proxy", b""]
    assert json.loads(reply[3])["code"] == "BAD_REQUEST"


def test_more_hops_than_max_hops_or_no_empty_frame_is_no_envelope() -> None:
    state, _ = _state(1)
    state.from_client([b"c1", *[b"hop"] * (MAX_HOPS + 1), b"", b"{}"])
    state.from_client([b"c1", b"a", b"b", b"{}"])
    state.from_client([b"c1", b"proxy", b""])  # an envelope with no request after it
    state.tick(1.0)
    assert not state.take() and state.unanswerable == 3


def test_a_message_without_a_req_envelope_is_dropped() -> None:
    state, _ = _state(1)
    state.from_client([b"c1", b'{"action": "ping"}'])
    state.from_client([b"c1"])
    state.tick(1.0)
    assert not state.take() and state.unanswerable == 2


def test_a_connection_with_many_requests_in_progress_waits_and_loses_none() -> None:
    state, _ = _state(8)  # room for all at once: only the per-connection bound holds them
    total = PEER_IN_PROGRESS + 5
    for n in range(total):
        state.from_client(_request(b"gw", n))
    state.tick(1.0)
    sent = state.take().to_workers
    assert len(sent) == PEER_IN_PROGRESS
    for message in sent[:5]:
        state.from_worker(_reply_to(message), 1.1)
    state.tick(1.1)
    actions = state.take()
    assert len(actions.to_clients) == 5 and len(actions.to_workers) == 5


def test_a_refused_reply_is_kept_and_that_connection_waits() -> None:
    state, _ = _state(2)
    state.from_client(_request(b"slow", 0))
    state.tick(1.0)
    sent = state.take().to_workers[0]
    state.from_worker(_reply_to(sent, b"r0"), 1.1)
    reply = state.take().to_clients[0]
    state.peers.blocked(reply)  # the socket said EAGAIN
    state.from_client(_request(b"slow", 1))
    state.from_client(_request(b"other", 2))
    state.tick(1.2)
    actions = state.take()
    assert actions.to_clients == [reply]  # offered again
    assert [m[1] for m in actions.to_workers] == [b"other"]  # "slow" waits until it reads
    state.tick(1.3)  # this time the socket took it
    assert [m[1] for m in state.take().to_workers] == [b"slow"]


def test_a_connections_backlog_is_bounded_in_bytes() -> None:
    state, _ = _state(1)
    body = b"x" * 1000
    for _ in range(PEER_IN_PROGRESS + PEER_BACKLOG_BYTES // 1000 + 10):
        state.from_client([b"gw", b"", body])
    assert state.peers.refused == 10


def test_a_gone_client_is_forgotten_and_its_late_replies_harm_nothing() -> None:
    state, _ = _state(8)
    for n in range(PEER_IN_PROGRESS + 3):
        state.from_client(_request(b"gw", n))
    state.tick(1.0)
    sent = state.take().to_workers
    state.peers.gone(b"gw")  # the socket said EHOSTUNREACH
    for message in sent:
        state.from_worker(_reply_to(message), 1.1)
    state.tick(1.1)
    assert not state.take().to_workers  # its waiting requests went with it
    state.from_client(_request(b"gw", 99))  # the same routing id, connected again
    state.tick(1.2)
    assert len(state.take().to_workers) == 1


def test_a_worker_that_cannot_start_is_tried_again_later_and_meanwhile_internal() -> None:
    state, counted = _state(1, serving=False)
    state.worker_died(b"w0", 1.0)
    row, _ = state.take().spawn[0]
    delay = state.spawn_failed(row, 1.0)
    assert state.room > 0  # take requests, to answer them
    state.from_client(_request(b"c1"))
    state.tick(1.0 + delay / 2)
    actions = state.take()
    assert json.loads(actions.to_clients[0][2])["code"] == "INTERNAL" and not actions.spawn
    assert counted == [("ping", "INTERNAL")]
    state.tick(1.0 + delay)
    assert state.take().spawn == [(row, False)]
    assert state.spawn_failed(row, 2.0) == 2 * delay


def test_workers_that_keep_dying_before_ready_stop_the_broker() -> None:
    state, _ = _state(1, serving=False)
    with pytest.raises(WorkersKeepDying):
        for n in range(MAX_QUICK_DEATHS + 1):
            identity = f"w0-{n}".encode() if n else b"w0"
            if n:
                state.worker_started(0, identity, float(n))
            state.worker_died(identity, float(n))
            state.take()


def test_a_stopping_broker_takes_and_sends_nothing_and_ends_after_its_grace() -> None:
    state, _ = _state(1)
    state.from_client(_request(b"c1"))
    state.tick(0.0)
    state.take()
    state.from_client(_request(b"c2"))
    state.stop(1.0)
    state.tick(1.0)
    assert state.room == 0 and not state.take().to_workers
    assert not state.done(1.5)
    assert state.done(1.0 + STOP_GRACE_SECONDS + 0.1)


def test_ready_means_every_worker_serves() -> None:
    state, _ = _state(2, serving=False)
    assert not state.all_serving and state.serving == 0
    state.from_worker([b"w0", *ready_message()], 1.0)
    assert not state.all_serving and state.serving == 1
    state.from_worker([b"w1", *ready_message()], 1.0)
    assert state.all_serving
