"""Multipart messages on the servers' hot path, without pyzmq's per-call overhead.

pyzmq's `send_multipart` checks every frame's type and combines flags as `enum.Flag`s; its
`recv_multipart` asks for RCVMORE through the option enum: on this kit's 3- and 4-frame
messages that is 4-6 µs a message, several times the system calls themselves (measured in
docs/broker.md). These helpers call the compiled socket's `send`, `recv` and `get` directly,
with plain integer flags. They take bytes frames only (the servers never send anything else).
"""

from __future__ import annotations

from collections.abc import Callable

import zmq
import zmq.backend

SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
_Base = zmq.backend.Socket


# One frame on any socket, `send_frame(sock, data[, flags])` and `recv_frame(sock[, flags])`:
# the compiled methods themselves (the load generator calls them for every request).
send_frame = _Base.send
recv_frame = _Base.recv


def sender(sock: zmq.Socket, flags: int = 0) -> Callable[[list[bytes]], None]:
    """A function that sends one multipart message of bytes frames on `sock` (with `flags`,
    such as NOBLOCK, on every frame; raises zmq.Again / zmq.ZMQError as `send` does)."""
    send = _Base.send.__get__(sock)
    more = flags | SNDMORE

    def send_frames(frames: list[bytes]) -> None:
        last = len(frames) - 1
        for index in range(last):
            send(frames[index], more)
        send(frames[last], flags)

    return send_frames


def receiver(sock: zmq.Socket, flags: int = 0) -> Callable[[], list[bytes]]:
    """A function that receives one multipart message from `sock` as a list of bytes (with
    `flags`, such as NOBLOCK, on its first frame: zmq.Again when none is queued)."""
    recv = _Base.recv.__get__(sock)
    get = _Base.get.__get__(sock)

    def recv_frames() -> list[bytes]:
        frames = [recv(flags)]
        while get(_RCVMORE):
            frames.append(recv())
        return frames

    return recv_frames
