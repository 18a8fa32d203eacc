"""Clients of the other transports, one request at a time, for tests and the bench: each
`call` takes an action and the request's fields and returns the ZeroMQ protocol's reply object,
whatever carried it. Raises `CallFailed` when no reply came (timeout, connection refused)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

import grpc

from libsrv.protocol import Action
from libsrv.transports import library_pb2_grpc
from libsrv.transports.grpc_messages import RPC_OF, reply_object, request_message


class CallFailed(Exception):
    """No reply: the server did not answer in time, or could not be reached."""


class HttpCaller:
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


class GrpcCaller:
    """The `Library` stub on one channel to ``grpc://host:port``."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "grpc" or not parts.hostname or not parts.port:
            raise ValueError(f"not a grpc://host:port endpoint: {endpoint!r}")
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"{parts.hostname}:{parts.port}")
        self.stub = library_pb2_grpc.LibraryStub(self.channel)

    def call(self, action: Action | str, **fields: Any) -> dict[str, Any]:
        action = Action(action)
        method = getattr(self.stub, RPC_OF[action])
        try:
            reply = method(request_message(action, fields), timeout=self.timeout)
        except grpc.RpcError as error:
            raise CallFailed(f"{error.code().name}: {error.details()}") from None
        return reply_object(reply)

    def close(self) -> None:
        self.channel.close()


def caller_for(endpoint: str, timeout: float = 5.0) -> HttpCaller | GrpcCaller:
    """The caller an ``http://`` or ``grpc://`` endpoint needs."""
    if endpoint.startswith("grpc://"):
        return GrpcCaller(endpoint, timeout)
    return HttpCaller(endpoint, timeout)
