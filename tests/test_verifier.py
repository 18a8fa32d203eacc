"""The verifier on hand-made histories, and against an exhaustive checker on random ones."""

from __future__ import annotations

import heapq
import random
from functools import cache

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb

from libsrv_bench.history import TIMEOUT, Record
from libsrv_bench.historyplot import BROKEN, finding_figure, replayed_states
from libsrv_bench.verifier import (
    AROUND,
    LOAN,
    OK,
    QUERY,
    REFUSED,
    RETURN,
    UNKNOWN,
    Op,
    check_book,
    ops_from_records,
    verify,
)

pytestmark = pytest.mark.fast

MS = 1_000_000  # ns
A = "9798000000007"


def op(kind: str, start: int, end: int | None, status: str = OK, *, client: int = 1,
       saw: int | None = None, reply_borrower: str | None = "c1") -> Op:
    """An operation on book A from `start` to `end` ms. `saw`: a query's state (1 lent)."""
    value = saw if kind == QUERY else (None if status != REFUSED else int(kind == LOAN))
    return Op(client, kind, A, start * MS, None if end is None else end * MS, status,
              "c1" if kind == LOAN else None, reply_borrower if kind == LOAN else None, value)


def lent(flag: bool) -> dict:
    return {A: {"ISBN": A, "titulo": "Rayuela",
                "estado": "prestado" if flag else "no prestado"}}


def kinds(verdict) -> list[str]:
    return [v.kind for v in verdict.violations]


# ---------------------------------------------------------------- hand-made histories


def test_a_clean_alternating_history_passes() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 2, 3), op(LOAN, 4, 5), op(LOAN, 6, 7, REFUSED),
               op(QUERY, 7, 8, saw=1), op(RETURN, 8, 9), op(RETURN, 10, 11, REFUSED),
               op(QUERY, 12, 13, saw=0)]
    assert verify(history, {A: False}, lent(False)).ok


def test_concurrent_loan_and_return_may_linearize_either_way() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 2, 6), op(LOAN, 3, 5)]
    assert verify(history, {A: False}, lent(True)).ok


def test_two_loans_without_a_return_between_are_caught() -> None:
    history = [op(LOAN, 0, 1), op(LOAN, 2, 3, client=2)]
    verdict = verify(history, {A: False}, lent(True))
    assert kinds(verdict) == ["double-loan"]
    assert verdict.violations[0].at_ms == 3.0
    assert "Rayuela" in verdict.violations[0].detail


def test_overlapping_double_loan_is_caught_too() -> None:
    history = [op(LOAN, 0, 5), op(LOAN, 1, 4, client=2)]
    assert "double-loan" in kinds(verify(history, {A: False}, lent(True)))


def test_a_return_nobody_could_have_needed_is_caught() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 2, 3), op(RETURN, 4, 5, client=2)]
    assert "double-return" in kinds(verify(history, {A: False}, lent(False)))


def test_a_lost_update_shows_in_the_final_state() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 2, 3)]
    assert kinds(verify(history, {A: False}, lent(True))) == ["final-state"]


def test_a_stale_read_is_caught() -> None:
    # the loan was acknowledged at 1 ms; a query begun at 2 ms, before any return, saw it free
    history = [op(LOAN, 0, 1), op(QUERY, 2, 3, saw=0), op(RETURN, 5, 6)]
    assert kinds(verify(history, {A: False}, lent(False))) == ["stale-read"]
    # the same query overlapping a return may see it free
    overlapping = [op(LOAN, 0, 1), op(QUERY, 2, 4, saw=0), op(RETURN, 3, 6)]
    assert verify(overlapping, {A: False}, lent(False)).ok


def test_a_refusal_is_evidence() -> None:
    # refused as unavailable while the book was available in every order
    history = [op(LOAN, 0, 1), op(RETURN, 2, 3), op(LOAN, 4, 5, REFUSED, client=2)]
    assert kinds(verify(history, {A: False}, lent(False))) == ["wrong-refusal"]
    # a return refused as not lent while it was lent
    refused = [op(LOAN, 0, 1), op(RETURN, 2, 3, REFUSED, client=2), op(RETURN, 4, 5)]
    assert kinds(verify(refused, {A: False}, lent(False))) == ["wrong-refusal"]


