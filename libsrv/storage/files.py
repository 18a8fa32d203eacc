"""File primitives shared by the storage engines: the catalog lock and atomic rewrites."""

from __future__ import annotations

import glob
import os
import secrets
import stat
import time
from pathlib import Path
from types import TracebackType

import filelock

from libsrv.defaults import DEFAULT_LOCK_TIMEOUT

# FileLock polls; its default 50 ms interval would set the pace under contention, where the
# lock is held for microseconds. A short interval costs a little CPU only while someone waits.
LOCK_POLL_SECONDS = 0.0002


class StorageError(RuntimeError):
    """The catalog files could not be read or written; the message says what and why."""


class LockTimeout(StorageError):
    """The catalog lock stayed held by someone else for longer than the time allowed."""


class LockBusy(LockTimeout):
    """`CatalogLock.briefly()` found the lock held; nothing was done."""




class CatalogLock:
    """The inter-process lock on ``<catalog>.lock``, taken with a timeout; reentrant.

    It is filelock's lock: the same primitive as `filelock.FileLock` (``flock`` of the whole
    file on Unix, ``LockFileEx`` on Windows) on the same file, taken through filelock's
    descriptor API on a descriptor this process keeps open. A `FileLock` held on the same path
    by any other program excludes us and we exclude it. `FileLock.acquire` itself costs about
    0.2 ms here (hundreds of Python calls and a dozen system calls per acquire), which would
    dominate every write; the descriptor API costs a few microseconds. Polling every 0.2 ms
    (not FileLock's default 50 ms) keeps a waiter from setting the pace under contention,
    since the lock is held for microseconds.

    The lock file is an ordinary file that anyone may delete; a holder's lock then excludes
    nobody who opens the file anew. So, on POSIX, the kit's own processes also lock the
    catalog's folder (``flock`` on the directory, which cannot be deleted while it holds the
    catalog), taken after the file and released before it: between the kit's processes that is
    what guarantees mutual exclusion; the file is what other programs see. (On Windows an open
    file cannot be deleted.) Catalogs in one folder therefore also take turns with each other.

    With ``enabled=False`` (the ``--unsafe-no-lock`` teaching switch) it does nothing, so that
    a class can watch lost updates happen.
    """

    def __init__(self, catalog_path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT,
                 enabled: bool = True) -> None:
        self.catalog = Path(catalog_path)
        self.path = Path(f"{catalog_path}.lock")
        self.timeout = timeout
        self.enabled = enabled
        self._fd = -1
        self._folder_fd = -1
        self._depth = 0
        self._brief: float | None = None

    def briefly(self, seconds: float) -> CatalogLock:
        """The lock for one `with`, waiting at most `seconds` and raising LockBusy after that
        (a worker then serves other requests and tries again later)."""
        self._brief = seconds
        return self

    def _open(self) -> int:
        if self._fd < 0:
            try:
                self._fd = create_new(self.path, self.catalog)
            except OSError as exc:
                raise StorageError(f"cannot open the lock file {self.path}: "
                                   f"{exc.strerror}") from exc
        return self._fd

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _lock_folder(self, deadline: float, brief: float | None) -> None:
        """(File lock held.) The folder's lock, polled until `deadline`; on failure the file
        lock is released too and the error raised."""
        if os.name != "posix":
            return
        if self._folder_fd < 0:
            try:
                self._folder_fd = os.open(self.path.parent, os.O_RDONLY)
            except OSError as exc:
                filelock.unlock_descriptor(self._fd)
                raise StorageError(f"cannot open the catalog's folder {self.path.parent}: "
                                   f"{exc.strerror}") from exc
        while not filelock.lock_descriptor(self._folder_fd, blocking=False):
            if time.monotonic() > deadline:
                filelock.unlock_descriptor(self._fd)
                raise self._timeout(brief)
            time.sleep(LOCK_POLL_SECONDS)

    def _timeout(self, brief: float | None) -> LockTimeout:
        if brief is not None:
            return LockBusy(f"the catalog lock {self.path} is held by another process")
        return LockTimeout(f"the catalog lock {self.path} has been held by another process for "
                           f"more than {self.timeout:g} s")

    def _still_the_lock_file(self, fd: int) -> bool:
        # Someone may have deleted and recreated the lock file; a lock on the old inode would
        # exclude nobody.
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def __enter__(self) -> CatalogLock:
        brief, self._brief = self._brief, None
        if not self.enabled:
            return self
        if self._depth:
            self._depth += 1
            return self
        deadline = time.monotonic() + (self.timeout if brief is None else brief)
        while True:
            fd = self._open()
            if filelock.lock_descriptor(fd, blocking=False):
                if self._still_the_lock_file(fd):
                    break
                filelock.unlock_descriptor(fd)
                self._close()
                continue
            if time.monotonic() > deadline:
                raise self._timeout(brief)
            time.sleep(LOCK_POLL_SECONDS)
        self._lock_folder(deadline, brief)
        self._depth = 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.enabled:
            return
        self._depth -= 1
        if self._depth == 0:
            if self._folder_fd >= 0:
                filelock.unlock_descriptor(self._folder_fd)
            filelock.unlock_descriptor(self._fd)


