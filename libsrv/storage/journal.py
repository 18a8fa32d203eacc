"""The `journal` engine (the default): a JSON snapshot plus an append-only journal.

Every process keeps the whole catalog in memory. A write appends one line holding the book's
new record, its sequence number ``q`` (the change's place in the catalog's global order: the
last one plus 1, stamped under the lock) and the action (and the request's id and reply) to
``<catalog>.journal`` under the lock; the reply goes out after the line is in the file. The
order of the lines is the order of the changes; a generation's header carries the number its
snapshot reaches (``seq``), so the numbering survives compactions and restarts.

Before answering anything, a process reads the lines other processes appended since it last
looked (one ``stat`` when nothing changed), so no reader sees a state older than an
acknowledged write, and a request by ISBN costs the same with 10 books or 1,000,000 (a title
search scans every title). Records are whole book states, so replaying one twice is harmless:
that is what makes a crash between rewriting the snapshot and starting a new journal
generation safe.

The snapshot (the catalog file itself, in the class's format) is rewritten when the journal
grows as long as the catalog (at least 1,000 records), when the server is idle, and on
shutdown. Requests never wait for it: a background thread writes the snapshot and the journal's
next generation from a copy taken at a cut, and the next write puts them in place with two
renames (see `Compaction`). One process at a time compacts (`<catalog>.compact.lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libsrv.catalog import Book, Catalog, CatalogError, document_bytes
from libsrv.decision import Decide
from libsrv.defaults import DEDUP_SECONDS
from libsrv.protocol import Request
from libsrv.storage.base import AppliedRequests, Storage
from libsrv.storage.files import (
    DEFAULT_LOCK_TIMEOUT,
    CatalogLock,
    StorageError,
    TryLock,
    create_temp,
    real_catalog_path,
    temp_name,
)
from libsrv.storage.linelog import LineLog, NextGeneration, Record

log = logging.getLogger("libsrv.storage")

OUTSIDE_ACTION = "outside"  # the action of a change another program made to the catalog file
NEXT_SNAPSHOT = "next_snapshot"  # a journal record: the snapshot a compaction is putting in place
MIN_COMPACT_RECORDS = 1000
UNLOCKED_RELOAD_TRIES = 20
COMPACT_RETRY_RECORDS = 256  # a process that found another compacting waits this many records


@dataclass(frozen=True)
class KnownFile:
    """The catalog file as this process last knew it: to notice another program's rewrite,
    and to tell which books that program changed."""

    signature: tuple[int, int, int, int]
    identity: str
    books: dict[str, Book]


def file_signature(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is replaced or rewritten in place."""
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_snapshot(path: Path) -> tuple[Catalog, KnownFile]:
    """The catalog file, parsed, and what identifies it."""
    try:
        with open(path, "rb") as file:
            st = os.fstat(file.fileno())
            data = file.read()
    except FileNotFoundError:
        raise StorageError(f"the catalog file {path} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read the catalog file {path}: {exc.strerror}") from exc
    catalog = Catalog.from_bytes(data, path)
    return catalog, KnownFile(file_signature(st), snapshot_identity(data),
                              {book["ISBN"]: book for book in catalog})


def _still_in_place(path: Path, known: KnownFile) -> bool:
    try:
        return file_signature(os.stat(path)) == known.signature
    except OSError:
        return False


def snapshot_identity(data: bytes) -> str:
    """What ties a journal to the snapshot it extends: a digest of the snapshot's bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


def journal_belongs(header: Record, records: list[Record], identity: str) -> bool:
    """Whether a journal generation (`header`, `records`) may be replayed over the snapshot
    whose identity is `identity`: it names that snapshot (in its header, or in a marker a
    compaction wrote before putting a new snapshot in place, in case it died right after),
    names none (written before journals named theirs), or changes no book at all."""
    named = header.get("snapshot")
    if named is None or named == identity:
        return True
    if any(r.get(NEXT_SNAPSHOT) == identity for r in records):
        return True
    return not any("book" in r for r in records)


def journal_path(catalog: Path | str) -> Path:
    """The journal beside a catalog (symbolic links resolved, as the engine does)."""
    return Path(f"{real_catalog_path(catalog)}.journal")


def pending_changes(journal: Path) -> int:
    """How many book changes the journal beside a catalog holds (0 when there is none)."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return 0
    changes = 0
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            changes += isinstance(record, dict) and "book" in record
    return changes


