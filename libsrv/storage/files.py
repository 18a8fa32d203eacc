"""File primitives shared by the storage engines: the catalog lock and atomic rewrites."""

from __future__ import annotations

import glob
import os
import secrets
from pathlib import Path
from types import TracebackType

import filelock

# FileLock polls; its default 50 ms interval would set the pace under contention, where the
# lock is held for microseconds. A short interval costs a little CPU only while someone waits.
LOCK_POLL_SECONDS = 0.0002
DEFAULT_LOCK_TIMEOUT = 10.0


class StorageError(RuntimeError):
    """The catalog files could not be read or written; the message says what and why."""


class CatalogLock:
    """The inter-process FileLock on ``<catalog>.lock``, taken with a timeout.

    With ``enabled=False`` (the ``--unsafe-no-lock`` teaching switch) it does nothing, so that
    a class can watch lost updates happen.
    """

    def __init__(self, catalog_path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT,
                 enabled: bool = True) -> None:
        self.path = Path(f"{catalog_path}.lock")
        self.timeout = timeout
        self.enabled = enabled
        self._lock = filelock.FileLock(str(self.path)) if enabled else None

    def __enter__(self) -> CatalogLock:
        if self._lock is not None:
            try:
                self._lock.acquire(timeout=self.timeout, poll_interval=LOCK_POLL_SECONDS)
            except filelock.Timeout:
                raise StorageError(
                    f"the catalog lock {self.path} has been held by another process for more "
                    f"than {self.timeout:g} s") from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._lock is not None:
            self._lock.release()


def temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix.

    Writes a temporary file beside it, fsyncs it, renames it over `path` and fsyncs the folder.
    """
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write {path}: {exc.strerror or exc}") from exc
    if fsync:
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse to fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def sweep_temp_files(path: Path) -> list[Path]:
    """Delete temporary files left beside `path` by a writer that crashed. Hold the lock."""
    removed = []
    for leftover in glob.glob(glob.escape(str(path)) + "*.tmp-*"):
        try:
            os.unlink(leftover)
            removed.append(Path(leftover))
        except FileNotFoundError:
            pass
    return removed