class TryLock:
    """A lock between processes that is taken only if free (``flock`` through filelock, on
    `path`), released by `release` or by the holder's death. For work that one process at a
    time should do, and that others may simply skip."""

    def __init__(self, path: Path, like: Path | None = None) -> None:
        self.path = path
        self.like = like  # whose permissions the file gets when created
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def try_acquire(self) -> bool:
        if self._fd >= 0:
            return True
        try:
            fd = create_new(self.path, self.like)
        except OSError:
            return False
        if filelock.lock_descriptor(fd, blocking=False):
            self._fd = fd
            return True
        os.close(fd)
        return False

    def release(self) -> None:
        if self._fd >= 0:
            filelock.unlock_descriptor(self._fd)
            os.close(self._fd)
            self._fd = -1


def temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def real_catalog_path(path: Path | str) -> Path:
    """The catalog's real file: through symbolic links, so that every name of one file shares
    one lock and one journal, and a rewrite replaces the target and keeps the link."""
    return Path(path).resolve()


def mode_of(path: Path | None) -> int | None:
    """The permission bits of `path`, or None when there is no such file."""
    if path is None:
        return None
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def create_new(path: Path, like: Path | None) -> int:
    """Open `path` read-write, creating it with the permissions of `like` (the catalog: a
    private catalog keeps its lock, journal and snapshots private) if it does not exist."""
    mode = mode_of(like)
    while True:  # someone may delete or create it between our two tries
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL,
                         0o644 if mode is None else mode)
        except FileExistsError:
            try:
                return os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
        if mode is not None:
            os.fchmod(fd, mode)  # the umask may have taken bits away
        return fd


def atomic_write(path: Path, data: bytes, *, fsync: bool = True,
                 like: Path | None = None) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix.

    Writes a temporary file beside it, fsyncs it, renames it over `path` and fsyncs the folder.
    The new file has the permissions of `like` (default: of `path` itself).
    """
    tmp = temp_name(path)
    os.close(create_temp(tmp, data, fsync=fsync, like=like or path))
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write {path}: {exc.strerror or exc}") from exc
    if fsync:
        fsync_folder(path.parent)


def create_temp(tmp: Path, data: bytes, *, fsync: bool = True, like: Path | None = None) -> int:
    """Create the new file `tmp` holding `data` (synced to disk with `fsync`) with the
    permissions of `like` when given; a descriptor on it (read-write, append), the caller's to
    close. On failure nothing is left behind."""
    fd = -1
    mode = mode_of(like)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                     0o644 if mode is None else mode)
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write {tmp}: {exc.strerror or exc}") from exc
    return fd


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
