"""The load generator's compiled loops (`libsrv_bench/client_loop.c`): the layout of the arrays
they share with Python, built on first use like the broker's data path
(`libsrv.data_path_build`), loaded with ctypes; or a sentence saying why not (then the Python
loops do the same work).

Two loops: `bench_loop` drives the ZeroMQ clients of one bench load process
(`libsrv_bench.load_compiled`), `lean_loop` is one client of the calibration's lean generator
(`libsrv_bench.lean`). Which one a run used is in its summary (``load.loop``) and in
`compare`'s calibration row. ``LIBSRV_LOAD_LOOP`` = ``compiled`` (fail if it cannot be built),
``python``, or ``auto`` (the default: compiled when it can be).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

from libsrv.data_path_build import DataPathUnavailable, build_library

SOURCE = Path(__file__).with_name("client_loop.c")
LOOP_VARIABLE = "LIBSRV_LOAD_LOOP"
PYTHON_AS_ASKED = "python (as asked)"
LOOP_NAMES = ("auto", "compiled", "python")
# zmq_poll's items live on the C stack; a load process with more clients runs the Python loop
MAX_CLIENTS = 4096

# Each client's row in the `state` array (int64), in this order.
CLIENT_FIELDS = ("next_at", "intended", "sent_at", "first_sent", "sent", "attempts", "quota",
                 "current", "next", "batch_base", "avail")
# Each client's row in the `ptrs` array: its socket, its drawn frames and their offsets.
POINTER_FIELDS = ("socket", "frames", "offsets")
# One row per answered request in the `records` array (int64).
RECORD_FIELDS = ("client", "index", "intended", "sent", "received", "attempts", "offset",
                 "size")
# The `ctl` array (int64): the run's settings, what the loop filled, and what it asks for.
CONTROL_FIELDS = ("end", "interval", "think", "return_at", "records", "record_room",
                  "arena_used", "arena_room", "who", "need", "pending_at", "errno")
# What `bench_loop` returns.
STATUSES = ("done", "tick", "frames", "grow", "error")


def _index(prefix: str, names: tuple[str, ...]) -> dict[str, int]:
    return {f"{prefix}{name.upper()}": n for n, name in enumerate(names)}


F = _index("", CLIENT_FIELDS)
P = _index("", POINTER_FIELDS)
R = _index("", RECORD_FIELDS)
C = _index("", CONTROL_FIELDS)
STATUS = {name: n for n, name in enumerate(STATUSES)}


def definitions() -> dict[str, int | float]:
    """The -D definitions the C file is built with: every index above, so that the layout is
    written once, here."""
    return {**{f"F_{k}": v for k, v in F.items()}, **{f"P_{k}": v for k, v in P.items()},
            **{f"R_{k}": v for k, v in R.items()}, **{f"C_{k}": v for k, v in C.items()},
            **{f"STATUS_{k.upper()}": v for k, v in STATUS.items()},
            "CLIENT_FIELDS": len(CLIENT_FIELDS), "POINTERS": len(POINTER_FIELDS),
            "RECORD_FIELDS": len(RECORD_FIELDS), "MAX_CLIENTS": MAX_CLIENTS}


class LoopUnavailable(DataPathUnavailable):
    """The compiled loops cannot be built or loaded here; the message says why."""


def build() -> Path:
    return build_library(SOURCE, definitions(), LoopUnavailable)


@cache
def load() -> ctypes.CDLL:
    """The loaded library, its entry points typed (LoopUnavailable when it cannot be)."""
    lib = ctypes.CDLL(str(build()))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bench_loop.argtypes = [p, p, p, p, p, p, ctypes.c_long]
    lib.bench_loop.restype = ctypes.c_int
    lib.lean_loop.argtypes = [p, p, p, ctypes.c_long, i64, ctypes.POINTER(ctypes.c_long)]
    lib.lean_loop.restype = ctypes.c_long
    return lib


def chosen() -> tuple[ctypes.CDLL | None, str]:
    """The library to run, or None for the Python loops, and why: by LIBSRV_LOAD_LOOP
    (``compiled`` that cannot be built raises LoopUnavailable)."""
    setting = os.environ.get(LOOP_VARIABLE) or "auto"
    if setting not in LOOP_NAMES:
        raise LoopUnavailable(f"{LOOP_VARIABLE}={setting!r}: expected one of "
                              f"{', '.join(LOOP_NAMES)}")
    if setting == "python":
        return None, PYTHON_AS_ASKED
    try:
        return load(), "compiled"
    except (LoopUnavailable, OSError) as error:
        if setting == "compiled":
            raise LoopUnavailable(f"the compiled load loop cannot be used: {error}") from None
        return None, f"the compiled load loop is not available ({error})"
