"""What every storage engine offers the server, and the memory of applied request ids."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Any

from libsrv.catalog import Catalog
from libsrv.decision import Decide
from libsrv.defaults import DEDUP_SECONDS, DEDUP_WINDOW
from libsrv.protocol import Request

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class IdReused(Exception):
    """A write came with an id that an earlier, different write already used."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id


class AppliedRequests:
    """The replies of the writes decided with an id (applied or refused), by id: the last
    `window` of them, and each of the others until its time is up. An id is kept `seconds`
    after its reply, under the `seconds` in force when the reply was given: its expiry
    (wall-clock, "u") is carried in the journal with it, so a restart with a shorter window
    forgets nothing that was promised under a longer one.

    Replies are kept as compact JSON text: a reply dict with its book costs four times the
    memory, and replies are read back only when a client retries.
    """

    def __init__(self, window: int = DEDUP_WINDOW, seconds: float = DEDUP_SECONDS) -> None:
        self.window = window
        self.seconds = seconds
        self._replies: OrderedDict[str, tuple[str, str, float]] = OrderedDict()  # until

    def stamp(self) -> dict[str, float]:
        """The fields a new record of a decided write carries: when, and until when its id
        is kept."""
        now = time.time()
        return {"t": now, "u": now + self.seconds}

    def remember(self, request_id: str, fingerprint: str, reply: dict[str, Any],
                 at: float | None = None, until: float | None = None) -> None:
        """Remember a decided write (`at`: when, in seconds since the epoch, default now;
        `until`: when it may be forgotten, default `at` plus `seconds`)."""
        now = time.time()
        if until is None:
            until = (now if at is None else at) + self.seconds
        self._replies[request_id] = (fingerprint, _COMPACT.encode(reply), until)
        self._replies.move_to_end(request_id)
        replies = self._replies
        while len(replies) > self.window and next(iter(replies.values()))[2] < now:
            replies.popitem(last=False)

    def remember_record(self, record: dict[str, Any]) -> None:
        """Remember the decided write a journal record carries (it has an "id")."""
        self.remember(record["id"], record["fp"], record["reply"], record.get("t"),
                      record.get("u"))

    def forget(self, request_id: str) -> None:
        self._replies.pop(request_id, None)

    def replay(self, request: Request) -> dict[str, Any] | None:
        """The original reply if this write was applied already; IdReused if the id was used
        for a different write; None if the id is new (or has no id)."""
        if request.id is None or request.id not in self._replies:
            return None
        fingerprint, reply, _ = self._replies[request.id]
        if fingerprint != request.fingerprint():
            raise IdReused(request.id)
        return json.loads(reply)

    def snapshot(self) -> list[tuple[str, tuple[str, str, float]]]:
        """The window as it is now, oldest first (cheap: a list of references)."""
        return list(self._replies.items())

    @staticmethod
    def lines(snapshot: list[tuple[str, tuple[str, str, float]]]) -> list[bytes]:
        """A window's snapshot as log lines, built without decoding the replies (kept as JSON
        text): what a compaction carries into the next generation."""
        dumps = _COMPACT.encode
        return [f'{{"id":{dumps(rid)},"fp":{dumps(fp)},"reply":{reply},"u":{until!r}}}\n'
                .encode() for rid, (fp, reply, until) in snapshot]

    def __len__(self) -> int:
        return len(self._replies)


class Storage(ABC):
    """A catalog file and the process's view of it.

    `read` returns a catalog at least as new as every write acknowledged before the call;
    `write` runs `decide` on the current catalog with the lock held and persists its change
    before returning the reply. Both raise StorageError when the files fail them. With `wait`
    (seconds), a write that finds the lock held that long raises LockBusy, having done
    nothing, instead of waiting up to the lock timeout.
    """

    name: str
    path: Path

    @abstractmethod
    def read(self) -> Catalog: ...

    @abstractmethod
    def write(self, request: Request, decide: Decide, *,
              wait: float | None = None) -> dict[str, Any]: ...

    @property
    def seq(self) -> int | None:
        """The position of the last change in the catalog's global order, as of the last
        `read` or `write` (engines that keep no order: None). It only grows, also across
        restarts; the live feed publishes changes under these numbers."""
        return None

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Bring the catalog file itself up to date (journal engine); cheap when it is."""

    def idle(self) -> None:  # noqa: B027 - optional hook
        """Called when the server has been idle a while: a chance for housekeeping."""

    @abstractmethod
    def close(self) -> None: ...
