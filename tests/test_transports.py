"""The catalog over gRPC and HTTP (`serve --transport grpc|http`): the same replies as over
ZeroMQ, coded errors for bad input, and the server still serving afterwards. Real servers on
random loopback ports, real sockets; the conversions are also tested without any."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from libsrv.process import ServerProcess
from libsrv.protocol import MAX_FRAME_BYTES, Action, Code
from libsrv.transports import library_pb2
from libsrv.transports.callers import CallFailed, GrpcCaller, HttpCaller, caller_for
from libsrv.transports.grpc_messages import (
    REQUEST_TYPES,
    RPCS,
    reply_message,
    reply_object,
    request_fields,
    request_message,
)
from libsrv.transports.http_messages import STATUS, request_frame
from libsrv_bench.transports import code_lines
from tests.helpers import ROOT, SHIPPED_CATALOG, client_for

pytestmark = pytest.mark.fast

QUIJOTE = "9788437604947"
TRANSPORTS = ["grpc", "http"]


# ---------------------------------------------------------------- without sockets


def test_every_action_has_an_rpc_and_every_code_a_status() -> None:
    assert set(RPCS.values()) == set(Action)
    assert set(STATUS) == set(Code)


def test_a_request_message_gives_the_fields_a_json_request_has() -> None:
    message = request_message(Action.QUERY_TITLE, {"title": "Quijote", "limit": 5,
                                                   "borrower": "ignored", "id": None})
    assert request_fields(message) == {"title": "Quijote", "limit": 5}  # offset and id unset
    assert isinstance(message, REQUEST_TYPES[Action.QUERY_TITLE])


def test_a_reply_object_goes_through_a_reply_message_unchanged() -> None:
    book = {"ISBN": QUIJOTE, "titulo": "Don Quijote", "autores": ["Cervantes"],
            "estado": "prestado", "prestatario": "Ana", "fecha_prestamo": "2026-12-01",
            "fecha_devolucion": None}
    reply = {"success": True, "code": "OK", "message": "m", "book": book, "books": [book],
             "found": True, "id": "r-1", "stats": {"requests": 3, "by_code": {"OK": 3}}}
    assert reply_object(reply_message(reply)) == reply


def test_an_http_request_becomes_the_zeromq_request_with_the_paths_action() -> None:
    assert json.loads(request_frame("loan_isbn", b'{"isbn": "1", "action": "ping"}')) == {
        "isbn": "1", "action": "loan_isbn"}
    assert json.loads(request_frame("ping", b"  ")) == {"action": "ping"}
    for body in (b"[1, 2]", b"not json", b'"text"'):  # passed on for the service to refuse
        assert request_frame("ping", body) == body


def test_the_committed_grpc_stubs_are_what_the_proto_makes() -> None:
    pytest.importorskip("grpc_tools")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "grpc_stubs.py"),
                             "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- real servers


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One ZeroMQ, one gRPC and one HTTP server, two workers each, on copies of one catalog."""
    started: dict[str, ServerProcess] = {}
    try:
        for transport in ("zmq", *TRANSPORTS):
            db = tmp_path_factory.mktemp(transport) / "catalog.json"
            shutil.copy(SHIPPED_CATALOG, db)
            started[transport] = ServerProcess(db, workers=2,
                                               options={"transport": transport}).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def zmq_call(server: ServerProcess, action: Action, **fields: object) -> dict:
    with client_for(server) as client:
        return client.request(action, **{"id": None, **fields}).raw  # no id unless given


