"""How the load generator's clients reach a server: one connection per client, over ZeroMQ
REQ (``tcp://``: the kit's protocol and the students'), HTTP/1.1 keep-alive (``http://``),
gRPC (``grpc://``) or length-prefixed frames on plain TCP (``raw://``, the raw echo), all driven
from the one poller of a load process.

A wire opens client i's connection (`open`, again after a timeout: a fresh connection, as the
Lazy Pirate does), sends it a request frame from the dialect (`send`), and turns what the
poller found readable into replies (`replies`: pairs of client and reply). What a reply is
depends on the wire; `as_frame` makes it the dialect's reply frame once the run is over, so
that decoding costs the server's cores nothing while it is measured. A request that gets no
reply (a connection refused or reset) is simply not answered: the load generator's timeout
decides, for every transport alike.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import zmq

from libsrv.protocol import Action
from libsrv.wire import recv_frame, send_frame

SCHEMES = ("tcp", "http", "grpc", "raw")
ZMQ_SCHEMES = ("tcp", "ipc", "inproc")  # the endpoints a `ZmqWire` (REQ sockets) reaches


class ZmqWire:
    """A REQ socket per client."""

    def __init__(self, endpoint: str, poller: zmq.Poller, count: int) -> None:
        self.endpoint = endpoint
        self.poller = poller
        self.ctx = zmq.Context()
        self.socks: list[zmq.Socket | None] = [None] * count
        self.owner: dict[zmq.Socket, int] = {}

    def open(self, i: int) -> None:
        old = self.socks[i]
        if old is not None:
            self.poller.unregister(old)
            del self.owner[old]
            old.close(linger=0)
        sock = self.ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(self.endpoint)
        self.socks[i] = sock
        self.owner[sock] = i
        self.poller.register(sock, zmq.POLLIN)

    def send(self, i: int, action: Action, frame: bytes) -> None:
        send_frame(self.socks[i], frame)

    def replies(self, polled: Any) -> list[tuple[int, Any]]:
        return [(self.owner[polled], recv_frame(polled))]

    @staticmethod
    def as_frame(reply: Any) -> bytes:
        return reply

    def close(self) -> None:
        for sock in self.owner:
            sock.close(linger=0)
        self.ctx.term()


class _Response:
    """httptools' callbacks for one connection: the bodies of the responses it completed."""

    __slots__ = ("body", "done")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.done: list[bytes] = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(b"".join(self.body))
        self.body = []


class _TcpWire:
    """A plain TCP connection per client, non-blocking, in the poller by its descriptor (the
    poller reports a plain socket by its descriptor): what the HTTP and raw wires share.
    `_opened(i)` starts a new connection's own state; `_read(i)` gives what arrived (b"":
    the connection is gone, and dropped)."""

    def __init__(self, endpoint: str, poller: zmq.Poller, count: int, scheme: str) -> None:
        parts = urlsplit(endpoint)
        if not parts.hostname or not parts.port:
            raise ValueError(f"not a {scheme}://host:port endpoint: {endpoint!r}")
        self.address = (parts.hostname, parts.port)
        self.poller = poller
        self.socks: list[socket.socket | None] = [None] * count
        self.owner: dict[int, int] = {}

    def _opened(self, i: int) -> None:
        pass

    def _drop(self, i: int) -> None:
        sock = self.socks[i]
        if sock is not None:
            self.poller.unregister(sock)
            del self.owner[sock.fileno()]
            sock.close()
            self.socks[i] = None

    def open(self, i: int) -> None:
        self._drop(i)
        try:
            sock = socket.create_connection(self.address, timeout=5)
        except OSError:
            return  # refused: this request goes unanswered, the next `open` tries again
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.socks[i] = sock
        self.owner[sock.fileno()] = i
        self._opened(i)
        self.poller.register(sock, zmq.POLLIN)

    def _send(self, i: int, data: bytes) -> None:
        if self.socks[i] is None:
            self.open(i)
        sock = self.socks[i]
        if sock is not None:
            try:
                sock.sendall(data)
            except OSError:
                self._drop(i)

    def _read(self, i: int) -> bytes | None:
        """What arrived for client i: bytes, None when nothing yet, b"" when it is gone."""
        sock = self.socks[i]
        try:
            data = sock.recv(65536) if sock is not None else b""
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._drop(i)
        return data

    @staticmethod
    def as_frame(reply: Any) -> bytes:
        return reply

    def close(self) -> None:
        for sock in self.socks:
            if sock is not None:
                sock.close()
        self.owner.clear()


