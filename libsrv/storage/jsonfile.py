"""The `json` engine: the class's design, kept as the baseline for experiments.

The catalog file is the only copy of the state. A write takes the lock, reads the whole file
(when another process changed it), changes one book and writes the whole file back atomically
(temporary file, fsync, rename). Reads parse the file again whenever it changed, so every write
costs every process a full parse: that is the cost the `journal` engine removes.

Request ids of applied writes go to ``<catalog>.requests``: the record is appended before the
rename (an intent) and is valid unless a later ``{"void": id}`` cancels it. The next writer checks
the last intent against the catalog under the lock: a loan or return always changes the book,
so an intent whose new record is not in the file belongs to a writer that died before its
rename, and is voided.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from libsrv.catalog import Catalog, CatalogError
from libsrv.decision import Decide
from libsrv.defaults import DEDUP_SECONDS, DEDUP_WINDOW
from libsrv.domain import normalize_isbn
from libsrv.protocol import Request
from libsrv.storage.base import AppliedRequests, Storage
from libsrv.storage.files import (
    DEFAULT_LOCK_TIMEOUT,
    CatalogLock,
    StorageError,
    atomic_write,
    real_catalog_path,
)
from libsrv.storage.journal import file_signature, pending_changes
from libsrv.storage.linelog import LineLog, Record


class JsonStorage(Storage):
    name = "json"

    def __init__(self, path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 locking: bool = True, fsync: bool = True,
                 remember_seconds: float = DEDUP_SECONDS) -> None:
        self.path = real_catalog_path(path)
        self.remember_seconds = remember_seconds
        self._fsync = fsync
        self._lock = CatalogLock(self.path, timeout=lock_timeout, enabled=locking)
        self._requests = LineLog(Path(f"{self.path}.requests"), fsync=fsync,
                                 exclusive=locking, like=self.path)
        self._applied = AppliedRequests(seconds=remember_seconds)
        self._last_intent: Record | None = None
        self._fd = -1  # the loaded version stays open, so its inode number is not reused
        self._catalog: Catalog | None = None
        self._loaded: tuple[int, int, int, int] = (-1, -1, -1, -1)
        journal = Path(f"{self.path}.journal")
        changes = pending_changes(journal)
        if changes:  # the journal engine's changes not yet in the file: never ignore them
            raise StorageError(
                f"{journal} holds {changes} change(s) that {self.path} may lack (written with "
                "--storage journal). Start once with --storage journal and stop it cleanly: "
                "the journal is then folded into the catalog and the json engine can take "
                "over.")
        with self._lock:
            self._load()
            self._reload_requests()

    # -- the catalog file

    def _load(self) -> Catalog:
        """The catalog as the file holds it now; parsed again only when the file changed."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise StorageError(f"the catalog file {self.path} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from exc
        # the same file, unchanged: also a program that rewrote it in place (same inode)
        # changed its size or its modification time
        if self._catalog is not None and self._fd >= 0 and \
                file_signature(os.fstat(fd)) == self._loaded:
            os.close(fd)
            return self._catalog
        try:
            size = os.fstat(fd).st_size
            chunks = []
            while size > 0:
                chunk = os.read(fd, size)
                if not chunk:
                    break
                chunks.append(chunk)
                size -= len(chunk)
            catalog = Catalog.from_bytes(b"".join(chunks), self.path)
        except BaseException:
            os.close(fd)
            raise
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._catalog, self._loaded = fd, catalog, file_signature(os.fstat(fd))
        return catalog

    def _adopt(self, catalog: Catalog) -> None:
        """(Lock held, just renamed.) Keep the file just written open as the loaded version."""
        fd = os.open(self.path, os.O_RDONLY)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._catalog, self._loaded = fd, catalog, file_signature(os.fstat(fd))

    @property
    def warnings(self) -> list[str]:
        return self._load().warnings

    def read(self) -> Catalog:
        return self._load()

    # -- request ids

    def _reload_requests(self) -> None:
        self._applied = AppliedRequests(seconds=self.remember_seconds)
        self._last_intent = None
        self._note(self._requests.open())

    def _note(self, records: list[Record]) -> None:
        for record in records:
            if "void" in record:  # cancels the intent just before it
                if self._last_intent is not None and self._last_intent.get("id") is not None:
                    self._applied.forget(self._last_intent["id"])
                self._last_intent = None
            elif "book" in record:  # an intent: every write leaves one, with or without an id
                if record.get("id") is not None:
                    self._applied.remember_record(record)
                self._last_intent = record
            elif "id" in record:  # a refusal, or an id carried into a new generation
                self._applied.remember_record(record)
                self._last_intent = None
            else:
                self._last_intent = None

    def _catch_up_requests(self) -> None:
        records = self._requests.catch_up()
        if records is None:
            self._reload_requests()
        else:
            self._note(records)

    def _void_dead_intent(self, catalog: Catalog) -> None:
        intent = self._last_intent
        if intent is None:
            return
        book = intent["book"]
        if catalog.get(normalize_isbn(book["ISBN"])) != book:
            self._requests.append({"void": 1})
            self._note([{"void": 1}])
        self._last_intent = None

    # -- writing

    def write(self, request: Request, decide: Decide, *,
              wait: float | None = None) -> dict[str, Any]:
        with self._lock if wait is None else self._lock.briefly(wait):
            catalog = self._load()
            self._catch_up_requests()
            self._void_dead_intent(catalog)
            replayed = self._applied.replay(request)
            if replayed is not None:
                return replayed
            outcome = decide(catalog)
            change = outcome.change
            if change is None:
                if request.id is not None:  # remembered too: a retry gets the same answer
                    refusal: Record = {"id": request.id, "fp": request.fingerprint(),
                                       "reply": outcome.reply, **self._applied.stamp()}
                    self._requests.append(refusal)
                    self._note([refusal])
                return outcome.reply
            intent: Record = {"book": change}
            if request.id is not None:
                intent.update(id=request.id, fp=request.fingerprint(), reply=outcome.reply,
                              **self._applied.stamp())
            self._requests.append(intent)
            before = catalog.get(change["ISBN"])
            catalog.replace(change)
            try:
                atomic_write(self.path, catalog.to_bytes(), fsync=self._fsync)
            except (StorageError, UnicodeEncodeError, CatalogError) as exc:
                if before is not None:
                    catalog.replace(before)
                self._last_intent = intent
                # If this fails too, the next writer voids it: the file lacks its change.
                with contextlib.suppress(StorageError):
                    self._void_dead_intent(catalog)
                raise StorageError(str(exc)) from exc
            self._adopt(catalog)
            if request.id is not None:
                self._applied.remember_record(intent)
            self._last_intent = None
            if self._requests.count > 2 * max(DEDUP_WINDOW, len(self._applied)):
                self._requests.rewrite(AppliedRequests.lines(self._applied.snapshot()))
        return outcome.reply

    def close(self) -> None:
        self._requests.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