def test_unknown_operations_may_or_may_not_have_happened() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 2, None, UNKNOWN)]
    assert verify(history, {A: False}, lent(True)).ok
    assert verify(history, {A: False}, lent(False)).ok
    after = [*history, op(LOAN, 5, 6, client=2)]  # only fine if the unknown return happened
    assert verify(after, {A: False}, lent(True)).ok
    assert not verify([op(LOAN, 0, 1), op(LOAN, 5, 6, client=2)], {A: False}, lent(True)).ok


def test_an_unknown_operation_counts_once_in_the_interval_and_the_final_state() -> None:
    # The audit's minimal case: start lent; loan OK over [4,7]; a return timed out from 5;
    # return OK over [10,19]; final state lent. The loan needs the unknown return, and then
    # nothing can lend the book again: no order ends lent.
    history = [op(LOAN, 4, 7), op(RETURN, 5, None, UNKNOWN), op(RETURN, 10, 19)]
    assert kinds(verify(history, {A: True}, lent(True))) == ["final-state"]
    assert verify(history, {A: True}, lent(False)).ok


def test_the_initial_state_counts() -> None:
    assert verify([op(RETURN, 0, 1)], {A: True}, lent(False)).ok
    assert not verify([op(RETURN, 0, 1)], {A: False}, lent(False)).ok


def test_a_loan_acknowledged_to_someone_else_is_caught() -> None:
    history = [op(LOAN, 0, 1, reply_borrower="c2")]
    assert kinds(verify(history, {A: False}, lent(True))) == ["wrong-borrower"]


def test_the_file_must_hold_what_was_served() -> None:
    history = [op(LOAN, 0, 1)]
    served = lent(True)
    assert verify(history, {A: False}, served, on_disk=served).ok
    assert kinds(verify(history, {A: False}, served, on_disk=lent(False))) == ["file-mismatch"]


def test_later_anomalies_are_counted_after_the_first() -> None:
    history = [op(LOAN, 0, 1), op(LOAN, 2, 3, client=2), op(RETURN, 4, 5),
               op(RETURN, 6, 7, client=2), op(LOAN, 8, 9), op(LOAN, 10, 11, client=2)]
    assert kinds(verify(history, {A: False}, lent(True))) == ["double-loan", "double-return",
                                                              "double-loan"]


# ---------------------------------------------------------------- from recorded replies


def record(action: str, code: str, start: int, end: int | None, *, state: str | None = None,
           isbn: str = A) -> Record:
    return Record(1, action, isbn, "c1" if "loan" in action else None, start * MS, start * MS,
                  None if end is None else end * MS, code, isbn if state else None,
                  "c1" if state == "prestado" else None, state, 1)


def test_records_become_transitions_assertions_and_unknowns() -> None:
    ops = ops_from_records([
        record("loan_isbn", "OK", 0, 1, state="prestado"),
        record("query_isbn", "OK", 2, 3, state="prestado"),
        record("loan_isbn", "UNAVAILABLE", 4, 5, state="prestado"),
        record("return_isbn", "INTERNAL", 6, 7),  # a worker died: it may have been applied
        record("return_isbn", TIMEOUT, 8, None),
        record("return_isbn", "NOT_LOANED", 9, 10, state="no prestado"),
        record("query_isbn", "NOT_FOUND", 11, 12),
        record("ping", "OK", 13, 14),
    ])
    assert [(o.kind, o.status, o.value) for o in ops] == [
        (LOAN, OK, None), (QUERY, OK, 1), (LOAN, REFUSED, 1), (RETURN, UNKNOWN, None),
        (RETURN, UNKNOWN, None), (RETURN, REFUSED, 0)]
    assert ops[3].complete is None


def test_an_internal_reply_to_a_write_is_unknown_not_failed() -> None:
    # the broker answered INTERNAL after a worker died mid-write, but the return was applied
    rows = [record("loan_isbn", "OK", 0, 1, state="prestado"),
            record("return_isbn", "INTERNAL", 2, 3),
            record("loan_isbn", "OK", 4, 5, state="prestado")]
    assert verify(ops_from_records(rows), {A: False}, lent(True)).ok


