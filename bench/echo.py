"""The transport's limit: a bare pyzmq echo through the same topology as the server.

``python -m bench echo --workers N`` runs the kit's own broker (the same code, sockets and
process layout as ``libsrv serve``) in front of N workers that answer every request with a
fixed reply frame without parsing it; ``--workers 0`` is a bare REP echo. It prints the same
ready line as the server, so the same harness drives both.
"""

from __future__ import annotations

import argparse
import os
import sys

import zmq

from libsrv.config import ServerConfig
from libsrv.protocol import Code, encode_reply, make_reply
from libsrv.server import HARD_FRAME_LIMIT, READY, StopFlag, run_broker
from libsrv.stats import StatsBoard

ECHO_REPLY = encode_reply(make_reply(Code.OK, "echo"))
POLL_MS = 100


def echo_worker_main(config: ServerConfig, board: StatsBoard, row: int, identity: bytes,
                     backend: str) -> None:
    """A worker that answers every request with ECHO_REPLY (same signature as worker_main)."""
    stop = StopFlag().install()
    board.pids[row] = os.getpid()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(backend)
    sock.send(READY)
    try:
        while not stop:
            if sock.poll(POLL_MS):
                head = sock.recv_multipart()[:2]
                sock.send_multipart([*head, ECHO_REPLY])
    finally:
        sock.close()
        ctx.term()


def run_echo_single(endpoint: str, stop: StopFlag) -> str:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
    sock.bind(endpoint)
    print(f"echo serving on {sock.getsockopt_string(zmq.LAST_ENDPOINT)} (single REP)",
          flush=True)
    try:
        while not stop:
            if sock.poll(POLL_MS):
                sock.recv_multipart()
                sock.send(ECHO_REPLY)
    finally:
        sock.close()
        ctx.term()
    return endpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    config = ServerConfig(host=args.host, port=args.port, workers=args.workers, quiet=True)
    stop = StopFlag().install()
    if args.workers == 0:
        run_echo_single(config.bind_endpoint, stop)
    else:
        run_broker(config, stop, lambda endpoint: print(
            f"echo serving on {endpoint} ({args.workers} echo workers behind the broker)",
            flush=True), worker_entry=echo_worker_main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
