"""The verifier: is the history of one run linearizable, book by book?

Each book is a register with two states, available (0) and lent (1). The history records, for
every request, its invocation (first send) and completion (reply) in monotonic nanoseconds, and
what the reply said. An operation is one of:

- a **transition**: a loan acknowledged `OK` (0 → 1) or a return acknowledged `OK` (1 → 0);
- an **assertion**: a query that showed the book's state, a loan refused `UNAVAILABLE` (the book
  was lent), a return refused `NOT_LOANED` (it was available);
- an **unknown** write: no reply (timed out), or `INTERNAL` (the worker may have died after
  applying it), or a reply that could not be read. It may have taken effect once, at any moment
  after its invocation, or never.

The history is correct when some total order of the operations exists that respects real time
(an operation that completed before another was invoked comes first), in which every
transition finds the state it needs, every assertion sees its state, and the state after the
last operation is the one the server serves at the end. This is linearizability, checked
exactly: a sweep over the book's invocations and completions carries every configuration the
book can be in (its state, which open operations have already taken effect, how many unknown
writes are still unused). A completion that no configuration can explain is a violation, and
the operation that completed names its kind (`double-loan`, `double-return`, `stale-read`,
`wrong-refusal`); `final-state` when no configuration ends in the state served at the end.

Two rules keep the configurations few without losing any: among open transitions of one kind,
the one whose completion comes first is applied first (swapping two loans never changes a
state), and an unknown write is used only where no acknowledged one of its kind is open. A
book with no overlapping operations costs a handful of set operations per request.

Besides, every acknowledged loan must show its own borrower, and the catalog file after
shutdown must equal what the server last served. What it cannot see is in docs/bench.md.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libsrv.catalog import LENT
from libsrv.protocol import Action, Code
from libsrv_bench.history import BAD_REPLY, TIMEOUT, Record
from libsrv_bench.sentences import say

OK, REFUSED, UNKNOWN = "ok", "refused", "unknown"
LOAN, RETURN, QUERY = "loan", "return", "query"
MAX_CONFIGURATIONS = 50_000  # per book and instant; beyond it the book is left undecided
WORK_BUDGET = 20_000_000  # configurations visited per book in all; beyond it, undecided too
PRUNE_ABOVE = 16  # dominated configurations are looked for when there are more than this

_WRITE_KINDS = {Action.LOAN_ISBN: LOAN, Action.LOAN_TITLE: LOAN, Action.RETURN_ISBN: RETURN}
_REFUSAL = {LOAN: Code.UNAVAILABLE, RETURN: Code.NOT_LOANED}
_UNKNOWN_CODES = {TIMEOUT, BAD_REPLY, Code.INTERNAL}


@dataclass(frozen=True, slots=True)
class Op:
    """One request on one book. Times in ns; `complete` is None when the outcome is unknown.

    `value` is the state an assertion saw (1 lent, 0 available); None for transitions."""

    client: int
    kind: str  # loan / return / query
    isbn: str | None  # None: a loan by title that got no reply (it may be on any book)
    invoke: int
    complete: int | None
    status: str  # ok / refused / unknown
    borrower: str | None = None
    reply_borrower: str | None = None
    value: int | None = None
    book_shown: bool = True  # the reply showed the book (else its borrower is not evidence)

    @property
    def is_assertion(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Violation:
    book: str
    kind: str  # double-loan / double-return / stale-read / wrong-refusal / final-state /
    # wrong-borrower / file-mismatch / wrong-book / file-unreadable
    detail: str
    ops: list[dict[str, Any]] = field(default_factory=list)
    at_ms: float | None = None  # when it became certain, ms from the run's start
    # what the verifier allowed the book to be over the operations' window: [ms, states]
    # pairs, states a list of "available" / "lent" (both: a write in flight may have happened)
    states: list[list[Any]] = field(default_factory=list)
    # what `detail` says, as `libsrv_bench.sentences` facts (to say it in another language)
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        # one level of copies: the values are plain data (asdict's deep copy cost seconds
        # for the thousands of findings of a server that lies about every write)
        return {"book": self.book, "kind": self.kind, "detail": self.detail,
                "ops": [dict(op) for op in self.ops], "at_ms": self.at_ms,
                "states": [list(step) for step in self.states], "facts": dict(self.facts)}


def _lent(state: object) -> int | None:
    return None if not isinstance(state, str) else int(state == LENT)


def ops_from_records(records: Iterable[Record]) -> list[Op]:
    """The operations the verifier checks, from the recorded requests.

    Kept: queries by ISBN that returned the book, loans and returns with any reply or none.
    Left out: title queries (their replies list many books), pings and catalog pages, and
    replies that say nothing about a book's state (NOT_FOUND, BAD_REQUEST)."""
    ops = []
    for r in records:
        action, code, complete = r.action, r.code, r.t_recv
        common = {"client": r.client, "invoke": r.t_send}
        if action == Action.QUERY_ISBN:
            value = _lent(r.reply_state)
            if code == Code.OK and value is not None and r.reply_isbn == r.isbn:
                ops.append(Op(kind=QUERY, isbn=r.isbn, complete=complete, status=OK,
                              value=value, **common))
            continue
        kind = _WRITE_KINDS.get(action)
        if kind is None:
            continue
        by_title = action == Action.LOAN_TITLE
        if code in _UNKNOWN_CODES:
            isbn = None if by_title else r.isbn
            ops.append(Op(kind=kind, isbn=isbn, complete=None, status=UNKNOWN,
                          borrower=r.borrower, **common))
            continue
        isbn = r.reply_isbn if by_title else r.isbn
        if by_title and isbn is None and code == Code.OK:
            # done, but on which copy the reply does not say (a dialect that shows no book)
            ops.append(Op(kind=kind, isbn=None, complete=None, status=UNKNOWN,
                          borrower=r.borrower, **common))
            continue
        if isbn is None or complete is None:
            continue
        if code == Code.OK:
            ops.append(Op(kind=kind, isbn=isbn, complete=complete, status=OK,
                          borrower=r.borrower, reply_borrower=r.reply_borrower,
                          book_shown=r.reply_isbn is not None, **common))
        elif code == _REFUSAL[kind]:
            # a loan by title is refused only when every copy, the one named included, is lent
            ops.append(Op(kind=kind, isbn=isbn, complete=complete, status=REFUSED,
                          value=1 if kind == LOAN else 0, **common))
    return ops


