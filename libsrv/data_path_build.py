"""The broker's compiled data path (`libsrv/data_path.c`): built on first use, with the
broker's constants from the Python modules that define them; loaded with ctypes; or a sentence
saying why not (then the Python broker does the same work).

It is built with the machine's C compiler (``$CC``, else ``cc``) against the very libzmq that
pyzmq has loaded in this process, so that the sockets Python made are the ones the C code
uses; nothing else is needed (no zmq.h, no Python headers). The library is cached under
``$XDG_CACHE_HOME/libsrv`` (else ``~/.cache/libsrv``), named by a hash of the source, the
constants and that libzmq, so a changed source, constant or pyzmq builds anew. Linux only (it
reads which libzmq is loaded from /proc/self/maps); elsewhere, and without a compiler, the
broker is Python. `build_library` builds any such C file the same way (the load generator's
loops, `libsrv_bench.client_loop`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import zmq
import zmq.backend  # loads libzmq into the process

from libsrv.broker_core import MAX_ATTEMPTS, NO_WORKER_ROOM, STOP_GRACE_SECONDS
from libsrv.config import ConfigError
from libsrv.defaults import DATA_PATH_VARIABLE
from libsrv.envelope import MAX_HOPS
from libsrv.peers import PEER_BACKLOG_BYTES, PEER_IN_PROGRESS

SOURCE = Path(__file__).with_name("data_path.c")
# libzmq's API as the C files use it, included by each (so it is part of every cache key)
HEADER = Path(__file__).with_name("zmq_api.h")
BUILD_SECONDS = 120.0
# Replies the C loop may have asked of the Python side (INTERNAL, BAD_REQUEST) and not yet
# been given; past it, it reads no more clients until they come (so a flood of refusable
# messages is pushed back on, and the pipe between the two never fills).
MAX_ASKS = 256


def definitions() -> dict[str, int | float]:
    """The broker's constants the C loop is built with: taken from the Python modules that
    define them, so that each is written in one place."""
    return {"MAX_HOPS": MAX_HOPS, "MAX_ATTEMPTS": MAX_ATTEMPTS,
            "STOP_GRACE_SECONDS": float(STOP_GRACE_SECONDS), "NO_WORKER_ROOM": NO_WORKER_ROOM,
            "PEER_IN_PROGRESS": PEER_IN_PROGRESS, "PEER_BACKLOG_BYTES": PEER_BACKLOG_BYTES,
            "MAX_ASKS": MAX_ASKS}


class DataPathUnavailable(ConfigError):
    """The compiled data path cannot be built or loaded here; the message says why (a
    server asked for it with ``data_path="compiled"`` cannot start)."""


def loaded_libzmq() -> Path:
    """The libzmq file pyzmq loaded into this process."""
    zmq.zmq_version()  # make sure the backend is loaded
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        raise DataPathUnavailable("this system does not say which libzmq is loaded "
                                  "(no /proc/self/maps)") from None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)  # address, perms, offset, dev, inode[, path]
        if len(fields) == 6 and "libzmq" in Path(fields[5]).name:
            return Path(fields[5])
    raise DataPathUnavailable("pyzmq's libzmq is not a separate library here (statically "
                              "linked into pyzmq)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "libsrv"


def library_path(libzmq: Path, source: Path = SOURCE,
                 constants: dict[str, int | float] | None = None) -> Path:
    """Where the library built from today's `source` (default: the data path) with
    `constants` against `libzmq` is kept."""
    constants = definitions() if constants is None else constants
    digest = hashlib.sha256(source.read_bytes() + HEADER.read_bytes())
    digest.update(repr(sorted(constants.items())).encode())
    stat = libzmq.stat()
    digest.update(f"{libzmq}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return cache_dir() / f"{source.stem}-{digest.hexdigest()[:16]}.so"


def build_library(source: Path, constants: dict[str, int | float],
                  unavailable: type[Exception]) -> Path:
    """`source` (C, using libzmq's API) built as a shared library against pyzmq's libzmq
    with `constants` as -D definitions, now if it is not in the cache; `unavailable(reason)`
    is raised when it cannot be. Safe to call from several processes at once: each builds
    into a temporary file and moves it in place."""
    if not sys.platform.startswith("linux"):
        raise unavailable(f"built on Linux only, not on {sys.platform}")
    try:
        libzmq = loaded_libzmq()
    except DataPathUnavailable as error:
        raise unavailable(str(error)) from None
    target = library_path(libzmq, source, constants)
    if target.exists():
        return target
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise unavailable(f"no C compiler ({compiler!r} is not on PATH)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(fd)
    command = [compiler, "-O2", "-shared", "-fPIC", f"-I{HEADER.parent}",
               *(f"-D{name}={value}" for name, value in constants.items()),
               "-o", partial, str(source), str(libzmq), f"-Wl,-rpath,{libzmq.parent}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_SECONDS,
                              check=False)
        if done.returncode != 0:
            raise unavailable(f"{compiler} failed: {done.stderr.strip()[-500:]}")
        os.replace(partial, target)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise unavailable(f"{compiler} could not run: {error}") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def build() -> Path:
    """The compiled data path, built now if it is not in the cache (DataPathUnavailable when
    it cannot be)."""
    return build_library(SOURCE, definitions(), DataPathUnavailable)


@cache
def load() -> ctypes.CDLL:
    """The loaded library, its entry point typed (DataPathUnavailable when it cannot be)."""
    lib = ctypes.CDLL(str(build()))
    run = lib.libsrv_data_path_run
    run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double,
                    ctypes.c_long, ctypes.c_long]
    run.restype = ctypes.c_int
    return lib


def chosen(setting: str) -> tuple[ctypes.CDLL | None, str]:
    """For a server's `data_path` setting (``auto``, ``compiled`` or ``python``; the
    LIBSRV_DATA_PATH variable overrides ``auto``): the library to run, or None for the Python
    broker, and a sentence for the log. ``compiled`` that cannot be built raises."""
    if setting == "auto":
        setting = os.environ.get(DATA_PATH_VARIABLE) or "auto"
    if setting == "python":
        return None, "data path: Python (as asked)"
    try:
        return load(), "data path: compiled (libsrv/data_path.c)"
    except (DataPathUnavailable, OSError) as error:
        if setting == "compiled":
            raise DataPathUnavailable(f"the compiled data path cannot be used: {error}") \
                from None
        return None, f"data path: Python (the compiled one is not available: {error})"


def main() -> int:
    """`python -m libsrv.data_path_build`: build now, and say where or why not."""
    try:
        print(build())
    except (DataPathUnavailable, OSError) as error:  # OSError: the cache folder, say
        print(f"not built: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