class JournalStorage(Storage):
    name = "journal"

    def __init__(self, path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 locking: bool = True, fsync: bool = False,
                 compact_min: int = MIN_COMPACT_RECORDS,
                 remember_seconds: float = DEDUP_SECONDS) -> None:
        self.path = real_catalog_path(path)
        self.remember_seconds = remember_seconds
        self.compact_min = compact_min
        self._lock = CatalogLock(self.path, timeout=lock_timeout, enabled=locking)
        self._log = LineLog(Path(f"{self.path}.journal"), fsync=fsync,
                           exclusive=locking, like=self.path)
        self._applied = AppliedRequests(seconds=remember_seconds)
        self._pending = 0  # book changes in the journal that the snapshot does not hold yet
        self._seq = 0  # the last change's number in the catalog's global order
        self._compaction: Compaction | None = None
        self._next_try = 0  # `_pending` at which to ask for the compaction lock again
        # one process at a time writes a snapshot; the others go on serving
        self._compacting = TryLock(Path(f"{self.path}.compact.lock"), like=self.path)
        # The snapshot is parsed before the lock is taken (a million books take seconds, and
        # the other processes' writes must not wait for that): it is replaced only by a
        # rename, so what was read is one whole version; under the lock it is used if it is
        # still the file in place, and read again if a compaction replaced it meanwhile.
        early = read_snapshot(self.path) if self._lock.enabled else None
        with self._lock:
            self._reload(early)

    def _reload(self, early: tuple[Catalog, KnownFile] | None = None) -> None:
        """(Lock held.) Read the snapshot (or take `early`, read before the lock, if it is
        still the file in place) and replay the journal on top of it, if the journal extends
        this snapshot (see `journal_belongs`)."""
        if early is not None and not _still_in_place(self.path, early[1]):
            early = None
        # Without the lock (the teaching switch) another writer's compaction may replace both
        # files between our two reads: read them again before calling the pair mismatched.
        for _ in range(1 if self._lock.enabled else UNLOCKED_RELOAD_TRIES):
            self._catalog, self._file = early or read_snapshot(self.path)
            early = None
            identity = self._file.identity
            records = self._log.open(identity)
            if journal_belongs(self._log.header, records, identity):
                break
        else:
            raise StorageError(
                f"{self._log.path} does not belong to {self.path}: it extends another version "
                "of the catalog (was the catalog restored from a backup, or changed with "
                "--storage json?). Replaying it would put old changes over newer ones, so "
                f"the catalog is not opened. To go on from the catalog as it is, move "
                f"{self._log.path} away; to keep the journal's changes, put back the catalog "
                "it extends.")
        self._expected: set[str] = set()  # snapshots other processes' compactions announced
        self._applied = AppliedRequests(seconds=self.remember_seconds)
        self._pending = 0
        self._seq = int(self._log.header.get("seq") or 0)
        self._apply(records)

    def _apply(self, records: list[Record]) -> None:
        for record in records:
            if "gen" in record:
                self._pending = self._next_try = 0
                self._seq = max(self._seq, int(record.get("seq") or 0))
                if "snapshot" in record:
                    self._expected.add(record["snapshot"])
                continue
            if NEXT_SNAPSHOT in record:
                self._expected.add(record[NEXT_SNAPSHOT])
                continue
            book = record.get("book")
            if book is not None:
                try:
                    self._catalog.replace(book)
                except (KeyError, TypeError):
                    raise StorageError(
                        f"{self._log.path} changes a book that is not in {self.path}") from None
                self._pending += 1
                number = record.get("q")  # journals written before numbering: counted
                self._seq = max(self._seq, number) if isinstance(number, int) else self._seq + 1
            rid = record.get("id")
            if rid is not None:
                self._applied.remember_record(record)

    def _catch_up(self) -> None:
        records = self._log.catch_up()
        if records is None:
            with self._lock:
                self._reload()
        else:
            self._apply(records)

    @property
    def warnings(self) -> list[str]:
        return self._catalog.warnings

    @property
    def seq(self) -> int:
        return self._seq

    def read(self) -> Catalog:
        self._catch_up()
        if self._file_changed():
            with self._lock:
                self._catch_up()
                self._take_outside_changes()
        return self._catalog

    def _file_changed(self) -> bool:
        try:
            return file_signature(os.stat(self.path)) != self._file.signature
        except OSError:
            return False

    def _take_outside_changes(self) -> None:
        """(Lock held, caught up.) If another program rewrote the catalog file (the class's
        design allows any program holding the FileLock to), take the books it changed: those
        that differ from the file as this process knew it. They go into the journal, after a
        marker naming the new file, so that every process and every restart ends with them."""
        if not self._file_changed():
            return
        _, known = read_snapshot(self.path)
        if known.identity == self._file.identity or known.identity in self._expected:
            self._file = known  # touched only, or a snapshot of our own kind: nothing to take
            return
        changed = [book for isbn, book in known.books.items()
                   if isbn in self._file.books and self._file.books[isbn] != book]
        self._log.append({NEXT_SNAPSHOT: known.identity})
        for book in changed:
            record: Record = {"book": book, "q": self._seq + 1, "a": OUTSIDE_ACTION}
            self._log.append(record)
            self._apply([record])
        self._file = known
        if changed:
            log.warning("%s was rewritten by another program: took %d changed book(s) from it",
                        self.path, len(changed))

    def write(self, request: Request, decide: Decide, *,
              wait: float | None = None) -> dict[str, Any]:
        with self._lock if wait is None else self._lock.briefly(wait):
            self._catch_up()
            self._finish_compaction()
            self._take_outside_changes()
            replayed = self._applied.replay(request)
            if replayed is not None:
                return replayed
            outcome = decide(self._catalog)
            if outcome.change is None and request.id is None:
                return outcome.reply
            # a refusal with an id is remembered too: its retry gets the same answer, and the
            # id cannot be reused for another write
            record: Record = {} if outcome.change is None else {
                "book": outcome.change, "q": self._seq + 1, "a": str(request.action)}
            if request.id is not None:
                record.update(id=request.id, fp=request.fingerprint(), reply=outcome.reply,
                              **self._applied.stamp())
            self._log.append(record)
            self._apply([record])
            if self._pending >= max(self.compact_min, len(self._catalog)):
                self._start_compaction()
        return outcome.reply

    # -- compaction: the snapshot and the next journal generation are written on a thread;
    # only the cut (a shallow copy) and the commit (a short append and two renames) are done
    # here, with the lock held, so no request waits for a rewrite.

    def _start_compaction(self, *, now: bool = False) -> None:
        """(Lock held, caught up.) Begin writing a snapshot of the catalog as it is now, unless
        one is under way here or in another process. After finding another process at it, a
        writer asks again only every COMPACT_RETRY_RECORDS records (unless `now`)."""
        if self._compaction is not None or (self._pending < self._next_try and not now):
            return
        if not self._compacting.try_acquire():  # another process is at it: ask again later
            self._next_try = self._pending + COMPACT_RETRY_RECORDS
            return
        self._next_try = 0
        self._compaction = Compaction(self.path, self._log, self._catalog.snapshot(),
                                      self._catalog.shape, self._applied.snapshot(), self._seq)
        self._compaction.start()

    def _finish_compaction(self, *, wait: bool = False) -> None:
        """(Lock held, caught up.) Put a finished compaction in place: the snapshot first,
        then the journal's next generation (a crash between the two leaves the old journal,
        whose whole-record lines replay harmlessly over the newer snapshot)."""
        job = self._compaction
        if job is None or not job.finished(wait=wait):
            return
        self._compaction = None
        try:
            if job.error is not None:
                raise job.error
            if job.cut[0] != self._log.position[0]:
                # another process compacted meanwhile (as at shutdown): its snapshot is newer,
                # and ours must not replace it
                log.info("a newer snapshot was written meanwhile; dropping this one")
                return
            # if we die between the two steps below, the old journal must still be accepted
            # over the new snapshot (replaying it there is harmless): say so in it first
            self._log.append({NEXT_SNAPSHOT: job.identity})
            job.install_snapshot()
            self._file = KnownFile(file_signature(os.stat(self.path)), job.identity,
                                   {book["ISBN"]: book for book in job.books})
            # the records written since the cut are book changes, but for that marker
            self._pending = self._log.commit(job.next_generation) - 1
        except StorageError as error:  # the journal still holds everything: retry later
            log.warning("could not rewrite the snapshot (will retry later): %s", error)
        finally:
            job.discard()
            self._compacting.release()

    def _compact(self) -> None:
        """(Lock held, caught up.) Compact now, on this thread (at shutdown)."""
        self._finish_compaction(wait=True)
        if not self._pending:
            return
        self._compacting.try_acquire()  # at shutdown, whoever else holds it is also done
        self._compaction = Compaction(self.path, self._log, self._catalog.snapshot(),
                                      self._catalog.shape, self._applied.snapshot(), self._seq)
        self._compaction.run()
        self._finish_compaction()

    def flush(self) -> None:
        with self._lock:
            self._catch_up()
            self._compact()
            if self._pending:  # the rewrite failed (logged): say so, the journal keeps all
                raise StorageError(f"{self.path} still lacks {self._pending} change(s) that "
                                   f"only {self._log.path} holds")

    def idle(self) -> None:
        self._catch_up()
        job = self._compaction
        if not self._pending and (job is None or not job.finished()):
            return  # nothing to do: leave the lock alone (another program may hold it)
        with self._lock:
            self._catch_up()
            self._finish_compaction()
            if self._pending:
                self._start_compaction(now=True)

    @property
    def compacting(self) -> bool:
        """Whether this process has a snapshot under way (written or waiting to be put in
        place)."""
        return self._compaction is not None

    def close(self) -> None:
        if self._compaction is not None:
            self._compaction.finished(wait=True)
            self._compaction.discard()
            self._compaction = None
        self._compacting.release()
        self._log.close()


