"""``bench run --observe``: a second, independent history from the server's live feed.

While the load runs, a subscriber in the coordinating process keeps every change the server
publishes (`FeedObserver`). After the run, `check_feed` holds that feed against the clients'
own history and the catalog file:

- the numbers run from the first to the last without a gap or a repeat;
- every write acknowledged `OK` appears in the feed exactly once (by its request id), and no
  write the server refused appears at all;
- the feed's order agrees with the acknowledgements: a write acknowledged before another was
  sent comes first;
- each book's states in the feed alternate (a loan of a lent book, or a return of an available
  one, is a lost or doubled update);
- each book's last state in the feed is what the catalog file says at the end.

Runs sent without ids (``--no-ids``) can only be checked on numbers, alternation and the final
state; the summary says so.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zmq

from libsrv.catalog import LENT, Book
from libsrv.live import Change, FeedUnavailable, feed_endpoint, parse_change
from libsrv.protocol import Action, Code
from libsrv.transports.callers import caller_for
from libsrv_bench.history import Record

WRITES = {str(Action.LOAN_ISBN), str(Action.LOAN_TITLE), str(Action.RETURN_ISBN)}
REFUSALS = {str(Code.UNAVAILABLE), str(Code.NOT_LOANED), str(Code.NOT_FOUND),
            str(Code.BAD_REQUEST)}
MAX_SHOWN = 20  # findings kept in words per kind


def _last_seq(endpoint: str) -> tuple[int, int | None]:
    with caller_for(endpoint, timeout=10) as lib:
        reply = lib.call(Action.SNAPSHOT, limit=1)
    if not reply.get("success") or not isinstance(reply.get("seq"), int):
        raise FeedUnavailable(f"{endpoint} answered snapshot with {reply.get('code')}: it "
                              "publishes no feed (--no-pub, the json storage, or an older "
                              "server)")
    port = reply.get("feed_port")
    return reply["seq"], port if isinstance(port, int) else None


@dataclass
class FeedObserver:
    """Subscribes before the load starts and keeps every message until `finish`."""

    endpoint: str
    changes: list[Change] = field(default_factory=list)
    start_seq: int = 0
    final_seq: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _subscribed: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> FeedObserver:
        self.start_seq, port = _last_seq(self.endpoint)
        if port is None:
            raise FeedUnavailable(f"{self.endpoint} publishes no feed (started with --no-pub, "
                                  "or with the json storage)")
        self._thread = threading.Thread(target=self._run, args=(feed_endpoint(
            self.endpoint, port),), name="bench-observe", daemon=True)
        self._thread.start()
        # a heartbeat comes at least every second: once one is in, so is every later change
        if not self._subscribed.wait(timeout):
            self._stop.set()
            raise FeedUnavailable(f"no heartbeat from the feed of {self.endpoint} in "
                                  f"{timeout:g} s")
        return self

    def _run(self, where: str) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = 0  # an observer must not drop what it is there to count
        sub.subscribe(b"")
        sub.connect(where)
        try:
            while not self._stop.is_set():
                if not sub.poll(50):
                    continue
                message = parse_change(sub.recv_multipart())
                if isinstance(message, int):
                    self._subscribed.set()
                elif message is not None and message.seq > self.start_seq:
                    self.changes.append(message)
        except BaseException as error:  # a thread must not die silently
            self.error = error
        finally:
            sub.close()
            ctx.term()

    def finish(self, timeout: float = 30.0) -> None:
        """Wait until the feed has reached the server's last change (or `timeout`), then stop.
        Call it while the server still runs."""
        self.final_seq, _ = _last_seq(self.endpoint)
        deadline = time.monotonic() + timeout
        while (not self.changes or self.changes[-1].seq < self.final_seq) and \
                self.final_seq > self.start_seq and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread fills `changes`; poll with a deadline
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _finding(kind: str, text: str) -> dict[str, str]:
    return {"kind": kind, "detail": text}


def check_feed(changes: list[Change], start_seq: int, final_seq: int,
               records: Iterable[Record], on_disk: dict[str, Book | None] | None,
               *, ids: bool = True) -> dict[str, Any]:
    """The feed held against the run's history and the final file (see the module's doc)."""
    findings: list[dict[str, str]] = []
    numbers = [change.seq for change in changes]
    counts = Counter(numbers)
    missing = sorted(set(range(start_seq + 1, final_seq + 1)) - counts.keys())
    if missing:
        findings.append(_finding("feed-gap", f"{len(missing)} change number(s) never "
                                 f"published, first #{missing[0]}"))
    for number, times in sorted(counts.items()):
        if times > 1:
            findings.append(_finding("feed-repeat", f"change #{number} published {times} "
                                     "times"))
    if numbers != sorted(numbers):
        findings.append(_finding("feed-disorder", "changes arrived out of number order"))

    by_id: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if change.id:
            by_id[change.id].append(change)
    acked: list[tuple[int, int, int]] = []  # (seq, sent, acknowledged) of each OK write
    if ids:
        for r in records:
            if r.action not in WRITES or r.rid is None:
                continue
            seen = by_id.get(r.rid, [])
            if r.code == Code.OK:
                if not seen:
                    findings.append(_finding("missing-from-feed", f"{r.action} {r.isbn or ''} "
                                             f"(id {r.rid}) was acknowledged OK but never "
                                             "published"))
                elif len(seen) > 1:
                    findings.append(_finding("twice-in-feed", f"{r.action} (id {r.rid}) "
                                             f"published {len(seen)} times"))
                else:
                    acked.append((seen[0].seq, r.t_send, r.t_recv or r.t_send))
            elif r.code in REFUSALS and seen:
                findings.append(_finding("feed-contradicts-reply", f"{r.action} (id {r.rid}) "
                                         f"was answered {r.code} but published as #"
                                         f"{seen[0].seq}"))
        acked.sort()
        later_min = None  # the earliest acknowledgement among writes with higher numbers
        for seq, sent, done in reversed(acked):
            if later_min is not None and later_min[0] < sent:
                findings.append(_finding("feed-order", f"change #{later_min[1]} was "
                                         f"acknowledged before #{seq} was sent, yet numbered "
                                         "after it"))
            if later_min is None or done < later_min[0]:
                later_min = (done, seq)

    state: dict[str, Book] = {}
    for change in sorted(changes, key=lambda c: c.seq):
        before = state.get(change.isbn)
        lent = change.book.get("estado") == LENT
        if before is not None and (before.get("estado") == LENT) == lent:
            kind = "feed-double-loan" if lent else "feed-double-return"
            findings.append(_finding(kind, f"{change.book.get('titulo')} ({change.isbn}): "
                                     f"change #{change.seq} ({change.action}) finds it already "
                                     f"{'lent' if lent else 'available'}"))
        state[change.isbn] = change.book
    if on_disk is not None:
        for isbn, book in state.items():
            if isbn in on_disk and on_disk[isbn] != book:
                findings.append(_finding("feed-final-state", f"{book.get('titulo')} ({isbn}): "
                                         "the feed's last state is not the catalog file's"))
    kinds = Counter(f["kind"] for f in findings)
    shown: list[dict[str, str]] = []
    per_kind: Counter[str] = Counter()
    for finding in findings:
        per_kind[finding["kind"]] += 1
        if per_kind[finding["kind"]] <= MAX_SHOWN:
            shown.append(finding)
    return {"ok": not findings, "violations": len(findings), "kinds": dict(kinds),
            "changes": len(changes), "first": start_seq + 1, "last": final_seq,
            "acknowledged_in_feed": len(acked), "checked_ids": ids, "details": shown}
