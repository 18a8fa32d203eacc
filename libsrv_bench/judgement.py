"""Whether a run is clean: the one place that decides it, for `run`, `grade` and the report.

"No anomaly" is not enough. A server that answers every request with an error, or whose
replies the bench cannot read, or that acknowledges no write at all, gives the verifier nothing
to contradict; a book the verifier could not decide, or a history with a part missing, proves
nothing either. Each of those is a reason the run is not clean. No I/O.
"""

from __future__ import annotations

from typing import Any


def error_share(summary: dict[str, Any]) -> float:
    """Errors, timeouts and NOT_FOUND over the measured requests (1.0 when there were none).
    Every request the bench sends is about a book of the catalog, so NOT_FOUND is a wrong
    answer too: a server that finds nothing must not pass a query-only run."""
    requests = summary.get("requests") or 0
    if not requests:
        return 1.0
    missing = summary.get("codes", {}).get("NOT_FOUND", 0)
    return (summary.get("errors", 0) + summary.get("timeouts", 0) + missing) / requests


def acknowledged_writes(summary: dict[str, Any]) -> int:
    return int(summary.get("writes_acknowledged", 0))


def not_clean(summary: dict[str, Any], verdict: dict[str, Any], max_errors: float, *,
              writes: bool) -> list[str]:
    """Why the run is not clean, in words (empty: clean). `writes`: the workload sends
    writes, so some must be acknowledged for the verdict to mean anything."""
    reasons = []
    if verdict.get("violations"):
        reasons.append(f"{verdict['violations']} anomalies: lost or doubled updates, or "
                       "answers no order of the operations explains (see violations.json)")
    if verdict.get("undecided"):
        reasons.append(f"{len(verdict['undecided'])} book(s) too tangled for the verifier to "
                       "decide within its budget: their history proves nothing either way")
    if verdict.get("reason"):
        reasons.append(str(verdict["reason"]))
    share = error_share(summary)
    if not summary.get("requests"):
        reasons.append("no request was answered in the measured time")
    elif share > max_errors:
        codes = {code: n for code, n in summary.get("codes", {}).items()
                 if code not in ("OK", "UNAVAILABLE", "NOT_LOANED")}
        reasons.append(f"{share:.1%} of the requests failed (errors, timeouts and books of "
                       f"the catalog not found: {codes}), "
                       f"more than the {max_errors:.1%} --max-errors allows: a server that "
                       "does not answer gives the verifier nothing to check")
    if writes and summary.get("requests") and not acknowledged_writes(summary):
        reasons.append("no loan or return was acknowledged: there was no update to lose, so "
                       "the verdict proves nothing")
    return reasons
