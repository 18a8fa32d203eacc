"""Storage engines behind one small interface (`Storage`), chosen by name."""

from __future__ import annotations

from pathlib import Path

from libsrv.defaults import DEDUP_SECONDS, DEFAULT_ENGINE
from libsrv.storage.base import IdReused, Storage
from libsrv.storage.files import (
    DEFAULT_LOCK_TIMEOUT,
    CatalogLock,
    LockBusy,
    LockTimeout,
    StorageError,
    real_catalog_path,
    sweep_temp_files,
)
from libsrv.storage.journal import JournalStorage
from libsrv.storage.jsonfile import JsonStorage

ENGINES: dict[str, type[Storage]] = {
    engine.name: engine for engine in (JournalStorage, JsonStorage)}  # as ENGINE_NAMES

__all__ = ["DEFAULT_ENGINE", "ENGINES", "IdReused", "LockBusy", "LockTimeout", "Storage",
           "StorageError", "open_storage", "prepare_files"]


def open_storage(engine: str, path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 locking: bool = True, fsync: bool | None = None,
                 remember_seconds: float = DEDUP_SECONDS) -> Storage:
    """Open the catalog at `path` with the named engine. `fsync=None` takes the engine's
    default (json: on, as the class's design; journal: off, see docs/storage.md).
    `remember_seconds`: how long request ids are remembered at least (see AppliedRequests)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown storage engine {engine!r}; choose from {', '.join(ENGINES)}")
    cls = ENGINES[engine]
    if fsync is None:
        return cls(path, lock_timeout=lock_timeout, locking=locking,
                   remember_seconds=remember_seconds)
    return cls(path, lock_timeout=lock_timeout, locking=locking, fsync=fsync,
               remember_seconds=remember_seconds)


def prepare_files(path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[Path]:
    """Start-up housekeeping, once per server: delete temporary files a crashed writer left
    beside the catalog. Returns what it removed."""
    path = real_catalog_path(path)
    if not path.exists():
        raise StorageError(f"the catalog file {path} does not exist")
    if not path.is_file():  # checked before the lock, which would leave a file beside it
        raise StorageError(f"the catalog {path} is not a file (is it a folder?); --db takes "
                           "the catalog's JSON file")
    with CatalogLock(path, timeout=lock_timeout):
        return sweep_temp_files(path)