# ---------------------------------------------------------------- against an exhaustive search


def exhaustive(ops: list[Op], initial: int, final: int | None) -> bool:
    """True when some order of the operations explains them: a search over every order that
    respects real time, each unknown operation placed anywhere after its invocation or left
    out. Exponential; for small histories only."""
    n = len(ops)
    definite = frozenset(i for i in range(n) if ops[i].status != UNKNOWN)
    before = [frozenset(j for j in definite if ops[j].complete < ops[i].invoke)  # type: ignore[operator]
              for i in range(n)]

    @cache
    def search(placed: frozenset[int], state: int) -> bool:
        if definite <= placed and (final is None or state == final):
            return True
        for i in range(n):
            if i in placed or not before[i] <= placed:
                continue
            o = ops[i]
            if o.status == UNKNOWN:
                wanted = 0 if o.kind == LOAN else 1
                after = 1 - wanted if state == wanted else state  # else it was refused
            elif o.value is not None:
                if state != o.value:
                    continue
                after = state
            else:
                if state != (0 if o.kind == LOAN else 1):
                    continue
                after = 1 - state
            if search(placed | {i}, after):
                return True
        return False

    return search(frozenset(), initial)


def random_history(rng: random.Random) -> tuple[list[Op], int, int]:
    ops = []
    for client in range(rng.randint(1, 7)):
        kind = rng.choice([LOAN, RETURN, QUERY])
        start = rng.randint(0, 20)
        status = OK if kind == QUERY else rng.choices([OK, REFUSED, UNKNOWN], [6, 2, 2])[0]
        end = None if status == UNKNOWN else start + rng.randint(0, 8)
        value = rng.randint(0, 1) if kind == QUERY else (int(kind == LOAN) if status == REFUSED
                                                          else None)
        ops.append(Op(client, kind, A, start, end, status, value=value))
    return ops, rng.randint(0, 1), rng.randint(0, 1)


def simulated_history(rng: random.Random) -> tuple[list[Op], int, int]:
    """What a correct server could answer: each operation takes effect at one instant inside
    its interval; then, half the time, one reply is falsified."""
    state = initial = rng.randint(0, 1)
    points = sorted(rng.sample(range(0, 60), rng.randint(1, 7)))
    ops = []
    for client, point in enumerate(points):
        kind = rng.choice([LOAN, RETURN, QUERY])
        start, end = point - rng.randint(0, 12), point + rng.randint(0, 12)
        if kind == QUERY:
            ops.append(Op(client, kind, A, start, end, OK, value=state))
            continue
        works = state == (0 if kind == LOAN else 1)
        if rng.random() < 0.2:
            status, end = UNKNOWN, None
        else:
            status = OK if works else REFUSED
        value = None if status != REFUSED else state
        ops.append(Op(client, kind, A, start, end, status, value=value))
        if works:
            state = 1 - state
    if rng.random() < 0.5:
        i = rng.randrange(len(ops))
        o = ops[i]
        if o.kind == QUERY:
            ops[i] = Op(o.client, o.kind, A, o.invoke, o.complete, OK, value=1 - (o.value or 0))
        elif o.status == OK:
            ops[i] = Op(o.client, o.kind, A, o.invoke, o.complete, REFUSED,
                        value=int(o.kind == LOAN))
        elif o.status == REFUSED:
            ops[i] = Op(o.client, o.kind, A, o.invoke, o.complete, OK)
        else:
            state = 1 - state
    return ops, initial, state


@pytest.mark.parametrize("make", [random_history, simulated_history])
def test_the_sweep_agrees_with_an_exhaustive_search(make) -> None:
    rng = random.Random(20261128)
    outcomes = {True: 0, False: 0}
    for _ in range(4000):
        ops, initial, final = make(rng)
        expected = exhaustive(ops, initial, final)
        got = not check_book(ops, initial, final)
        assert got == expected, (ops, initial, final)
        outcomes[expected] += 1
    assert min(outcomes.values()) > 400, outcomes  # both verdicts were exercised


