"""The transport's own limits: echo servers that answer every request with a fixed reply frame,
without parsing it, in the topologies the server uses.

``python -m libsrv_bench echo --workers 0`` is a bare REP echo, the limit for ``serve --workers 0``.
``--workers N --via proxy`` (the default) is libzmq's C ``zmq.proxy`` (a ROUTER facing clients,
a DEALER facing workers) in front of N REP echo worker processes: the transport's limit for
``serve --workers N``. ``--via broker`` runs the kit's own broker (the same code, sockets and
process layout as ``libsrv serve``) in front of N echo workers: what the broker itself costs.
Each prints the same ready line as the server, so the same harness drives them all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading

import zmq

from libsrv.broker import serve_dealer
from libsrv.broker_compiled import run_broker
from libsrv.broker_core import ready_message
from libsrv.config import ServerConfig
from libsrv.defaults import DEFAULT_TRANSPORT, TRANSPORT_NAMES
from libsrv.protocol import Code, encode_reply, make_reply
from libsrv.server import HARD_FRAME_LIMIT, StopFlag
from libsrv.service import Handled
from libsrv.stats import StatsBoard

ECHO_REPLY = encode_reply(make_reply(Code.OK, "echo"))
ECHOED = Handled(ECHO_REPLY, "echo", Code.OK)


def _echo(frames: list[bytes], key: bytes | None = None, *,
          wait: float | None = None) -> Handled:
    return ECHOED
POLL_MS = 100
VIA = ("proxy", "broker", "raw")


def echo_worker_main(config: ServerConfig, board: StatsBoard, row: int, identity: bytes,
                     backend: str) -> None:
    """A worker behind the kit's broker that answers every request with ECHO_REPLY (same
    signature and protocol as `libsrv.broker.worker_main`)."""
    stop = StopFlag().install()
    board.pids[row] = os.getpid()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(backend)
    sock.send_multipart(ready_message())
    try:
        serve_dealer(sock, _echo, stop, f"Echo worker {row + 1}")
    finally:
        sock.close()
        ctx.term()


def _rep_echo(sock: zmq.Socket, stop: StopFlag) -> None:
    while not stop:
        if sock.poll(POLL_MS):
            sock.recv_multipart()
            sock.send(ECHO_REPLY)


def rep_echo_worker(backend: str) -> None:
    """A REP echo process behind libzmq's proxy."""
    stop = StopFlag().install()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.connect(backend)
    try:
        _rep_echo(sock, stop)
    finally:
        sock.close()
        ctx.term()


def run_echo_single(endpoint: str, stop: StopFlag) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
    sock.bind(endpoint)
    print(f"echo serving on {sock.getsockopt_string(zmq.LAST_ENDPOINT)} (single REP)",
          flush=True)
    try:
        _rep_echo(sock, stop)
    finally:
        sock.close()
        ctx.term()


def run_echo_proxy(endpoint: str, workers: int, stop: StopFlag) -> None:
    """libzmq's proxy in C between a ROUTER and a DEALER, N REP echo processes behind it."""
    ctx = zmq.Context()
    sockdir = tempfile.mkdtemp(prefix="libsrv-echo-")
    backend_endpoint = f"ipc://{sockdir}/workers"
    frontend, backend = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    control, trigger = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    for sock in (frontend, backend, control, trigger):
        sock.linger = 0
    frontend.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
    control.bind("inproc://echo-control")
    trigger.connect("inproc://echo-control")
    spawn = multiprocessing.get_context("spawn")
    processes = []
    try:
        backend.bind(backend_endpoint)
        frontend.bind(endpoint)
        for _ in range(workers):
            process = spawn.Process(target=rep_echo_worker, args=(backend_endpoint,),
                                    daemon=True)
            process.start()
            processes.append(process)

        def terminate_on_stop() -> None:
            stop.wait()
            trigger.send(b"TERMINATE")

        threading.Thread(target=terminate_on_stop, daemon=True).start()
        print(f"echo serving on {frontend.getsockopt_string(zmq.LAST_ENDPOINT)} (libzmq proxy "
              f"in front of {workers} REP echo workers)", flush=True)
        zmq.proxy_steerable(frontend, backend, None, control)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
        for sock in (frontend, backend, control, trigger):
            sock.close()
        ctx.term()
        shutil.rmtree(sockdir, ignore_errors=True)


def run_raw_echo(host: str, port: int, stop: StopFlag) -> None:
    """Plain TCP, one asyncio process: each frame (a 4-byte big-endian length, then that many
    bytes) answered with ECHO_REPLY framed the same way; the floor under every stack (no
    ZeroMQ, HTTP or gRPC framing, no library)."""
    import asyncio

    reply = len(ECHO_REPLY).to_bytes(4, "big") + ECHO_REPLY

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                if size > HARD_FRAME_LIMIT:
                    break
                await reader.readexactly(size)
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, host, port)
        bound = server.sockets[0].getsockname()
        print(f"echo serving on raw://{bound[0]}:{bound[1]} (raw TCP echo, one process)",
              flush=True)
        while not stop:
            await asyncio.sleep(0.05)
        server.close()

    asyncio.run(main())


def run_echo_transport(config: ServerConfig, transport: str, stop: StopFlag) -> None:
    """The gRPC or HTTP echo: the kit's server's processes and stack, with a fixed reply
    instead of the library (libsrv.transports)."""
    from libsrv.transports.pool import run_pool

    if transport == "grpc":
        from libsrv.transports.grpc_server import serve_grpc as serve_one
    else:
        from libsrv.transports.http_server import serve_http as serve_one
    shape = f"{config.workers} process(es)" if config.workers else "one process"
    run_pool(config, stop, lambda endpoint: print(
        f"echo serving on {endpoint} ({transport} echo, {shape} on one port)", flush=True),
        serve_one, transport, with_service=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m libsrv_bench echo",
                                     description="Serve an echo baseline.")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--workers", type=int, default=2,
                        help="echo worker processes; 0 = one REP socket (default 2)")
    parser.add_argument("--via", choices=VIA, default="proxy",
                        help="what stands in front of the workers: libzmq's C proxy (the "
                        "transport's limit) or the kit's broker (default proxy); raw: no "
                        "ZeroMQ, length-prefixed frames on plain TCP (the machine's floor)")
    parser.add_argument("--transport", choices=TRANSPORT_NAMES, default=DEFAULT_TRANSPORT,
                        help="the echo's stack: zmq (default), or grpc or http (N processes "
                        "on one port, as `serve --transport` runs them; --via does not apply)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ServerConfig(host=args.host, port=args.port, workers=args.workers, quiet=True)
    stop = StopFlag().install()
    if args.via == "raw":
        run_raw_echo(args.host, args.port, stop)
    elif args.transport != DEFAULT_TRANSPORT:
        run_echo_transport(config, args.transport, stop)
    elif args.workers == 0:
        run_echo_single(config.bind_endpoint, stop)
    elif args.via == "proxy":
        run_echo_proxy(config.bind_endpoint, args.workers, stop)
    else:
        run_broker(config, stop, lambda endpoint: print(
            f"echo serving on {endpoint} ({args.workers} echo workers behind the kit's broker)",
            flush=True), worker_entry=echo_worker_main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