SCENARIO = [  # the class's scenario: each outcome once, every reply compared
    (Action.QUERY_ISBN, {"isbn": QUIJOTE}),
    (Action.LOAN_ISBN, {"isbn": QUIJOTE, "borrower": "Ana", "id": "w-1"}),
    (Action.LOAN_ISBN, {"isbn": QUIJOTE, "borrower": "Luis"}),
    (Action.LOAN_ISBN, {"isbn": QUIJOTE, "borrower": "Ana", "id": "w-1"}),  # a retry: same reply
    (Action.RETURN_ISBN, {"isbn": QUIJOTE}),
    (Action.RETURN_ISBN, {"isbn": QUIJOTE}),
    (Action.QUERY_TITLE, {"title": "quijote"}),
    (Action.LOAN_TITLE, {"title": "Don Quijote de la Mancha", "borrower": "Eva"}),
    (Action.QUERY_ISBN, {"isbn": "9780000000002"}),
    (Action.QUERY_ISBN, {"isbn": "12-34"}),
    (Action.CATALOG, {"offset": 2, "limit": 3}),
    (Action.RETURN_ISBN, {"isbn": QUIJOTE}),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_reply_is_the_one_zeromq_gives(servers: dict[str, ServerProcess],
                                             transport: str) -> None:
    caller = caller_for(servers[transport].endpoint)
    try:
        for action, fields in SCENARIO:
            if "id" in fields:  # the ZeroMQ server remembers ids: each run has its own
                fields = {**fields, "id": f"{fields['id']}-{transport}"}
            expected = zmq_call(servers["zmq"], action, **fields)
            got = caller.call(action, **fields)
            assert got == expected, (action, fields)
    finally:
        caller.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ping_and_stats_say_what_serves(servers: dict[str, ServerProcess],
                                        transport: str) -> None:
    caller = caller_for(servers[transport].endpoint)
    try:
        pong = caller.call(Action.PING)
        stats = caller.call(Action.STATS)["stats"]
    finally:
        caller.close()
    assert pong["code"] == "OK" and pong["serving"] == 2 and pong["worker"] in (1, 2)
    assert stats["serving"] == 2 and len(set(stats["worker_pids"])) == 2
    assert stats["requests"] >= 1


BAD_BODIES = [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"isbn": ""}', "'isbn' is empty"),
    (b'{"isbn": 5}', "'isbn'"),
    (b'{"borrower": "Ana"}', "'isbn'"),
    (b'{"isbn": "1", "v": 9}', "version"),
    (b"\xff\xfe{}", "UTF-8"),
]


@pytest.mark.parametrize(("body", "said"), BAD_BODIES)
def test_http_bad_bodies_get_a_coded_400_and_change_nothing(
        servers: dict[str, ServerProcess], body: bytes, said: str) -> None:
    caller = HttpCaller(servers["http"].endpoint)
    try:
        before = caller.call(Action.QUERY_ISBN, isbn=QUIJOTE)
        status, reply = caller.post("/loan_isbn", body)
        after = caller.call(Action.QUERY_ISBN, isbn=QUIJOTE)
    finally:
        caller.close()
    answer = json.loads(reply)
    assert status == 400 and answer["code"] == "BAD_REQUEST", answer
    assert said in answer["message"], answer["message"]
    assert after == before


def test_http_refuses_what_is_not_a_post_of_a_known_action(
        servers: dict[str, ServerProcess]) -> None:
    caller = HttpCaller(servers["http"].endpoint)
    try:
        status, unknown = caller.post("/borrow", b"{}")
        big_status, big = caller.post("/ping", b"x" * (MAX_FRAME_BYTES + 1))
        caller.close()  # the server may close a connection whose body it did not read
        connection = http.client.HTTPConnection(caller.host, caller.port, timeout=5)
        connection.request("GET", "/query_isbn")
        response = connection.getresponse()
        get_status, got = response.status, json.loads(response.read())
        connection.close()
        assert caller.call(Action.PING)["code"] == "OK"  # still serving
    finally:
        caller.close()
    assert status == 400 and "'borrow'" in json.loads(unknown)["message"]
    assert big_status == 400 and json.loads(big)["code"] == "BAD_REQUEST"
    assert get_status == 400 and "POST" in got["message"] and got["code"] == "BAD_REQUEST"


