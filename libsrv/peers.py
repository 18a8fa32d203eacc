"""What each client connection may have in progress, with no I/O: the flood protection of both
servers' client-facing ROUTER. Nothing a client was promised is dropped: a connection with
PEER_IN_PROGRESS requests in progress (a gateway multiplexing many clients on one DEALER) has
its further requests wait, not yet accepted, up to PEER_BACKLOG_BYTES; a reply its socket
refuses (it reads none of its replies and its queue is full) is kept and offered again, and
that connection's requests wait until it goes. Only requests beyond the backlog are dropped,
before anything was promised for them (counted in `refused`).

A REQ client has one request at a time and never meets any of this."""

from __future__ import annotations

from collections import deque

PEER_IN_PROGRESS = 16
PEER_BACKLOG_BYTES = 1 << 20


class PeerQueues:
    """Per client connection (ZeroMQ routing id): requests in progress, requests waiting to
    be accepted, replies its socket refused."""

    def __init__(self) -> None:
        self.refused = 0  # requests dropped, beyond a connection's backlog
        self._in_progress: dict[bytes, int] = {}
        self._backlog: dict[bytes, deque[list[bytes]]] = {}
        self._backlog_bytes: dict[bytes, int] = {}
        self._blocked: dict[bytes, list[list[bytes]]] = {}

    def admit(self, msg: list[bytes]) -> bool:
        """A request ``[peer, b"", request]`` arrived: True when it is accepted now (then
        `answered` must follow its reply); False when it waits (or was dropped)."""
        peer = msg[0]
        if peer in self._backlog or peer in self._blocked or \
                self._in_progress.get(peer, 0) >= PEER_IN_PROGRESS:
            size = self._backlog_bytes.get(peer, 0) + len(msg[-1])
            if size > PEER_BACKLOG_BYTES:
                self.refused += 1
            else:
                self._backlog.setdefault(peer, deque()).append(msg)
                self._backlog_bytes[peer] = size
            return False
        self._in_progress[peer] = self._in_progress.get(peer, 0) + 1
        return True

    def answered(self, peer: bytes) -> None:
        """The reply to one of `peer`'s accepted requests was handed to its socket."""
        left = self._in_progress.get(peer, 0) - 1
        if left > 0:
            self._in_progress[peer] = left
        else:
            self._in_progress.pop(peer, None)

    def blocked(self, reply: list[bytes]) -> None:
        """The socket refused `reply` (``[peer, ...]``) that `answered` was called for."""
        peer = reply[0]
        self._blocked.setdefault(peer, []).append(reply)
        self._in_progress[peer] = self._in_progress.get(peer, 0) + 1

    def gone(self, peer: bytes) -> None:
        """The socket has no such peer any more: forget what it was owed."""
        for table in (self._blocked, self._backlog, self._backlog_bytes, self._in_progress):
            table.pop(peer, None)

    @property
    def any_blocked(self) -> bool:
        return bool(self._blocked)

    @property
    def any_releasable(self) -> bool:
        """Whether `release` would accept some waiting request now."""
        return any(peer not in self._blocked and
                   self._in_progress.get(peer, 0) < PEER_IN_PROGRESS
                   for peer in self._backlog)

    def retry(self) -> list[list[bytes]]:
        """The refused replies, to offer again (each counted answered again)."""
        if not self._blocked:
            return []
        blocked, self._blocked = self._blocked, {}
        replies = []
        for peer, held in blocked.items():
            for reply in held:
                self.answered(peer)
                replies.append(reply)
        return replies

    def release(self) -> list[list[bytes]]:
        """Waiting requests that may be accepted now (each counted in progress). Call it
        before `retry`: a connection whose replies are refused again gets nothing new."""
        if not self._backlog:
            return []
        released = []
        for peer in list(self._backlog):
            if peer in self._blocked:
                continue
            held = self._backlog[peer]
            while held and self._in_progress.get(peer, 0) < PEER_IN_PROGRESS:
                msg = held.popleft()
                self._backlog_bytes[peer] -= len(msg[-1])
                self._in_progress[peer] = self._in_progress.get(peer, 0) + 1
                released.append(msg)
            if not held:
                del self._backlog[peer]
                del self._backlog_bytes[peer]
        return released
