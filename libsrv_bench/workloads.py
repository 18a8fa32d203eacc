"""Named workloads: what each simulated client asks next.

A workload is pure: given a random generator, a client number and the books it may touch, it
returns the next request. Mixes are weights over actions; ``mix:query_isbn=90,loan_isbn=5,...``
names one on the command line.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from libsrv.generate import isbn_for
from libsrv.protocol import Action

Request = tuple[Action, dict[str, Any]]

# drawn for every request the load generator sends: computed once per book and client
_generated_isbn = lru_cache(maxsize=1 << 16)(isbn_for)
_borrower = lru_cache(maxsize=1 << 12)(lambda client: f"c{client}")


@dataclass(frozen=True)
class KeySpace:
    """The books a run may touch: `generated` synthetic ISBNs 0..count-1 (no list needed, so a
    million books cost nothing), else the `books` listed; `titled` books carry titles for the
    title workloads."""

    count: int = 0
    generated: bool = False
    books: tuple[tuple[str, str], ...] = ()

    def isbn(self, index: int) -> str:
        return _generated_isbn(index) if self.generated else self.books[index][0]

    @property
    def size(self) -> int:
        return self.count if self.generated else len(self.books)


@dataclass(frozen=True)
class Workload:
    """A mix of actions over the key space; `hot` > 0 restricts it to the first `hot` books."""

    name: str
    weights: dict[Action, float] = field(default_factory=dict)
    hot: int = 0
    scripted: bool = False
    _actions: list[Action] = field(init=False, repr=False, compare=False)
    _cumulative: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # drawn for every request: the cumulative weights are summed once, here
        object.__setattr__(self, "_actions", list(self.weights))
        object.__setattr__(self, "_cumulative", list(itertools.accumulate(self.weights.values())))

    def pick(self, rng: random.Random, keys: KeySpace) -> int:
        size = keys.size
        if self.hot:
            size = min(size, self.hot)
        return rng.randrange(size)

    def next(self, rng: random.Random, client: int, step: int, keys: KeySpace) -> Request:
        if self.scripted:
            return _class_step(client, step, keys)
        borrower = _borrower(client)
        # what rng.choices(cum_weights=) does, without its per-call set-up
        action = self._actions[bisect(self._cumulative, rng.random() * self._cumulative[-1],
                                      0, len(self._actions) - 1)]
        if action in (Action.LOAN_TITLE, Action.QUERY_TITLE):
            titled = keys.books[: self.hot or len(keys.books)]
            title = titled[rng.randrange(len(titled))][1]
            if action == Action.LOAN_TITLE:
                return action, {"title": title, "borrower": borrower}
            return action, {"title": title.split()[-1]}
        isbn = keys.isbn(self.pick(rng, keys))
        if action == Action.LOAN_ISBN:
            return action, {"isbn": isbn, "borrower": borrower}
        return action, {"isbn": isbn}


def _class_step(client: int, step: int, keys: KeySpace) -> Request:
    """The class's scenario: clients in pairs share two books; each round both query, both try
    to take the first by title (one wins), both try the second by ISBN, then both return."""
    pair = client // 2
    first, second = keys.books[(2 * pair) % len(keys.books)], \
        keys.books[(2 * pair + 1) % len(keys.books)]
    borrower = f"c{client}"
    script: list[Request] = [
        (Action.QUERY_ISBN, {"isbn": first[0]}),
        (Action.LOAN_TITLE, {"title": first[1], "borrower": borrower}),
        (Action.LOAN_ISBN, {"isbn": second[0], "borrower": borrower}),
        (Action.RETURN_ISBN, {"isbn": first[0]}),
        (Action.RETURN_ISBN, {"isbn": second[0]}),
    ]
    return script[step % len(script)]


WORKLOADS: dict[str, Workload] = {
    "read-mostly": Workload("read-mostly", {Action.QUERY_ISBN: 90, Action.LOAN_ISBN: 5,
                                            Action.RETURN_ISBN: 5}),
    "write-heavy": Workload("write-heavy", {Action.QUERY_ISBN: 20, Action.LOAN_ISBN: 40,
                                            Action.RETURN_ISBN: 40}),
    "hot-spot": Workload("hot-spot", {Action.LOAN_ISBN: 50, Action.RETURN_ISBN: 50}, hot=3),
    "loan-by-title": Workload("loan-by-title", {Action.LOAN_TITLE: 45, Action.RETURN_ISBN: 45,
                                                Action.QUERY_TITLE: 10}, hot=50),
    "class": Workload("class", scripted=True),
    "ping": Workload("ping", {Action.PING: 1}),
}


def workload_named(name: str, hot: int | None = None) -> Workload:
    """A named workload, or ``mix:action=weight,...``; `hot` overrides its hot-set size."""
    if name.startswith("mix:"):
        weights: dict[Action, float] = {}
        for part in name[4:].split(","):
            action, _, weight = part.partition("=")
            try:
                weights[Action(action.strip())] = float(weight)
            except ValueError:
                raise ValueError(f"bad mix entry {part!r}; use action=weight") from None
        workload = Workload(name, weights)
    elif name in WORKLOADS:
        workload = WORKLOADS[name]
    else:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)} "
                         "or mix:action=weight,...")
    if hot is not None:
        workload = Workload(workload.name, workload.weights, hot, workload.scripted)
    return workload


_SCRIPT_ACTIONS = frozenset({Action.QUERY_ISBN, Action.LOAN_TITLE, Action.LOAN_ISBN,
                             Action.RETURN_ISBN})  # what `_class_step` sends
WRITES = frozenset({Action.LOAN_ISBN, Action.LOAN_TITLE, Action.RETURN_ISBN})


def workload_actions(workload: Workload) -> set[Action]:
    """Every action the workload may send."""
    return set(_SCRIPT_ACTIONS) if workload.scripted else set(workload.weights)


def has_writes(workload: Workload) -> bool:
    return bool(workload_actions(workload) & WRITES)


def needs_titles(workload: Workload) -> bool:
    return workload.scripted or bool(
        {Action.LOAN_TITLE, Action.QUERY_TITLE} & set(workload.weights))
