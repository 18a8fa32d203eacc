"""Where a client's request is in the message a ROUTER reads: the REQ envelope rules, no I/O.

A REQ client's message reaches the server's ROUTER as ``[peer, b"", request]``. Each ROUTER-DEALER
hop in between (a `zmq.proxy`, a gateway, the bench's fault proxy) adds its own routing frame
in front, ``[peer, hop, b"", request]``, and a REP socket would answer any of these: the reply
goes back with the same frames before the request. So do the kit's servers, up to MAX_HOPS hops.
"""

from __future__ import annotations

MAX_HOPS = 3  # routing frames after the connection's own, one per proxy in front
KEPT_FRAMES = MAX_HOPS + 4  # the longest envelope, the request, and one frame more to see that
#                             there was more (the rest of a message is read and dropped)


def request_index(msg: list[bytes]) -> int | None:
    """The index of the request frame in `msg`: just after the first empty frame, which must
    come after the peer and at most MAX_HOPS routing frames. None: not a REQ envelope (there
    is no way to answer it)."""
    if len(msg) > 2 and msg[1] == b"":  # no hop: by far the most common
        return 2
    for index in range(2, min(len(msg) - 1, MAX_HOPS + 2)):
        if msg[index] == b"":
            return index + 1
    return None


def reply_to(msg: list[bytes], frame: bytes) -> list[bytes]:
    """The reply to a one-request message `msg` (its envelope, then `frame`)."""
    return [*msg[:-1], frame]