# ---------------------------------------------------------------- the per-book check

# A configuration: (state, ids of open operations already taken effect or seen, unused
# unknown loans, unused unknown returns).
Config = tuple[int, frozenset[int], int, int]


class _Book:
    """The sweep over one book's operations."""

    def __init__(self, ops: list[Op], initial: int) -> None:
        self.ops = ops
        self.open_loans: list[int] = []  # acknowledged transitions still open
        self.open_returns: list[int] = []
        self.open_asserts: list[list[int]] = [[], []]  # by the state they assert
        self.configs: set[Config] = {(initial, frozenset(), 0, 0)}
        self.due = [op.complete or 0 for op in ops]  # deadlines of acknowledged operations
        self.work = 0  # configurations visited so far, against WORK_BUDGET

    def _closure(self) -> None:
        """Add every configuration reachable by letting open transitions take effect, then
        keep only those no other configuration dominates (see `_prune`)."""
        due = self.due
        seen: set[Config] = set()
        for config in self.configs:
            state, done, loans, returns = config
            walk: list[frozenset[int]] = []  # the done sets met on this walk, in order
            while config not in seen:
                if len(walk) >= 2 and walk[-2] == done:
                    # two flips that applied nothing acknowledged and saw nothing new only
                    # spent unknown writes: dominated by where they started (and walking on
                    # would cost one step per unknown write at every event)
                    break
                walk.append(done)
                seen.add(config)
                waiting = [i for i in (self.open_returns if state else self.open_loans)
                           if i not in done]
                if waiting:
                    done = done | {min(waiting, key=due.__getitem__)}
                elif state and returns:
                    returns -= 1
                elif not state and loans:
                    loans -= 1
                else:
                    break
                state = 1 - state
                satisfied = [i for i in self.open_asserts[state] if i not in done]
                if satisfied:
                    done = done.union(satisfied)
                config = (state, done, loans, returns)
            if len(seen) > MAX_CONFIGURATIONS:
                raise _Undecided
        self.work += len(seen)
        if self.work > WORK_BUDGET:
            raise _Undecided
        self.configs = self._prune(seen) if len(seen) > PRUNE_ABOVE else seen

    def _prune(self, configs: set[Config]) -> set[Config]:
        """Drop dominated configurations. A dominates B when both are in the same state with
        as many open transitions still to apply, A's still-to-apply loans and returns are each
        due no sooner (sorted deadlines, pointwise), A has no unseen assertion that B has seen,
        and A keeps at least as many unused unknown writes: A can then copy any future of B."""
        due = self.due
        groups: dict[tuple[int, int, int], list[tuple[Config, tuple[int, ...],
                                                     tuple[int, ...], frozenset[int]]]] = {}
        asserts = frozenset(self.open_asserts[0]) | frozenset(self.open_asserts[1])
        for config in configs:
            state, done, _, _ = config
            loans = tuple(sorted([due[i] for i in self.open_loans if i not in done]))
            returns = tuple(sorted([due[i] for i in self.open_returns if i not in done]))
            groups.setdefault((state, len(loans), len(returns)), []).append(
                (config, loans, returns, asserts - done))
        kept: set[Config] = set()
        for members in groups.values():
            if len(members) == 1:
                kept.add(members[0][0])
                continue
            members.sort(key=lambda m: (-sum(m[1]) - sum(m[2]), len(m[3]), -m[0][2] - m[0][3]))
            winners: list[tuple[Config, tuple[int, ...], tuple[int, ...], frozenset[int]]] = []
            for member in members:
                if not any(_dominates(w, member) for w in winners):
                    winners.append(member)
            kept.update(w[0] for w in winners)
        return kept

    def invoke(self, index: int) -> None:
        op = self.ops[index]
        if op.status == UNKNOWN:
            loan = op.kind == LOAN
            self.configs = {(s, d, u + loan, r + (not loan)) for s, d, u, r in self.configs}
        elif op.is_assertion:
            value = op.value or 0
            self.open_asserts[value].append(index)
            self.configs = {(s, d | {index} if s == value else d, u, r)
                            for s, d, u, r in self.configs}
        else:
            (self.open_loans if op.kind == LOAN else self.open_returns).append(index)
        self._closure()

    def complete(self, index: int) -> bool:
        """False when no configuration explains this completion; the sweep then re-syncs
        (a wrong query or refusal changed nothing; an acknowledged loan or return left the
        book in its state), so that later anomalies are counted too."""
        op = self.ops[index]
        if op.is_assertion:
            self.open_asserts[op.value or 0].remove(index)
        else:
            (self.open_loans if op.kind == LOAN else self.open_returns).remove(index)
        explained = {(s, d - {index}, u, r) for s, d, u, r in self.configs if index in d}
        if explained:
            self.configs = explained
            return True
        if op.is_assertion:  # a wrong answer changed nothing on the server
            self.configs = {(s, d - {index}, u, r) for s, d, u, r in self.configs}
        else:  # the server did what it acknowledged
            after = int(op.kind == LOAN)
            self.configs = {(after, d - {index}, u, r) for _, d, u, r in self.configs}
            self._closure()
        return False

    def allowed(self) -> frozenset[int]:
        """The states the book may be in now, every open transition let take effect or not
        (the configurations are left as they were: this is for the picture only)."""
        configs, work = self.configs, self.work
        try:
            self._closure()
            return frozenset(config[0] for config in self.configs)
        except _Undecided:
            return frozenset(config[0] for config in configs)
        finally:
            self.configs, self.work = configs, work

    def can_end_in(self, final: int) -> bool:
        return any(config[0] == final for config in self.configs)


