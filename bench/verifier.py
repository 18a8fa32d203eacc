"""The lost-update verifier: checks a history of loans and returns against the final state.

The history is kept as Jepsen keeps it: every operation has an invocation time and, when it
got a reply, a completion time; a timed-out operation is *unknown* (it may or may not have
happened, and may have happened at any time after its invocation). Times are monotonic
nanoseconds, comparable across the load processes.

For each book the only writes are loans (available → lent) and returns (lent → available), so a
correct server's successful operations alternate. At every instant t, the operations completed
before t must be ordered before it, and only operations invoked before t can be; so some
prefix must exist with

    loans_ok_done − returns_invoked  ≤  lent_count  ≤  loans_invoked − returns_ok_done

within {0, 1} (starting from the initial state). The verifier sweeps every invocation and
completion instant and reports the first instant where no such prefix exists (a loan granted
twice with no return in between, a return of a book nobody had), and a final state that the
acknowledged operations cannot explain. It also checks that every acknowledged loan shows its
own borrower, and that the catalog file after shutdown equals what the server last served.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass(frozen=True, slots=True)
class Op:
    """One loan or return. `invoke`/`complete` in ns (`complete` None when unknown)."""

    client: int
    kind: str  # "loan" or "return"
    isbn: str | None  # the book; None for a loan by title that got no reply
    invoke: int
    complete: int | None
    status: str  # ok / fail / unknown
    borrower: str | None = None
    reply_borrower: str | None = None


@dataclass(frozen=True)
class Violation:
    book: str
    kind: str  # double-loan / double-return / final-state / wrong-borrower / file-mismatch
    detail: str
    ops: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ops_from_records(records: Iterable[Mapping[str, Any]]) -> list[Op]:
    """Loans and returns from the recorder's rows (see `bench.load.FIELDS`)."""
    ops = []
    for r in records:
        action = r["action"]
        if action not in ("loan_isbn", "loan_title", "return_isbn"):
            continue
        code = r["code"]
        status = OK if code == "OK" else UNKNOWN if code == "TIMEOUT" else FAIL
        kind = "return" if action == "return_isbn" else "loan"
        isbn = r["isbn"] if action != "loan_title" else r.get("reply_isbn")
        if action == "loan_title" and status == FAIL:
            isbn = None  # refused by title: no particular book changed
        complete = r["t_recv"]
        ops.append(Op(int(r["client"]), kind, isbn, int(r["t_send"]),
                      None if complete is None or complete != complete else int(complete),
                      status, r.get("borrower"), r.get("reply_borrower")))
    return ops


def _show(op: Op) -> dict[str, Any]:
    return {"client": op.client, "op": op.kind, "status": op.status, "invoke_ns": op.invoke,
            "complete_ns": op.complete, "borrower": op.borrower}


def _check_book(isbn: str, ops: list[Op], floating: list[Op], initial: int,
                final: int | None) -> list[Violation]:
    """The cut sweep for one book. `floating` are unknown loans by title that may be here."""
    relevant = [op for op in ops if op.status != FAIL] + floating
    events: list[tuple[int, int, Op]] = []  # (time, order, op); at one instant, completions
    for op in relevant:                     # are applied before invocations (order 0 < 1)
        events.append((op.invoke, 1, op))
        if op.status == OK and op.complete is not None:
            events.append((op.complete, 0, op))
    events.sort(key=lambda e: (e[0], e[1]))
    loans_done = returns_done = loans_invoked = returns_invoked = 0
    done: list[Op] = []
    out: list[Violation] = []
    for time, order, op in events:
        if order == 0:
            done.append(op)
            if op.kind == "loan":
                loans_done += 1
            else:
                returns_done += 1
        elif op.kind == "loan":
            loans_invoked += 1
        else:
            returns_invoked += 1
        low = initial + loans_done - returns_invoked
        high = initial + loans_invoked - returns_done
        if low > 1 or high < 0:
            kind = "double-loan" if low > 1 else "double-return"
            out.append(Violation(
                isbn, kind,
                f"at t={time} ns: {loans_done} loans acknowledged but only {returns_invoked} "
                f"returns attempted (started lent={initial})" if low > 1 else
                f"at t={time} ns: {returns_done} returns acknowledged but only "
                f"{loans_invoked} loans attempted (started lent={initial})",
                [_show(o) for o in done[-6:]]))
            break
    if final is not None:
        ok_loans = sum(1 for op in ops if op.kind == "loan" and op.status == OK)
        ok_returns = sum(1 for op in ops if op.kind == "return" and op.status == OK)
        maybe_loans = sum(1 for op in relevant if op.kind == "loan" and op.status == UNKNOWN)
        maybe_returns = sum(1 for op in relevant if op.kind == "return" and op.status == UNKNOWN)
        low = initial + ok_loans - ok_returns - maybe_returns
        high = initial + ok_loans + maybe_loans - ok_returns
        if not low <= final <= high:
            span = str(low) if low == high else f"{low} to {high}"
            out.append(Violation(
                isbn, "final-state",
                f"final state lent={final}, but from lent={initial} the {ok_loans} acknowledged "
                f"loans and {ok_returns} acknowledged returns ({maybe_loans} loans and "
                f"{maybe_returns} returns unknown) add up to lent={span}",
                [_show(o) for o in ops if o.status == OK][-6:]))
    return out


@dataclass
class Verdict:
    violations: list[Violation]
    books_checked: int
    operations: int
    unknown: int

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": len(self.violations),
                "books_checked": self.books_checked, "operations": self.operations,
                "unknown": self.unknown,
                "details": [v.as_dict() for v in self.violations]}


def verify(ops: list[Op], initial: Mapping[str, bool], served: Mapping[str, dict[str, Any]],
           on_disk: Mapping[str, dict[str, Any]] | None = None) -> Verdict:
    """Check the history. `initial[isbn]` is whether the book was lent before the run;
    `served[isbn]` is the record the server returned after the run; `on_disk[isbn]` the record
    in the catalog file after shutdown (None skips that check)."""
    by_book: dict[str, list[Op]] = defaultdict(list)
    floating = [op for op in ops if op.isbn is None and op.status == UNKNOWN]
    for op in ops:
        if op.isbn is not None:
            by_book[op.isbn].append(op)
    violations: list[Violation] = []
    for isbn, book_ops in sorted(by_book.items()):
        record = served.get(isbn)
        final = None if record is None else int(record.get("estado") == "prestado")
        violations += _check_book(isbn, book_ops, floating, int(bool(initial.get(isbn))),
                                  final)
        for op in book_ops:
            if op.kind == "loan" and op.status == OK and op.reply_borrower != op.borrower:
                violations.append(Violation(
                    isbn, "wrong-borrower",
                    f"client {op.client} was told its loan succeeded, but the record shows "
                    f"{op.reply_borrower!r} instead of {op.borrower!r}", [_show(op)]))
        if on_disk is not None and record is not None and on_disk.get(isbn) != record:
            violations.append(Violation(
                isbn, "file-mismatch",
                f"the catalog file holds {on_disk.get(isbn)!r} but the server last served "
                f"{record!r}"))
    return Verdict(violations, len(by_book), len(ops),
                   sum(1 for op in ops if op.status == UNKNOWN))
