"""The notebooks' experiments as lists of runs, for the kit's own server or for a server already
running (a group's, in its own protocol): what a notebook's parameters turn into.

Against someone else's server the rows only the kit's server can have are left out: its worker
count and storage are not the bench's to set, it has no unsafe switch, and the kit's broker
echo says nothing about it. The transport's limit (a local echo) stays as the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from libsrv_bench.compare import baseline_candidates, transport_reference
from libsrv_bench.dialects import DEFAULT_DIALECT
from libsrv_bench.settings import RunConfig


def aimed(base: RunConfig, endpoint: str | None = None, *, dialect: str = DEFAULT_DIALECT,
          catalog: str | None = None, name: str = "") -> RunConfig:
    """`base` against the server at `endpoint` (None: the kit's own, started for each run)."""
    if endpoint is None:
        return base
    return replace(base, endpoint=endpoint, dialect=dialect, catalog=catalog,
                   target=name or endpoint)


def latency_plan(base: RunConfig, target: RunConfig, clients: Sequence[int],
                 workers: Sequence[int]) -> list[RunConfig]:
    """The transport's limit, the target at each client count, and (the kit's server only)
    at each worker count."""
    plan = [transport_reference(base), target]
    plan += [replace(target, clients=c) for c in clients if c != target.clients]
    if not target.endpoint:
        plan += [replace(target, workers=w) for w in workers if w != target.workers]
    return plan


def cost_rows(base: RunConfig, target: RunConfig) -> dict[str, RunConfig]:
    """The rows `compare` puts beside the transport's limit to show where CPU goes."""
    rows = {} if target.endpoint else baseline_candidates(base)
    rows[target.target or "server"] = target
    return rows


def fight_plan(fight: RunConfig) -> list[RunConfig]:
    """The lost-update experiment: the kit's server without its lock and with it, or someone
    else's server as it is (its lock is its own to have or not)."""
    if fight.endpoint:
        return [fight]
    return [replace(fight, unsafe_no_lock=True), fight]