class _Undecided(Exception):
    pass


def _dominates(a: tuple[Config, tuple[int, ...], tuple[int, ...], frozenset[int]],
               b: tuple[Config, tuple[int, ...], tuple[int, ...], frozenset[int]]) -> bool:
    (_, _, a_loans, a_returns), a_due_loans, a_due_returns, a_unseen = a
    (_, _, b_loans, b_returns), b_due_loans, b_due_returns, b_unseen = b
    return (a_loans >= b_loans and a_returns >= b_returns and a_unseen <= b_unseen
            and all(x >= y for x, y in zip(a_due_loans, b_due_loans, strict=True))
            and all(x >= y for x, y in zip(a_due_returns, b_due_returns, strict=True)))


_KIND_OF_FAILURE = {(LOAN, OK): "double-loan", (RETURN, OK): "double-return",
                    (QUERY, OK): "stale-read", (LOAN, REFUSED): "wrong-refusal",
                    (RETURN, REFUSED): "wrong-refusal"}


def check_book(ops: list[Op], initial: int, final: int | None,
               trace: list[tuple[int, frozenset[int]]] | None = None) -> list[tuple[int, str]]:
    """The exact check of one book: empty when the history is linearizable, else each
    operation whose completion no order explains (index and kind; -1 for the final state).
    The first finding is certain; later ones are counted after re-syncing on the reply that
    could not be explained. Raises _Undecided past MAX_CONFIGURATIONS at one instant, or past
    WORK_BUDGET configurations in all. `trace`, when given, gets after each event its time
    and the states (1 lent, 0 available) the book may be in then: what the verifier allows."""
    events = []
    for index, op in enumerate(ops):
        events.append((op.invoke, 0, index))
        if op.status != UNKNOWN and op.complete is not None:
            events.append((op.complete, 1, index))
    # at one instant invocations come first: operations that touch in time may overlap
    events.sort()
    book = _Book(ops, initial)
    found: list[tuple[int, str]] = []
    if trace is not None:
        trace.append((events[0][0] if events else 0, frozenset({initial})))
    for at, is_completion, index in events:
        if not is_completion:
            book.invoke(index)
        elif not book.complete(index):
            op = ops[index]
            found.append((index, _KIND_OF_FAILURE[(op.kind, op.status)]))
        if trace is not None:
            trace.append((at, book.allowed()))
    if final is not None and not book.can_end_in(final):
        found.append((-1, "final-state"))
    return found