def busy_history(n: int, clients: int, seed: int) -> tuple[list[Op], int]:
    """A correct server's history: closed-loop clients on one book, each operation taking
    effect at one instant inside its interval; 1% of writes get no reply."""
    rng = random.Random(seed)
    ready = [(rng.randint(0, 10), c) for c in range(clients)]
    heapq.heapify(ready)
    planned = []
    for _ in range(n):
        invoke, client = heapq.heappop(ready)
        point = invoke + rng.randint(1, 20)
        end = point + rng.randint(0, 20)
        planned.append((point, client, invoke, end))
        heapq.heappush(ready, (end + rng.randint(0, 3), client))
    state, ops = 0, []
    for _, client, invoke, end in sorted(planned):
        kind = rng.choice([LOAN, RETURN, QUERY])
        if kind == QUERY:
            ops.append(Op(client, kind, A, invoke, end, OK, value=state))
            continue
        works = state == (0 if kind == LOAN else 1)
        if rng.random() < 0.01:
            ops.append(Op(client, kind, A, invoke, None, UNKNOWN))
            state = 1 - state if works and rng.random() < 0.5 else state
            continue
        ops.append(Op(client, kind, A, invoke, end, OK if works else REFUSED,
                      value=None if works else state))
        state = 1 - state if works else state
    return ops, state


def test_a_long_busy_history_is_checked_without_blowing_up() -> None:
    """16 clients hammering one book for 10,000 operations, some of unknown outcome: the
    sweep keeps a few dozen configurations per instant and finds nothing wrong."""
    ops, final = busy_history(10_000, clients=16, seed=7)
    assert check_book(ops, 0, final) == []


def test_ten_thousand_unknown_writes_on_one_book_are_decided() -> None:
    """Writes of unknown outcome (a server answering errors to everything) cost the check
    near-linear work: before, each event walked every unused unknown write, and ten thousand of
    them passed the work budget (and took minutes)."""
    rng = random.Random(7)
    history, t = [], 0
    for n in range(10_000):
        history.append(Op(n % 16, rng.choice([LOAN, RETURN]), A, t, None, UNKNOWN, "c1"))
        t += rng.randint(1, 3) * MS
    for _ in range(500):  # queries in between, each seeing some state
        start = rng.randint(0, t)
        history.append(Op(99, QUERY, A, start, start + MS, OK, value=rng.randint(0, 1)))
    history.sort(key=lambda o: o.invoke)
    verdict = verify(history, {A: False}, lent(False))
    assert verdict.undecided == [] and verdict.ok


def test_an_undecided_book_is_not_a_clean_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    import libsrv_bench.verifier as verifier

    monkeypatch.setattr(verifier, "WORK_BUDGET", 3)
    history = [op(LOAN, 0, 5), op(RETURN, 1, 6, client=2), op(LOAN, 2, 7, client=3),
               op(QUERY, 3, 8, saw=1, client=4)]
    verdict = verify(history, {A: False}, lent(True))
    assert verdict.violations == [] and verdict.undecided == [A]
    assert not verdict.ok and verdict.as_dict()["ok"] is False


def test_a_finding_keeps_its_operation_the_state_before_and_what_overlapped() -> None:
    """The operations kept with a finding (what its table and picture show): the last write
    acknowledged before it was sent, everything that overlapped it, and the operation itself,
    even when many began after it and before its reply."""
    history = [op(LOAN, 0, 1), op(QUERY, 1, 2, saw=1, client=3), op(RETURN, 3, 4),
               op(RETURN, 10, 30, client=2)]
    history += [op(QUERY, 11 + n, 12 + n, saw=0, client=10 + n) for n in range(15)]
    verdict = verify(history, {A: False}, lent(False))
    (finding,) = [v for v in verdict.violations if v.kind == "double-return"]
    kept = [(o["client"], o["op"], o["invoke_ms"]) for o in finding.ops]
    assert (2, "return", 10.0) in kept  # the operation the finding is about
    assert (1, "return", 3.0) in kept  # the last state known before it was sent
    assert (3, "query", 1.0) not in kept  # answered before: nothing to say about it
    assert len(kept) == AROUND


