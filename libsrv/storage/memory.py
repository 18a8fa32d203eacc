"""The `memory` engine: one process's catalog, held in memory and never written anywhere.

It keeps the contract of every engine (a write's decision runs on the current catalog, ids are
remembered and replayed, `seq` counts the changes) without files or locks, so `Service` and the
library's rules can be exercised in milliseconds: the tests' fast tier, a notebook cell. A
server's processes share nothing through it, so `serve` does not offer it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from libsrv.catalog import Catalog
from libsrv.decision import Decide
from libsrv.defaults import DEDUP_SECONDS
from libsrv.protocol import Request
from libsrv.storage.base import AppliedRequests, Storage
from libsrv.storage.files import StorageError


class MemoryStorage(Storage):
    name = "memory"

    def __init__(self, catalog: Catalog, *, remember_seconds: float = DEDUP_SECONDS) -> None:
        self.path = Path(":memory:")
        self._catalog = catalog
        self._applied = AppliedRequests(seconds=remember_seconds)
        self._seq = 0
        self._closed = False

    @classmethod
    def from_bytes(cls, data: bytes, **options: Any) -> MemoryStorage:
        """A catalog file's bytes (the class's db.json format), parsed as a file would be."""
        return cls(Catalog.from_bytes(data, "<memory>"), **options)

    def _open(self) -> Catalog:
        if self._closed:
            raise StorageError("the in-memory catalog was closed")
        return self._catalog

    def read(self) -> Catalog:
        return self._open()

    def write(self, request: Request, decide: Decide, *,
              wait: float | None = None) -> dict[str, Any]:
        catalog = self._open()
        replayed = self._applied.replay(request)
        if replayed is not None:
            return replayed
        outcome = decide(catalog)
        if outcome.change is not None:
            catalog.replace(outcome.change)
            self._seq += 1
        if request.id is not None:  # refusals too: a retry gets the same answer
            self._applied.remember(request.id, request.fingerprint(), outcome.reply)
        return outcome.reply

    @property
    def seq(self) -> int | None:
        return self._seq

    def close(self) -> None:
        self._closed = True