class HttpWire(_TcpWire):
    """A keep-alive HTTP/1.1 connection per client: POST /<action>, the dialect's frame as the
    body (the kit's server reads the action from the path); responses parsed by httptools."""

    def __init__(self, endpoint: str, poller: zmq.Poller, count: int) -> None:
        import httptools

        super().__init__(endpoint, poller, count, "http")
        self.host = f"{self.address[0]}:{self.address[1]}".encode()
        self.parser_type = httptools.HttpResponseParser
        self.parser_error = httptools.HttpParserError
        self.parsers: list[Any] = [None] * count
        self.responses: list[_Response] = [_Response() for _ in range(count)]
        self.paths: dict[Action, bytes] = {}

    def _opened(self, i: int) -> None:
        self.responses[i] = _Response()
        self.parsers[i] = self.parser_type(self.responses[i])

    def send(self, i: int, action: Action, frame: bytes) -> None:
        path = self.paths.get(action)
        if path is None:
            path = self.paths[action] = quote(str(action)).encode()
        self._send(i, b"POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (path, self.host, len(frame), frame))

    def replies(self, polled: Any) -> list[tuple[int, Any]]:
        i = self.owner[polled]
        data = self._read(i)
        if not data:
            return []
        try:
            self.parsers[i].feed_data(data)
        except self.parser_error:
            self._drop(i)
            return []
        done = self.responses[i].done
        if not done:
            return []
        self.responses[i].done = []
        if not self.parsers[i].should_keep_alive():
            self._drop(i)  # "Connection: close" (Werkzeug's server): the next request reconnects
        return [(i, body) for body in done]


class GrpcWire:
    """A gRPC channel per client (its own connection: no subchannel shared between them);
    calls made with raw bytes, so that neither side of the poll decodes replies while the run
    is measured. gRPC completes calls on its own threads: they queue the reply and write a byte
    to a pipe the poller watches."""

    def __init__(self, endpoint: str, poller: zmq.Poller, count: int) -> None:
        import grpc

        from libsrv.transports.grpc_messages import RPC_OF

        parts = urlsplit(endpoint)
        if not parts.hostname or not parts.port:
            raise ValueError(f"not a grpc://host:port endpoint: {endpoint!r}")
        self.grpc = grpc
        self.target = f"{parts.hostname}:{parts.port}"
        self.rpc_of = RPC_OF
        self.channels: list[Any] = [None] * count
        self.methods: list[dict[Action, Any]] = [{} for _ in range(count)]
        self.calls: list[Any] = [None] * count
        self.serial = [0] * count
        self.done: collections.deque[tuple[int, int, Any]] = collections.deque()
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        os.set_blocking(self.write_end, False)
        poller.register(self.read_end, zmq.POLLIN)

    def open(self, i: int) -> None:
        if self.calls[i] is not None:
            self.calls[i].cancel()
            self.calls[i] = None
        if self.channels[i] is not None:
            self.channels[i].close()
        self.serial[i] += 1  # what an older call completes with is stale
        self.channels[i] = self.grpc.insecure_channel(
            self.target, options=[("grpc.use_local_subchannel_pool", 1)])
        self.methods[i] = {}

    def send(self, i: int, action: Action, frame: bytes) -> None:
        from libsrv.transports.grpc_messages import request_message

        method = self.methods[i].get(action)
        if method is None:
            method = self.methods[i][action] = self.channels[i].unary_unary(
                f"/libsrv.Library/{self.rpc_of[action]}")
        data = request_message(action, json.loads(frame)).SerializeToString()
        self.serial[i] += 1
        serial = self.serial[i]
        call = method.future(data)
        self.calls[i] = call
        call.add_done_callback(lambda done: self._completed(i, serial, done))

    def _completed(self, i: int, serial: int, call: Any) -> None:  # on a gRPC thread
        self.done.append((i, serial, call))
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self.write_end, b"x")

    def replies(self, polled: Any) -> list[tuple[int, Any]]:
        try:
            while os.read(self.read_end, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while self.done:
            i, serial, call = self.done.popleft()
            if serial != self.serial[i] or call.cancelled():
                continue
            self.calls[i] = None
            try:
                out.append((i, call.result()))
            except self.grpc.RpcError:
                continue  # no reply: the timeout decides
        return out

    @staticmethod
    def as_frame(reply: Any) -> bytes:
        from libsrv.transports import library_pb2
        from libsrv.transports.grpc_messages import reply_object

        return json.dumps(reply_object(library_pb2.Reply.FromString(reply))).encode()

    def close(self) -> None:
        for call in self.calls:
            if call is not None:
                call.cancel()
        for channel in self.channels:
            if channel is not None:
                channel.close()
        os.close(self.read_end)
        os.close(self.write_end)


class RawWire(_TcpWire):
    """A plain TCP connection per client, frames of a 4-byte big-endian length and the bytes
    (the raw echo's framing: `libsrv_bench.echo.run_raw_echo`)."""

    def __init__(self, endpoint: str, poller: zmq.Poller, count: int) -> None:
        super().__init__(endpoint, poller, count, "raw")
        self.buffers = [b""] * count

    def _opened(self, i: int) -> None:
        self.buffers[i] = b""

    def send(self, i: int, action: Action, frame: bytes) -> None:
        self._send(i, len(frame).to_bytes(4, "big") + frame)

    def replies(self, polled: Any) -> list[tuple[int, Any]]:
        i = self.owner[polled]
        data = self._read(i)
        if not data:
            return []
        buffer, out = self.buffers[i] + data, []
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            out.append((i, buffer[4:4 + size]))
            buffer = buffer[4 + size:]
        self.buffers[i] = buffer
        return out


def wire_for(endpoint: str, poller: zmq.Poller,
             count: int) -> ZmqWire | HttpWire | GrpcWire | RawWire:
    """The wire an endpoint's scheme names (``tcp://`` is ZeroMQ). Raises ValueError for
    another scheme."""
    scheme = endpoint.split("://", 1)[0]
    if scheme in ZMQ_SCHEMES:
        return ZmqWire(endpoint, poller, count)
    if scheme == "http":
        return HttpWire(endpoint, poller, count)
    if scheme == "grpc":
        return GrpcWire(endpoint, poller, count)
    if scheme == "raw":
        return RawWire(endpoint, poller, count)
    raise ValueError(f"the bench speaks ZeroMQ (tcp://), HTTP (http://), gRPC (grpc://) and "
                     f"the raw echo's framing (raw://), not {scheme}://")
