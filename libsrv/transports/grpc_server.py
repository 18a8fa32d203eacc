"""The catalog over gRPC: the `Library` service of library.proto, one rpc per action.

A call's request message becomes the ZeroMQ protocol's request (its fields by their proto
names, which are the JSON ones), `Service` decides it, and its reply fills a `Reply` message
(the stats object as JSON text in `stats_json`). Outcomes, refusals included, travel in the
reply's `code` with gRPC status OK, as over ZeroMQ; a message that does not decode gets gRPC's
own INTERNAL status from the library, and the server goes on serving. Each process answers one
call at a time (a pool of one thread), as a ZeroMQ worker does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.message import Message

from libsrv.config import ServerConfig
from libsrv.protocol import Action, encode_request
from libsrv.server import HARD_FRAME_LIMIT, StopFlag
from libsrv.service import Service
from libsrv.transports import library_pb2, library_pb2_grpc
from libsrv.transports.grpc_messages import RPCS, reply_message, request_fields

STOP_GRACE = 1.0  # seconds a call in progress gets at shutdown
WATCH_SECONDS = 0.05


class LibraryServicer(library_pb2_grpc.LibraryServicer):
    """Every rpc of `RPCS`, answered by one `Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service
        for name, action in RPCS.items():
            setattr(self, name, self._answering(action))

    def _answering(self, action: Action) -> Callable[[Message, grpc.ServicerContext],
                                                     library_pb2.Reply]:
        def answer(request: Message, context: grpc.ServicerContext) -> library_pb2.Reply:
            frame = encode_request(action, **request_fields(request))
            handled = self.service.handle([frame])
            if handled is None:  # only with `wait`, which this server never passes
                context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
            return reply_message(json.loads(handled.frame))

        return answer


class EchoServicer(library_pb2_grpc.LibraryServicer):
    """Every rpc answered with one fixed `Reply`, without reading the request: gRPC's own
    cost on this machine (the floor under `LibraryServicer`)."""

    def __init__(self) -> None:
        reply = library_pb2.Reply(success=True, code="OK", message="echo")
        for name in RPCS:
            setattr(self, name, lambda request, context, reply=reply: reply)


def serve_grpc(config: ServerConfig, service: Service | None, stop: StopFlag,
               ready: Callable[[], None]) -> None:
    """`libsrv.transports.pool.ServeOne` for gRPC: a server of this process on the shared
    port (gRPC sets SO_REUSEPORT itself); without a service, the echo."""
    server = grpc.server(ThreadPoolExecutor(max_workers=1), options=[
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", HARD_FRAME_LIMIT),
    ])
    servicer = EchoServicer() if service is None else LibraryServicer(service)
    library_pb2_grpc.add_LibraryServicer_to_server(servicer, server)
    host = "0.0.0.0" if config.host in ("*", "0.0.0.0") else config.host
    address = f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}"
    if server.add_insecure_port(address) != config.port:
        raise OSError(f"gRPC could not listen on {address}")
    server.start()
    try:
        ready()
        while not stop.wait(WATCH_SECONDS):
            pass
    finally:
        server.stop(STOP_GRACE).wait(STOP_GRACE + 1)
