"""The HTTP/JSON shape of the protocol, without I/O: which ZeroMQ request a POST stands for, and
which status a reply code gets. Shared by the HTTP server and the class-style Flask gateway."""

from __future__ import annotations

import json

from libsrv.protocol import Code

# the HTTP status of each reply code: the body says the same, for clients that read only one
STATUS: dict[str, int] = {
    Code.OK: 200,
    Code.NOT_FOUND: 404,
    Code.UNAVAILABLE: 409,
    Code.NOT_LOANED: 409,
    Code.BAD_REQUEST: 400,
    Code.INTERNAL: 500,
}
JSON = "application/json"


def request_frame(action: str, body: bytes) -> bytes:
    """The ZeroMQ request frame an HTTP request stands for: its body's fields and the path's
    action. A body that is not a JSON object goes through as it is, for `Service` to refuse."""
    if not body.strip():
        return json.dumps({"action": action}).encode()
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(fields, dict):
        return body
    fields["action"] = action
    try:
        return json.dumps(fields, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return body
