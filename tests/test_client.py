"""The Lazy Pirate client against real sockets."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import zmq

from libsrv.cli import main as cli_main
from libsrv.client import LibraryClient, ServerUnreachable
from libsrv.process import ServerProcess
from libsrv.protocol import Code, encode_reply, make_reply
from tests.helpers import free_port

pytestmark = pytest.mark.fast


def test_no_server_raises_one_clear_error_and_the_client_recovers(catalog_file: Path) -> None:
    port = free_port()
    lib = LibraryClient(f"tcp://127.0.0.1:{port}", timeout=0.2, retries=2)
    with pytest.raises(ServerUnreachable, match="after 3 attempt"):
        lib.ping()
    with ServerProcess(catalog_file, workers=0, port=port):
        lib.timeout = 5.0
        assert lib.ping().code == Code.OK  # the same object works once the server is up
        assert lib.query_isbn("9788437604947").found
    lib.close()


def test_a_lost_reply_is_retried_with_the_same_id(ctx: zmq.Context) -> None:
    rep = ctx.socket(zmq.ROUTER)  # a peer that ignores the first request and answers the second
    rep.linger = 0
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    seen: list[dict] = []

    def peer() -> None:
        for attempt in range(2):
            if not rep.poll(10_000):
                return
            envelope = rep.recv_multipart()
            request = json.loads(envelope[-1])
            seen.append(request)
            if attempt == 1:
                reply = make_reply(Code.OK, "pong", request_id=request["id"])
                rep.send_multipart([*envelope[:-1], encode_reply(reply)])

    thread = threading.Thread(target=peer)
    thread.start()
    with LibraryClient(f"tcp://127.0.0.1:{port}", timeout=0.5, retries=3, context=ctx) as lib:
        reply = lib.loan_isbn("9788437604947", "Ana")
    thread.join(15)
    assert reply.success and len(seen) == 2
    assert seen[0] == seen[1] and seen[0]["id"] == reply.id


def test_config_file_points_the_client_at_the_server(tmp_path: Path, catalog_file: Path) -> None:
    with ServerProcess(catalog_file, workers=0) as server:
        port = int(server.endpoint.rsplit(":", 1)[1])
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"server": {"host": "0.0.0.0", "port": port},
                                      "client": {"server_host": "127.0.0.1",
                                                 "server_port": port}}))
        with LibraryClient.from_config(config, timeout=5) as lib:
            assert lib.ping().success


def test_cli_call_prints_the_reply_and_sets_the_exit_status(
        catalog_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ServerProcess(catalog_file, workers=0) as server:
        def call(*words: str) -> tuple[int, str, str]:  # the CLI in this process
            code = cli_main(["call", *words, "--endpoint", server.endpoint, "--timeout", "5"])
            out, err = capsys.readouterr()
            return code, out, err
        code, out, _ = call("loan-isbn", "9788437604947", "Ana López")
        assert code == 0 and json.loads(out)["book"]["prestatario"] == "Ana López"
        code, out, _ = call("loan-isbn", "9788437604947", "Eva")
        assert code == 1 and json.loads(out)["code"] == "UNAVAILABLE"
        code, out, err = call("loan-isbn", "9788437604947")
        assert (code, out) == (2, "") and "takes 2 value(s): isbn borrower" in err
    code = cli_main(["call", "ping", "--endpoint", server.endpoint, "--timeout", "0.3"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ")  # the server is gone: a message, no trace
