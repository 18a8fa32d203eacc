"""The class's own path as a process: browser -> Flask -> ZeroMQ (the class report, 3.5).

    python -m libsrv.transports.gateway --to tcp://127.0.0.1:5555 --port 8000

A Flask app turns each ``POST /<action>`` (the HTTP server's shape: docs/transports.md) into
one ZeroMQ request to the server and its reply into the HTTP response, on a REQ socket per
thread (the class's app kept one persistent REQ socket; Werkzeug's threaded server runs a
thread per connection, and a REQ socket must not be shared). It is served by Werkzeug, as the
class's ``app.run()`` served it, which answers ``Connection: close``: every request is a new TCP
connection and a new thread. What this hop costs per request, beside the direct rows, is what
the class's architecture pays per click. A server that does not answer within `--timeout` gets
the client a coded 500 (INTERNAL) reply, and the socket is replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

import zmq
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from libsrv.defaults import DEFAULT_HOST
from libsrv.protocol import MAX_FRAME_BYTES, Code, encode_reply, make_reply, peek_request
from libsrv.server import StopFlag
from libsrv.transports.http_messages import JSON, STATUS, request_frame

TIMEOUT = 5.0  # seconds the gateway waits for the server's reply


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # a line per request would cost more than the hop being measured


def build_gateway(endpoint: str, timeout: float = TIMEOUT) -> Flask:
    """The Flask app forwarding every POST /<action> to the ZeroMQ server at `endpoint`."""
    app = Flask("libsrv-gateway")
    ctx = zmq.Context.instance()
    local = threading.local()

    def socket() -> zmq.Socket:
        sock = getattr(local, "sock", None)
        if sock is None:
            sock = local.sock = ctx.socket(zmq.REQ)
            sock.linger = 0
            sock.connect(endpoint)
        return sock

    def reply(frame: bytes, code: str) -> Response:
        return Response(frame, status=STATUS.get(code, 500), mimetype=JSON)

    @app.post("/<action>")
    def forward(action: str) -> Response:
        body = request.get_data(cache=False)
        if len(body) > MAX_FRAME_BYTES:
            return reply(encode_reply(make_reply(Code.BAD_REQUEST, "request too large")),
                         Code.BAD_REQUEST)
        frame = request_frame(action, body)
        sock = socket()
        sock.send(frame)
        if not sock.poll(int(timeout * 1000)):
            sock.close()
            local.sock = None
            rid, _ = peek_request([frame])
            return reply(encode_reply(make_reply(
                Code.INTERNAL, f"no reply from the server in {timeout:g} s",
                request_id=rid)), Code.INTERNAL)
        answer = sock.recv()
        try:
            code = str(json.loads(answer).get("code"))
        except (ValueError, AttributeError):
            code = Code.INTERNAL  # not a reply object: passed on, with the status saying so
        return reply(answer, code)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libsrv.transports.gateway",
                                     description="The class's Flask gateway in front of a "
                                     "ZeroMQ server.")
    parser.add_argument("--to", required=True, help="the ZeroMQ server (tcp://HOST:PORT)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help=f"seconds to wait for the server's reply (default {TIMEOUT:g})")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, build_gateway(args.to, args.timeout),
                         threaded=True, request_handler=_Quiet)
    stop = StopFlag().install()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    print(f"libsrv gateway serving on http://{args.host}:{server.server_port} (Flask in front "
          f"of {args.to})", flush=True)
    stop.wait()
    server.shutdown()
    thread.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
