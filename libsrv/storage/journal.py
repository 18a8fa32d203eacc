"""The `journal` engine (the default): a JSON snapshot plus an append-only journal.

Every process keeps the whole catalog in memory. A write appends one line holding the book's
new record (and the request's id and reply) to ``<catalog>.journal`` under the lock; the reply
goes out after the line is in the file. Before answering anything, a process reads the lines
other processes appended since it last looked (one ``stat`` when nothing changed), so no reader
sees a state older than an acknowledged write, and a request costs the same with 10 books or
1,000,000. Records are whole book states, so replaying one twice is harmless: that is what makes
a crash between rewriting the snapshot and starting a new journal generation safe.

The snapshot (the catalog file itself, in the class's format) is rewritten atomically when the
journal grows as long as the catalog, when the server is idle and the catalog small, and on
shutdown.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from libsrv.catalog import Catalog, CatalogError
from libsrv.protocol import Request
from libsrv.storage.base import AppliedRequests, Decide, Storage
from libsrv.storage.files import DEFAULT_LOCK_TIMEOUT, CatalogLock, StorageError, atomic_write
from libsrv.storage.linelog import LineLog, Record

log = logging.getLogger("libsrv.storage")

MIN_COMPACT_RECORDS = 1000
IDLE_FLUSH_MAX_BOOKS = 200_000  # an idle snapshot of more books would stall the next write


def read_catalog(path: Path) -> Catalog:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StorageError(f"the catalog file {path} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read the catalog file {path}: {exc.strerror}") from exc
    return Catalog.from_bytes(data)


class JournalStorage(Storage):
    name = "journal"

    def __init__(self, path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 locking: bool = True, fsync: bool = False,
                 compact_min: int = MIN_COMPACT_RECORDS) -> None:
        self.path = Path(path)
        self.compact_min = compact_min
        self._lock = CatalogLock(self.path, timeout=lock_timeout, enabled=locking)
        self._log = LineLog(Path(f"{self.path}.journal"), fsync=fsync,
                           exclusive=locking)
        self._applied = AppliedRequests()
        self._pending = 0  # book changes in the journal that the snapshot does not hold yet
        with self._lock:
            self._reload()

    def _reload(self) -> None:
        """(Lock held.) Read the snapshot and replay the journal on top of it."""
        self._catalog = read_catalog(self.path)
        self._applied = AppliedRequests()
        self._pending = 0
        self._apply(self._log.open())

    def _apply(self, records: list[Record]) -> None:
        for record in records:
            if "gen" in record:
                self._pending = 0
                continue
            book = record.get("book")
            if book is not None:
                try:
                    self._catalog.replace(book)
                except (KeyError, TypeError):
                    raise StorageError(
                        f"{self._log.path} changes a book that is not in {self.path}") from None
                self._pending += 1
            rid = record.get("id")
            if rid is not None:
                self._applied.remember(rid, record["fp"], record["reply"])

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

    def read(self) -> Catalog:
        self._catch_up()
        return self._catalog

    def write(self, request: Request, decide: Decide) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            replayed = self._applied.replay(request)
            if replayed is not None:
                return replayed
            outcome = decide(self._catalog)
            if outcome.change is None:
                return outcome.reply
            record: Record = {"book": outcome.change}
            if request.id is not None:
                record.update(id=request.id, fp=request.fingerprint(), reply=outcome.reply)
            self._log.append(record)
            self._apply([record])
            if self._pending >= max(self.compact_min, len(self._catalog)):
                try:
                    self._compact()
                except StorageError as error:  # the write itself is safe in the journal
                    log.warning("could not rewrite the snapshot (will retry later): %s", error)
        return outcome.reply

    def _compact(self) -> None:
        """(Lock held, caught up.) Rewrite the snapshot, then start a new journal generation
        that carries the remembered request ids."""
        try:
            data = self._catalog.to_bytes()
        except (UnicodeEncodeError, CatalogError) as exc:
            raise StorageError(f"cannot encode the catalog: {exc}") from exc
        atomic_write(self.path, data)
        self._log.rewrite(self._applied.records())
        self._pending = 0

    def flush(self) -> None:
        with self._lock:
            self._catch_up()
            if self._pending:
                self._compact()

    def idle(self) -> None:
        self._catch_up()
        if self._pending and len(self._catalog) <= IDLE_FLUSH_MAX_BOOKS:
            self.flush()

    def close(self) -> None:
        self._log.close()
