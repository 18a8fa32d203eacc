"""Client processes for the concurrency and crash tests (importable by spawned children)."""

from __future__ import annotations

import queue
import random
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from libsrv.client import LibraryClient, ServerUnreachable
from libsrv.protocol import Code


def race(endpoint: str, isbns: list[str], ops: int, seed: int, name: str,
         results: Any) -> None:
    """Random loans and returns on shared books; report (op, isbn, code) for each."""
    rng = random.Random(seed)
    history = []
    with LibraryClient(endpoint, timeout=20, retries=0) as lib:
        for _ in range(ops):
            isbn = rng.choice(isbns)
            if rng.random() < 0.5:
                history.append(("loan", isbn, lib.loan_isbn(isbn, name).code))
            else:
                history.append(("return", isbn, lib.return_isbn(isbn).code))
    results.put((name, history))


def own_books(endpoint: str, isbns: list[str], ops: int, name: str, timeout: float,
              retries: int, progress: Synchronized, results: Any) -> None:
    """Alternate loan and return on books nobody else touches, so each book's state is known
    from this client's history: (isbn, op, code) with code "UNKNOWN" when no reply came."""
    history: list[tuple[str, str, str]] = []
    with LibraryClient(endpoint, timeout=timeout, retries=retries) as lib:
        try:
            for n in range(ops):
                for isbn in isbns:
                    op = "loan" if n % 2 == 0 else "return"
                    try:
                        reply = (lib.loan_isbn(isbn, name) if op == "loan"
                                 else lib.return_isbn(isbn))
                    except ServerUnreachable:
                        history.append((isbn, op, "UNKNOWN"))
                        raise
                    history.append((isbn, op, reply.code))
                    with progress.get_lock():
                        progress.value += 1
        except ServerUnreachable:
            pass
    results.put((name, history))


def collect(clients: list[Any], results: Any, timeout: float = 180) -> dict[str, list[Any]]:
    """Each client process's (name, history), failing the test if one never reports."""
    import pytest

    out = {}
    for _ in clients:
        try:
            name, history = results.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("a client process did not report back: hung or died")
        out[name] = history
    for process in clients:
        process.join(30)
    return out


def expected_states(history: list[tuple[str, str, str]]) -> dict[str, set[str]]:
    """For each book: the states ('lent' / 'available') it may be in after this history."""
    states: dict[str, set[str]] = {}
    for isbn, op, code in history:
        after = "lent" if op == "loan" else "available"
        if code == Code.OK:
            states[isbn] = {after}
        elif code == "UNKNOWN":
            states[isbn] = states.get(isbn, {"available"}) | {after}
        else:
            raise AssertionError(f"{op} of {isbn} answered {code}: applied twice or lost")
    return states


def acknowledged_writes(endpoint: str, isbns: list[str], ops: int, seed: int, name: str,
                        results: Any) -> None:
    """Random loans and returns on shared books; report the ids of the writes answered OK
    (each changed one book) and how many writes got no reply."""
    rng = random.Random(seed)
    acked: list[str] = []
    lost = 0
    with LibraryClient(endpoint, timeout=10, retries=3) as lib:
        for _ in range(ops):
            isbn = rng.choice(isbns)
            try:
                reply = lib.loan_isbn(isbn, name) if rng.random() < 0.5 else \
                    lib.return_isbn(isbn)
            except ServerUnreachable:
                lost += 1
                continue
            if reply.code == Code.OK:
                acked.append(reply.raw["id"])
    results.put((name, acked, lost))
