"""One request at a time over any of the kit's transports, for tests and the bench: each
`call` takes an action and the request's fields and returns the ZeroMQ protocol's reply object,
whatever carried it. Raises `CallFailed` (a `ServerUnreachable`) when no reply came (timeout,
connection refused). `caller_for` picks by the endpoint's scheme: ``tcp://`` (ZeroMQ, with
LibraryClient's retries), ``http://`` or ``grpc://`` (these need the transports extra)."""

from __future__ import annotations

import http.client
import json
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from libsrv.client import LibraryClient, ServerUnreachable
from libsrv.protocol import Action


class CallFailed(ServerUnreachable):
    """No reply: the server did not answer in time, or could not be reached."""


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ZmqCaller(_Closing):
    """`LibraryClient` (REQ, Lazy Pirate retries with the same id) returning reply objects."""

    def __init__(self, endpoint: str, timeout: float = 5.0, retries: int = 2) -> None:
        self.client = LibraryClient(endpoint, timeout=timeout, retries=retries)

    def call(self, action: Action | str, **fields: Any) -> dict[str, Any]:
        return self.client.request(action, **fields).raw

    def close(self) -> None:
        self.client.close()


class HttpCaller(_Closing):
    """POST /<action> on one keep-alive connection to ``http://host:port``; reconnects once
    when the server closed the connection since the last call."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"not an http://host:port endpoint: {endpoint!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST; raises CallFailed."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port,
                                                              timeout=self.timeout)
            try:
                self._connection.request("POST", path, body,
                                         {"Content-Type": "application/json"})
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise CallFailed("the server closed the connection") from None
            except OSError as error:  # refused, timed out
                self.close()
                raise CallFailed(str(error) or type(error).__name__) from None
        raise AssertionError("unreachable")

    def call(self, action: Action | str, **fields: Any) -> dict[str, Any]:
        body = json.dumps({k: v for k, v in fields.items() if v is not None}).encode()
        _, reply = self.post("/" + quote(str(action)), body)
        return json.loads(reply)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class GrpcCaller(_Closing):
    """The `Library` stub on one channel to ``grpc://host:port``."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        import grpc

        from libsrv.transports import library_pb2_grpc

        self.grpc = grpc
        parts = urlsplit(endpoint)
        if parts.scheme != "grpc" or not parts.hostname or not parts.port:
            raise ValueError(f"not a grpc://host:port endpoint: {endpoint!r}")
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"{parts.hostname}:{parts.port}")
        self.stub = library_pb2_grpc.LibraryStub(self.channel)

    def call(self, action: Action | str, **fields: Any) -> dict[str, Any]:
        from libsrv.transports.grpc_messages import RPC_OF, reply_object, request_message

        action = Action(action)
        method = getattr(self.stub, RPC_OF[action])
        try:
            reply = method(request_message(action, fields), timeout=self.timeout)
        except self.grpc.RpcError as error:
            raise CallFailed(f"{error.code().name}: {error.details()}") from None
        return reply_object(reply)

    def close(self) -> None:
        self.channel.close()


Caller = ZmqCaller | HttpCaller | GrpcCaller


def caller_for(endpoint: str, timeout: float = 5.0) -> Caller:
    """The caller an endpoint's scheme needs (``tcp://`` and the other ZeroMQ ones: ZeroMQ)."""
    if endpoint.startswith("grpc://"):
        return GrpcCaller(endpoint, timeout)
    if endpoint.startswith("http://"):
        return HttpCaller(endpoint, timeout)
    return ZmqCaller(endpoint, timeout)