def test_the_verifiers_picture_draws_each_client_and_the_broken_reply() -> None:
    history = [op(LOAN, 0, 1), op(RETURN, 3, 4), op(RETURN, 10, 30, client=2),
               op(LOAN, 12, 14, REFUSED, client=3)]
    verdict = verify(history, {A: False}, lent(False))
    detail = next(v for v in verdict.violations if v.kind == "double-return").as_dict()
    figure = finding_figure(detail)
    bars = figure.axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["client 1", "client 2",
                                                              "client 3"]
    red = [p for p in bars.patches if p.get_facecolor()[:3] == to_rgb(BROKEN)]
    assert len(red) == 1 and red[0].get_x() == pytest.approx(10.0)
    # the last state known (lent, until the return at 4 ms), then a second return in a row
    assert replayed_states(detail["ops"], 1) == [(3.0, 1), (4.0, 0), (30.0, 0)]
    plt.close(figure)


def test_a_finding_carries_the_states_the_verifier_allowed_and_the_picture_draws_them() -> None:
    """A loan from 0 to 10 ms and a return from 20 to 30, both acknowledged: a second return
    from 40 to 50 finds the book available. Over the finding's window (from the last write
    acknowledged before it was sent) the book may be either while that return is in flight,
    then only available: what the picture shows under the red reply, which says "was lent"."""
    history = [op(LOAN, 0, 10), op(RETURN, 20, 30), op(RETURN, 40, 50, client=2)]
    verdict = verify(history, {A: False}, lent(False))
    detail = next(v for v in verdict.violations if v.kind == "double-return").as_dict()
    assert detail["states"] == [[20.0, ["available", "lent"]], [30.0, ["available"]]]
    figure = finding_figure(detail)
    state = figure.axes[1]
    assert len([c for c in state.collections if c.get_paths()]) == 1  # the write in flight
    (mark,) = [line for line in state.lines if line.get_marker() == "X"]
    assert list(mark.get_xdata()) == [50.0] and list(mark.get_ydata()) == [1]
    plt.close(figure)


def test_the_verifiers_picture_speaks_spanish_when_asked() -> None:
    history = [op(LOAN, 0, 10), op(RETURN, 20, 30), op(RETURN, 40, 50, client=2)]
    verdict = verify(history, {A: False}, lent(False))
    detail = next(v for v in verdict.violations if v.kind == "double-return").as_dict()
    figure = finding_figure(detail, lang="es")
    drawn = " ".join(t.get_text() for ax in figure.axes
                     for t in [*ax.texts, ax.title, ax.xaxis.label, *ax.get_yticklabels(),
                               *(ax.get_legend().get_texts() if ax.get_legend() else [])])
    assert "cliente 2" in drawn and "devolución: OK" in drawn and "disponible" in drawn
    assert figure._suptitle.get_text() == f"devolución doble en {A}"
    assert "client " not in drawn and "available" not in drawn
    plt.close(figure)


def test_a_findings_window_of_allowed_states_is_read_by_bisection_as_by_a_full_scan() -> None:
    """`_Allowed.between` (bisection, so that thousands of findings stay cheap) says what a
    scan of the whole trace says: the last step before the window, then each change in it."""
    from libsrv_bench.verifier import _Allowed, _Describe

    names = {0: "available", 1: "lent"}

    def scanned(trace, start, end, describe):
        steps: list = []
        for at, states in trace:
            said = [names[s] for s in sorted(states)]
            if at <= start:
                steps = [[describe.ms(start), said]]
            elif at < end and (not steps or steps[-1][1] != said):
                steps.append([describe.ms(at), said])
        return steps

    draw = random.Random(7)
    describe = _Describe(0, {})
    for _ in range(300):
        times = sorted(draw.randrange(0, 50) * 1_000_000 for _ in range(draw.randrange(0, 30)))
        trace = [(at, frozenset(draw.choice([{0}, {1}, {0, 1}]))) for at in times]
        allowed = _Allowed(trace, describe)
        for _ in range(10):
            start = draw.randrange(-2, 52) * 1_000_000
            end = start + draw.randrange(0, 20) * 1_000_000
            assert allowed.between(start, end) == scanned(trace, start, end, describe)