# ---------------------------------------------------------------- the whole run


@dataclass
class Verdict:
    violations: list[Violation]
    books_checked: int
    operations: int
    unknown: int
    undecided: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No violation, and every book decided: an undecided book is not a clean one."""
        return not self.violations and not self.undecided

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": len(self.violations),
                "books_checked": self.books_checked, "operations": self.operations,
                "unknown": self.unknown, "undecided": self.undecided,
                "details": [v.as_dict() for v in self.violations]}


class _Describe:
    """Violations in words a student follows: times in ms from the run's start."""

    def __init__(self, origin: int, titles: Mapping[str, str]) -> None:
        self.origin = origin
        self.titles = titles

    def ms(self, ns: int | None) -> float | None:
        return None if ns is None else round((ns - self.origin) / 1e6, 3)

    def op(self, op: Op) -> dict[str, Any]:
        return {"client": op.client, "op": op.kind, "status": op.status,
                "saw": None if op.value is None else ("lent" if op.value else "available"),
                "invoke_ms": self.ms(op.invoke), "complete_ms": self.ms(op.complete),
                "borrower": op.borrower}

    def facts(self, isbn: str, **more: Any) -> dict[str, Any]:
        """A finding's facts about the book `isbn` (its title when known), for `sentences`."""
        return {"isbn": isbn, "title": self.titles.get(isbn) or None, **more}

    def op_facts(self, op: Op, isbn: str, initial: int) -> dict[str, Any]:
        return self.facts(isbn, client=op.client, op=op.kind, invoke_ms=self.ms(op.invoke),
                          complete_ms=self.ms(op.complete),
                          saw=None if op.value is None else _STATE_NAMES[op.value],
                          start=_STATE_NAMES[initial])


