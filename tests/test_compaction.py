"""Compaction under fire: a writer SIGKILLed while it writes a snapshot loses no acknowledged
write and applies none twice."""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from libsrv.catalog import LENT, Catalog
from libsrv.generate import isbn_for, write_catalog
from libsrv.storage.journal import JournalStorage
from libsrv.storage.linelog import LineLog, encode_line
from tests.helpers import wait_until

pytestmark = pytest.mark.fast

BOOKS = 2000
WRITER = r"""
import sys
from datetime import date
from libsrv.library import Policy, plan_write
from libsrv.protocol import Action, Request
from libsrv.storage.files import CatalogLock, sweep_temp_files
from libsrv.storage.journal import JournalStorage
from libsrv.storage.linelog import LineLog, encode_line
from libsrv.generate import isbn_for

path, first, books = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with CatalogLock(__import__("pathlib").Path(path)):
    sweep_temp_files(__import__("pathlib").Path(path))  # what a server does at start
storage = JournalStorage(path, compact_min=books)
policy = Policy()
n = first
while True:
    # write n: in even rounds lend every book once, in odd rounds return each
    action = Action.LOAN_ISBN if (n // books) % 2 == 0 else Action.RETURN_ISBN
    request = Request(action, isbn=isbn_for(n % books), id=f"w{n}",
                      borrower=f"b{n}" if action == Action.LOAN_ISBN else None)
    reply = storage.write(request, lambda c, r=request: plan_write(r, c, policy, date.today()))
    print(n, reply["code"], flush=True)  # the acknowledgement
    n += 1
"""


def poll_quickly(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Like `wait_until`, but looking every millisecond: a compaction is over in tens of ms."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for a compaction to begin")
        time.sleep(0.001)


def expected_state(acknowledged: int) -> dict[str, bool]:
    """Whether each book is lent after writes 0..acknowledged-1 (write n touches book
    n % BOOKS, lending it in even rounds and returning it in odd ones)."""
    lent = {}
    for book in range(BOOKS):
        last = acknowledged - 1 - (acknowledged - 1 - book) % BOOKS  # its last write
        lent[isbn_for(book)] = book < acknowledged and (last // BOOKS) % 2 == 0
    return lent


def test_a_generation_prepared_ahead_carries_what_was_written_after_its_cut(
        tmp_path: Path) -> None:
    journal = LineLog(tmp_path / "log")
    journal.open()
    journal.append({"book": 1})
    nxt = journal.prepare([encode_line({"id": "kept"})], journal.position)
    journal.append({"book": 2})  # after the cut, before the commit
    journal.append({"book": 3})
    follower = LineLog(tmp_path / "log")
    follower.open()
    assert journal.commit(nxt) == 2
    LineLog.discard(nxt)
    journal.append({"book": 4})
    fresh = LineLog(tmp_path / "log")
    assert fresh.open() == [{"id": "kept"}, {"book": 2}, {"book": 3}, {"book": 4}]
    # a reader that had read the old generation to its end skips what it already knows
    assert follower.catch_up() == [
        {"gen": 2, "base": [1, nxt.cut[1]], "carried": len(encode_line({"id": "kept"})),
         "records": 1},
        {"book": 4}]


class Acks:
    """The writer's acknowledgements, read as they come."""

    def __init__(self, writer: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(writer,), daemon=True)
        self._thread.start()

    def _read(self, writer: subprocess.Popen[str]) -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            self.lines.append(line)

    def finish(self) -> list[str]:
        self._thread.join(30)
        return self.lines


def test_sigkill_while_compacting_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "fire.json", BOOKS)
    pattern = glob.escape(str(path)) + "*.tmp-*"
    rng = random.Random(11)
    acknowledged = 0  # writes 0..acknowledged-1 were acknowledged, in order
    codes: set[str] = set()
    kills_during_compaction = 0
    for _ in range(12):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(acknowledged),
                                   str(BOOKS)], stdout=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parent.parent)
        acks = Acks(writer)
        try:
            # once a compaction has begun, kill after a random number of further writes: some
            # kills land while its files are written, others after it was put in place
            poll_quickly(lambda w=writer: glob.glob(pattern) or w.poll() is not None)
            target = len(acks.lines) + rng.choice([0, 0, 0, 0, 400, 1500])
            wait_until(lambda w=writer, t=target, a=acks: len(a.lines) >= t or w.poll() is not None,
                       timeout=60, message="more acknowledged writes")
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(30)
            # files left behind prove the kill interrupted a compaction
            kills_during_compaction += bool(glob.glob(pattern))
        finally:
            writer.kill()
        for line in acks.finish():
            if not line.endswith("\n"):
                break  # cut short by the kill: not an acknowledgement
            number, code = line.split()
            # the writer resumes at the first write it did not acknowledge, with the same id:
            # a write applied before the kill is answered from the id window, not applied again
            assert int(number) == acknowledged, (number, acknowledged)
            codes.add(code)
            acknowledged += 1
    assert codes == {"OK"}  # a lost or doubled write would have been refused
    storage = JournalStorage(path)
    served = {isbn_for(b): storage.read().get(isbn_for(b))["estado"] == LENT
              for b in range(BOOKS)}
    expected = expected_state(acknowledged)
    # the write in flight at the last kill may or may not have been applied
    in_flight = isbn_for(acknowledged % BOOKS)
    assert {k: v for k, v in served.items() if k != in_flight} == \
        {k: v for k, v in expected.items() if k != in_flight}
    storage.flush()
    storage.close()
    on_disk = Catalog.from_bytes(path.read_bytes())
    assert {isbn: on_disk.get(isbn)["estado"] == LENT for isbn in served} == served
    assert kills_during_compaction >= 3, kills_during_compaction