class Compaction:
    """A snapshot and the journal generation after it, written from copies on a thread.

    `books` (a shallow copy: records are never changed in place) and `ids` are taken
    with the lock held; the files are written to temporary names and synced; `install_snapshot`
    and `LineLog.commit` put them in place later, again with the lock held."""

    def __init__(self, path: Path, journal: LineLog, books: list[Book], shape: str,
                 ids: list[tuple[str, tuple[str, str]]], seq: int) -> None:
        self.path = path
        self.seq = seq  # the last change `books` holds
        self._journal = journal
        self.books, self._shape, self._ids = books, shape, ids
        self.cut = journal.position
        self.snapshot_tmp: Path | None = None
        self.identity = ""  # of the snapshot written
        self.next_generation: NextGeneration
        self.error: StorageError | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self.run, name="libsrv-compaction", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        try:
            try:
                data = document_bytes(self.books, shape=self._shape)
            except (UnicodeEncodeError, CatalogError, TypeError, ValueError) as exc:
                raise StorageError(f"cannot encode the catalog: {exc}") from exc
            tmp = temp_name(self.path)
            os.close(create_temp(tmp, data, like=self.path))
            self.snapshot_tmp = tmp
            self.identity = snapshot_identity(data)
            self.next_generation = self._journal.prepare(AppliedRequests.lines(self._ids),
                                                         self.cut, self.identity, self.seq)
        except StorageError as error:
            self.error = error
        except Exception as error:  # a thread must not die silently
            self.error = StorageError(f"compaction failed: {type(error).__name__}: {error}")
        finally:
            self._ids = []  # the books stay: once in place, they are what the file holds
            self._done.set()

    def finished(self, *, wait: bool = False) -> bool:
        """Whether the files are written (or failed); with `wait`, after waiting for them."""
        if wait and self._thread.is_alive():
            self._thread.join()
        return self._done.is_set()

    def install_snapshot(self) -> None:
        if self.snapshot_tmp is None:
            raise StorageError("the snapshot was not written")
        try:
            os.replace(self.snapshot_tmp, self.path)
        except OSError as exc:
            raise StorageError(f"could not write {self.path}: {exc.strerror or exc}") from exc
        self.snapshot_tmp = None

    def discard(self) -> None:
        """Remove what was written and not put in place."""
        if self.snapshot_tmp is not None:
            self.snapshot_tmp.unlink(missing_ok=True)
            self.snapshot_tmp = None
        if self._done.is_set() and self.error is None:
            LineLog.discard(self.next_generation)