def _finding(isbn: str, kind: str, facts: dict[str, Any], ops: list[dict[str, Any]] | None = None,
             at_ms: float | None = None, states: list[list[Any]] | None = None) -> Violation:
    """A Violation whose words (English, in `detail`) come from its facts."""
    return Violation(isbn, kind, say(kind, facts), ops or [], at_ms, states or [], facts)


FILE_FIELDS = ("estado", "prestatario")  # what a foreign server's file must agree on

# requests about one book by its ISBN: a reply that shows a book must show that one
_BY_ISBN = frozenset({Action.QUERY_ISBN, Action.LOAN_ISBN, Action.RETURN_ISBN})


def wrong_books(records: Iterable[Record], origin: int = 0) -> list[Violation]:
    """One `wrong-book` finding per book asked about by its ISBN whose reply showed another
    book. Such a reply gives the per-book check no evidence (it is about neither book), so
    without this a server answering every query with the same record would pass a
    query-only run."""
    describe = _Describe(origin, {})
    first: dict[str, Record] = {}
    count: dict[str, int] = defaultdict(int)
    for r in records:
        if r.action in _BY_ISBN and r.isbn is not None and r.reply_isbn is not None and \
                r.reply_isbn != r.isbn:
            first.setdefault(r.isbn, r)
            count[r.isbn] += 1
    return [_finding(isbn, "wrong-book", describe.facts(
        isbn, client=r.client, action=str(r.action), at_ms=describe.ms(r.t_recv),
        shown=r.reply_isbn, count=count[isbn]), at_ms=describe.ms(r.t_recv))
        for isbn, r in sorted(first.items())]


def unreadable_file(error: str) -> Violation:
    """The finding for a catalog file that can no longer be read after the run."""
    return _finding("-", "file-unreadable", {"error": error})


def verify(ops: list[Op], initial: Mapping[str, bool], served: Mapping[str, dict[str, Any]],
           on_disk: Mapping[str, dict[str, Any]] | None = None, *,
           origin: int = 0, fields: tuple[str, ...] | None = None) -> Verdict:
    """Check the history. `initial[isbn]` is whether the book was lent before the run;
    `served[isbn]` is the record the server returned after the run (its title names the book
    in findings); `on_disk[isbn]` the record in the catalog file after the run (None skips
    that check), compared whole or on `fields` only. `origin` (ns) is the run's start, from
    which findings give their times."""
    describe = _Describe(origin, {isbn: str(record.get("titulo") or "")
                                  for isbn, record in served.items()})
    by_book: dict[str, list[Op]] = defaultdict(list)
    floating = [op for op in ops if op.isbn is None]
    for op in ops:
        if op.isbn is not None:
            by_book[op.isbn].append(op)
    violations: list[Violation] = []
    undecided: list[str] = []
    for isbn, book_ops in sorted(by_book.items()):
        record = served.get(isbn)
        final = None if record is None else int(record.get("estado") == LENT)
        start = int(bool(initial.get(isbn)))
        history = sorted(book_ops + floating, key=lambda o: o.invoke)
        invokes = [o.invoke for o in history]
        try:
            found = check_book(history, start, final)
        except _Undecided:
            undecided.append(isbn)
            found = []
        trace: list[tuple[int, frozenset[int]]] = []
        if found:  # again, noting what it allowed at each step (for the findings' pictures)
            check_book(history, start, final, trace)
        allowed = _Allowed(trace, describe)
        for index, kind in found:
            if index < 0:
                violations.append(_final_state(isbn, history, start, final, describe))
                continue
            op = history[index]
            upto = bisect_right(invokes, op.complete or op.invoke)  # ops begun by its reply
            around = _around(history[:upto], index)
            violations.append(_finding(
                isbn, kind, describe.op_facts(op, isbn, start),
                [describe.op(o) for o in around], describe.ms(op.complete),
                allowed.between(min(o.invoke for o in around), op.complete or op.invoke)))
        for op in book_ops:
            if op.kind == LOAN and op.status == OK and op.book_shown and \
                    op.reply_borrower != op.borrower:
                violations.append(_finding(
                    isbn, "wrong-borrower", describe.facts(
                        isbn, client=op.client, shown=op.reply_borrower, borrower=op.borrower),
                    [describe.op(op)], describe.ms(op.complete)))
        if on_disk is not None and record is not None and \
                _part(on_disk.get(isbn), fields) != _part(record, fields):
            violations.append(_finding(isbn, "file-mismatch", describe.facts(
                isbn, on_disk=on_disk.get(isbn), served=record)))
    return Verdict(violations, len(by_book), len(ops),
                   sum(1 for op in ops if op.status == UNKNOWN), undecided)