def test_grpc_bad_input_gets_a_coded_reply_and_garbage_a_status(
        servers: dict[str, ServerProcess]) -> None:
    caller = GrpcCaller(servers["grpc"].endpoint)
    try:
        before = caller.call(Action.QUERY_ISBN, isbn=QUIJOTE)
        blank = caller.call(Action.LOAN_ISBN, isbn="", borrower="Ana")
        spaces = caller.call(Action.LOAN_TITLE, title="Don Quijote de la Mancha", borrower=" ")
        raw = caller.channel.unary_unary("/libsrv.Library/LoanIsbn")
        with pytest.raises(grpc.RpcError) as garbage:
            raw(b"\xff\xff\xff\x0fnot a message", timeout=5)
        unimplemented = caller.channel.unary_unary("/libsrv.Library/Borrow")
        with pytest.raises(grpc.RpcError) as unknown:
            unimplemented(library_pb2.Empty().SerializeToString(), timeout=5)
        after = caller.call(Action.QUERY_ISBN, isbn=QUIJOTE)
    finally:
        caller.close()
    assert blank["code"] == "BAD_REQUEST" and "'isbn' is empty" in blank["message"]
    assert spaces["code"] == "BAD_REQUEST"
    assert garbage.value.code() == grpc.StatusCode.INTERNAL
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert after == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_is_not_there_fails_the_call_in_time(transport: str) -> None:
    caller = caller_for(f"{transport}://127.0.0.1:9", timeout=2)  # the discard port: refused
    try:
        with pytest.raises(CallFailed):
            caller.call(Action.PING)
    finally:
        caller.close()


def test_a_grpc_or_http_server_needs_no_curve(tmp_path: Path) -> None:
    from libsrv.config import ConfigError, ServerConfig

    with pytest.raises(ConfigError, match="curve"):
        ServerConfig(transport="grpc", curve=str(tmp_path))
    with pytest.raises(ConfigError, match="transport"):
        ServerConfig(transport="rmi")


def test_the_class_gateway_forwards_and_says_when_the_server_is_gone(
        servers: dict[str, ServerProcess], catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=0) as direct:
        gateway = ServerProcess("", command=[sys.executable, "-m", "libsrv.transports.gateway",
                                             "--to", direct.endpoint, "--timeout", "1"])
        with gateway:
            caller = HttpCaller(gateway.endpoint)
            try:
                found = caller.call(Action.QUERY_ISBN, isbn=QUIJOTE)
                status, bad = caller.post("/loan_isbn", b"not json")
                direct.stop()
                status_gone, gone = caller.post("/ping", b"")
            finally:
                caller.close()
    assert found == zmq_call(servers["zmq"], Action.QUERY_ISBN, isbn=QUIJOTE)
    assert status == 400 and json.loads(bad)["code"] == "BAD_REQUEST"
    assert status_gone == 500 and json.loads(gone)["code"] == "INTERNAL"
    assert "no reply from the server" in json.loads(gone)["message"]


CLIENTS = {"zmq": "zmq_client.py", "http": "http_client.py", "grpc": "grpc_client.py"}


@pytest.mark.parametrize("transport", list(CLIENTS))
def test_the_documented_client_gets_its_book(servers: dict[str, ServerProcess],
                                             transport: str) -> None:
    endpoint = servers[transport].endpoint
    if transport == "grpc":
        endpoint = endpoint.removeprefix("grpc://")
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "clients" / CLIENTS[transport]),
                             endpoint, QUIJOTE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["code"] == "OK" and reply["book"]["ISBN"] == QUIJOTE


def test_the_docs_give_each_clients_lines_of_code() -> None:
    docs = (ROOT / "docs" / "transports.md").read_text(encoding="utf-8")
    lines = {t: code_lines(ROOT / "docs" / "clients" / f) for t, f in CLIENTS.items()}
    proto = code_lines(ROOT / "libsrv" / "transports" / "library.proto")
    assert f"zmq_client.py) | {lines['zmq']} |" in docs
    assert f"http_client.py) | {lines['http']} |" in docs
    assert f"| {lines['grpc']} + {proto} |" in docs
