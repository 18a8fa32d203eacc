"""Whether a run is clean: the one place that decides it, for `run`, `grade` and the report.

"No anomaly" is not enough. A server that answers every request with an error, or whose
replies the bench cannot read, or that acknowledges no write at all, gives the verifier nothing
to contradict; a book the verifier could not decide, or a history with a part missing, proves
nothing either. Each of those is a reason the run is not clean. No I/O.
"""

from __future__ import annotations

from typing import Any

from libsrv_bench.sentences import say


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


def not_clean_facts(summary: dict[str, Any], verdict: dict[str, Any], max_errors: float, *,
                    writes: bool) -> list[list[Any]]:
    """Why the run is not clean, as [key, facts] pairs for `sentences.say` (empty: clean).
    `writes`: the workload sends writes, so some must be acknowledged for the verdict to mean
    anything."""
    reasons: list[list[Any]] = []
    if verdict.get("violations"):
        reasons.append(["anomalies", {"count": verdict["violations"]}])
    if verdict.get("undecided"):
        reasons.append(["undecided", {"count": len(verdict["undecided"])}])
    if verdict.get("reason"):
        reasons.append(["as-given", {"text": str(verdict["reason"])}])
    share = error_share(summary)
    if not summary.get("requests"):
        reasons.append(["no-answer", {}])
    elif share > max_errors:
        codes = {code: n for code, n in summary.get("codes", {}).items()
                 if code not in ("OK", "UNAVAILABLE", "NOT_LOANED")}
        reasons.append(["errors", {"share": share, "codes": codes, "allowed": max_errors}])
    if writes and summary.get("requests") and not acknowledged_writes(summary):
        reasons.append(["no-writes", {}])
    return reasons


def reasons_in(summary: dict[str, Any], lang: str) -> list[str]:
    """A run summary's reasons for not being clean, in `lang` (an older summary, kept
    without facts, in its stored words)."""
    facts = summary.get("not_clean_facts")
    if facts is None:
        return [str(r) for r in summary.get("not_clean", [])]
    return [say(key, values, lang) for key, values in facts]