AROUND = 12  # operations kept with a finding: enough to see it, few enough to read
_STATE_NAMES = {0: "available", 1: "lent"}


class _Allowed:
    """The states the verifier allowed one book, step by step (a `check_book` trace, in time
    order), read for each finding's window by bisection: a finding costs the steps in its
    window, not the whole history (a server that lies about every write has thousands)."""

    def __init__(self, trace: list[tuple[int, frozenset[int]]], describe: _Describe) -> None:
        self.times = [at for at, _ in trace]
        self.names = [[_STATE_NAMES[s] for s in sorted(states)] for _, states in trace]
        self.describe = describe

    def between(self, start: int, end: int) -> list[list[Any]]:
        """From `start` to `end` (ns): the last step before the window, then each step in it
        that changed the states."""
        ms = self.describe.ms
        first = bisect_right(self.times, start)
        steps: list[list[Any]] = [[ms(start), self.names[first - 1]]] if first else []
        for index in range(first, bisect_left(self.times, end)):
            names = self.names[index]
            if not steps or steps[-1][1] != names:
                steps.append([ms(self.times[index]), names])
        return steps


def _around(history: list[Op], index: int) -> list[Op]:
    """The operations that explain a finding about `history[index]`: the last acknowledged
    write answered before it was sent (the last state known), every operation that overlaps
    it, and itself, in order of sending, at most AROUND of them (acknowledged writes first,
    then those sent closest to it)."""
    op = history[index]
    end = op.complete if op.complete is not None else op.invoke
    known = [n for n, o in enumerate(history[:index]) if o.status == OK and
             o.kind in (LOAN, RETURN) and o.complete is not None and o.complete < op.invoke]
    overlapping = [n for n, o in enumerate(history) if o.invoke <= end and
                   (o.complete is None or o.complete >= op.invoke)]
    always = {index, *known[-1:]}
    # the rest as many as fit: acknowledged loans and returns first (they are what no order
    # can place), then by how close they were sent to it
    others = sorted((n for n in overlapping if n not in always),
                    key=lambda n: (not (history[n].status == OK and
                                        history[n].kind in (LOAN, RETURN)),
                                   abs(history[n].invoke - op.invoke)))
    keep = sorted(always | set(others[:AROUND - len(always)]))
    return [history[n] for n in keep]


def _part(record: dict[str, Any] | None, fields: tuple[str, ...] | None) -> object:
    if record is None or fields is None:
        return record
    return {name: record.get(name) for name in fields}


def _final_state(isbn: str, history: list[Op], start: int, final: int | None,
                 describe: _Describe) -> Violation:
    loans = sum(1 for o in history if o.kind == LOAN and o.status == OK)
    returns = sum(1 for o in history if o.kind == RETURN and o.status == OK)
    unknown = sum(1 for o in history if o.status == UNKNOWN)
    return _finding(isbn, "final-state", describe.facts(
        isbn, state=_STATE_NAMES[int(bool(final))], loans=loans, returns=returns,
        unknown=unknown, start=_STATE_NAMES[start]),
        [describe.op(o) for o in history if o.status == OK][-6:])
