"""The catalog over HTTP/JSON, the class's own shape: one POST per operation.

    POST /query_isbn   {"isbn": "9788437604947"}          -> 200 {"success": true, ...}
    POST /loan_isbn    {"isbn": "...", "borrower": "Ana"}  -> 200, or 409 when it is lent

The path names the action (the class's Spanish names work too, URL-encoded) and the body holds
the other fields of the ZeroMQ protocol's request (docs/protocol.md), `id` included; the reply
body is the ZeroMQ reply, byte for byte, and the status says its code (`STATUS`). A body that is
not JSON, too big, or any other method gets a coded BAD_REQUEST reply and changes nothing.

Served by uvicorn with httptools' C parser behind Starlette, the small framework under FastAPI
(docs/transports.md says why). Each process answers one request at a time, as a ZeroMQ
worker does: a request is decided while the event loop waits, so the catalog is never touched
by two requests of one process at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libsrv.config import ServerConfig
from libsrv.protocol import MAX_FRAME_BYTES, Code, encode_reply, make_reply
from libsrv.server import StopFlag
from libsrv.service import Service, refusal_frame
from libsrv.transports.http_messages import JSON, STATUS, request_frame
from libsrv.transports.pool import reuseport_socket

WATCH_SECONDS = 0.05  # how often the loop looks at the stop flag


async def _body(request: Request) -> bytes | None:
    """The request's body, or None past MAX_FRAME_BYTES (read no further than that)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FRAME_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(service: Service) -> Starlette:
    """The ASGI application answering every request with `service`."""

    def reply(frame: bytes, code: str) -> Response:
        return Response(frame, status_code=STATUS.get(code, 500), media_type=JSON)

    async def operation(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return reply(refusal_frame(service.policy.lang, "too_big", limit=MAX_FRAME_BYTES),
                         Code.BAD_REQUEST)
        handled = service.handle([request_frame(request.path_params["action"], body)])
        if handled is None:  # only with `wait`, which this server never passes
            raise RuntimeError("Service.handle returned no reply without `wait`")
        return reply(handled.frame, handled.code)

    async def not_post(request: Request) -> Response:
        return reply(refusal_frame(service.policy.lang, "http_method", method=request.method),
                     Code.BAD_REQUEST)

    routes = [Route("/{action:str}", operation, methods=["POST"]),
              Route("/{path:path}", not_post,
                    methods=["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])]
    return Starlette(routes=routes)


def build_echo_app() -> Starlette:
    """Every POST answered with one fixed reply after reading its body, without parsing it:
    the HTTP stack's own cost (the floor under `build_app`)."""
    frame = encode_reply(make_reply(Code.OK, "echo"))

    async def echo(request: Request) -> Response:
        await request.body()
        return Response(frame, media_type=JSON)

    return Starlette(routes=[Route("/{action:str}", echo, methods=["POST"])])


def serve_http(config: ServerConfig, service: Service | None, stop: StopFlag,
               ready: Callable[[], None]) -> None:
    """`libsrv.transports.pool.ServeOne` for HTTP: uvicorn on a socket of this process;
    without a service, the echo."""
    sock = reuseport_socket(config.host, config.port, listen=True)
    app = build_echo_app() if service is None else build_app(service)
    settings = uvicorn.Config(app, http="httptools", loop="asyncio",
                              lifespan="off", access_log=False, log_level="warning",
                              timeout_keep_alive=60)
    server = uvicorn.Server(settings)

    async def watch() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        ready()
        while not stop:
            await asyncio.sleep(WATCH_SECONDS)
        server.should_exit = True

    async def main() -> Any:
        watcher = asyncio.ensure_future(watch())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        sock.close()
