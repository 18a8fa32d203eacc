"""bench --observe: the feed as a second history. Hand-made feeds show each finding without
sockets; real runs show it agrees with the verifier on a safe server and catches the unsafe one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from libsrv.live import Change
from libsrv_bench.history import Record
from libsrv_bench.observe import check_feed
from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig

# its own limit, above the deadlines inside it (300 s), so that those are what fail
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

A, B = "9788437604947", "9780140449266"
MS = 1_000_000


def book(isbn: str, lent: bool) -> dict:
    return {"ISBN": isbn, "titulo": "T", "autores": ["X"],
            "estado": "prestado" if lent else "no prestado",
            "prestatario": "c" if lent else None, "fecha_prestamo": None,
            "fecha_devolucion": None}


def change(seq: int, isbn: str, lent: bool, rid: str | None) -> Change:
    return Change(seq, isbn, book(isbn, lent), "loan_isbn" if lent else "return_isbn", rid)


def write(rid: str, lent: bool, start: int, end: int | None, code: str = "OK",
          isbn: str = A) -> Record:
    return Record(1, "loan_isbn" if lent else "return_isbn", isbn, "c", start * MS, start * MS,
                  None if end is None else end * MS, code, None, None, None, 1, rid)


def kinds(result: dict) -> set[str]:
    return set(result["kinds"])


def test_a_faithful_feed_passes() -> None:
    feed = [change(1, A, True, "a"), change(2, B, True, "b"), change(3, A, False, "c")]
    history = [write("a", True, 0, 5), write("b", True, 1, 6, isbn=B),
               write("c", False, 7, 9), write("d", True, 10, 12, code="UNAVAILABLE")]
    result = check_feed(feed, 0, 3, history, {A: book(A, False), B: book(B, True)})
    assert result["ok"], result
    assert result["acknowledged_in_feed"] == 3


@pytest.mark.parametrize(("feed", "history", "last", "expected"), [
    # a number never published
    ([change(1, A, True, "a"), change(3, A, False, "c")],
     [write("a", True, 0, 1), write("c", False, 5, 6)], 3, {"feed-gap"}),
    # a number published twice (and so the write twice)
    ([change(1, A, True, "a"), change(1, A, True, "a")],
     [write("a", True, 0, 1)], 1, {"feed-repeat", "twice-in-feed", "feed-double-loan"}),
    # an acknowledged write the feed never shows
    ([change(1, A, True, "a")],
     [write("a", True, 0, 1), write("b", False, 2, 3)], 1, {"missing-from-feed"}),
    # a refused write that the feed shows as applied
    ([change(1, A, True, "a")],
     [write("a", True, 0, 1, code="UNAVAILABLE")], 1, {"feed-contradicts-reply"}),
    # acknowledged before the other was sent, numbered after it
    ([change(1, A, True, "late"), change(2, B, True, "early")],
     [write("early", True, 0, 2, isbn=B), write("late", True, 5, 8)], 2, {"feed-order"}),
    # two loans in a row: a lost update
    ([change(1, A, True, "a"), change(2, A, True, "b")],
     [write("a", True, 0, 3), write("b", True, 1, 4)], 2, {"feed-double-loan"}),
])
def test_each_finding(feed: list[Change], history: list[Record], last: int,
                      expected: set[str]) -> None:
    result = check_feed(feed, 0, last, history, None)
    assert kinds(result) == expected, result["details"]


def test_the_final_state_must_be_the_files() -> None:
    result = check_feed([change(1, A, True, "a")], 0, 1, [write("a", True, 0, 1)],
                        {A: book(A, False)})
    assert kinds(result) == {"feed-final-state"}


def test_without_ids_only_numbers_order_of_states_and_the_file_are_checked() -> None:
    result = check_feed([change(1, A, True, None)], 0, 1, [write("x", True, 0, 1)],
                        {A: book(A, True)}, ids=False)
    assert result["ok"] and not result["checked_ids"]


def test_observe_agrees_with_the_verifier_and_catches_the_unsafe_run(tmp_path: Path) -> None:
    common = {"workers": 2, "books": 40, "clients": 16, "duration": 2.0, "warmup": 0,
              "workload": "hot-spot", "hot": 2, "observe": True}
    safe = run_experiment(RunConfig(**common), tmp_path, progress=False)
    feed = safe.summary["feed"]
    assert safe.violations == 0 and feed["ok"], feed
    oks = sum(count for code, count in safe.summary["codes"].items() if code == "OK")
    assert 0 < feed["acknowledged_in_feed"] <= oks and feed["changes"] > 100
    unsafe = run_experiment(RunConfig(unsafe_no_lock=True, **common), tmp_path,
                            progress=False)
    assert unsafe.summary["feed_violations"] > 0, unsafe.summary["feed"]
    assert kinds(unsafe.summary["feed"]) & {"missing-from-feed", "feed-double-loan",
                                             "feed-double-return", "feed-repeat"}


def test_feed_cost_runs_the_three_variants_side_by_side(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "libsrv_bench", "feed-cost", "--rounds", "1",
                             "--duration", "1", "--warmup", "0", "--clients", "2", "--books",
                             "50", "--workers", "1", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for variant in ("no feed (--no-pub)", "feed (default)", "feed + subscriber (--observe)"):
        assert variant in result.stdout
    summaries = sorted(tmp_path.glob("*/summary.json"))
    assert len(summaries) == 3
