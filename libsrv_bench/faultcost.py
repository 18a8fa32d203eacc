"""The report's section "What a fault costs": for each kind of fault among the runs, the
throughput around it, how long it took to come back and which requests it cost, in words
computed from the runs' summaries and timelines.

A run with a fault schedule (`--fault`) records in its summary each fault as it happened, its
recovery and its cost (`libsrv_bench.faults.fault_summary`), and its ``timeline.csv``. This
module reads those and needs nothing else; `fault_sections(paths)` is what the report calls.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from libsrv_bench.faults import FAULT_WORDS, RECOVERED_SHARE
from libsrv_bench.lab import Section
from libsrv_bench.rounds import find_runs

MARGIN_S = 1.5  # seconds of timeline drawn before a fault and after its recovery


_LINE_WORDS = {
    "en": {"failed": "fault {fault}: not carried out: {error}",
           "back": "throughput back to {share:.0%} of before after {s:g} s",
           "never": "throughput not back to its level before by the end of the run",
           "took": ", restarted in {s:g} s",
           "line": "fault {fault} at {at:g} s{hit}{took}: {back}; {timeouts} timeouts, "
                   "{retried} retried, {internal} INTERNAL"},
    "es": {"failed": "fallo {fault}: no se hizo: {error}",
           "back": "el rendimiento volvió al {share:.0%} del de antes tras {s:g} s",
           "never": "el rendimiento no volvió a su nivel de antes antes del final",
           "took": ", arrancado de nuevo en {s:g} s",
           "line": "fallo {fault} a los {at:g} s{hit}{took}: {back}; {timeouts} tiempos "
                   "agotados, {retried} reintentadas, {internal} INTERNAL"},
}


def fault_lines(summary: dict[str, Any], lang: str = "en") -> list[str]:
    """One line per fault of a run's summary: when it happened, how long throughput took to
    come back, what it cost (what ``bench run`` prints, and notebook 07, in `lang`)."""
    words = _LINE_WORDS["es" if lang == "es" else "en"]
    lines = []
    for fault in summary.get("faults", []):
        if fault["error"]:
            lines.append(words["failed"].format(fault=fault["fault"], error=fault["error"]))
            continue
        back = (words["back"].format(share=RECOVERED_SHARE, s=fault["recovered_after_s"])
                if fault["recovered_after_s"] is not None else words["never"])
        hit = f" (PID {fault['pid']})" if fault["pid"] else ""
        took = words["took"].format(s=fault["restart_s"]) if fault.get("restart_s") else ""
        lines.append(words["line"].format(fault=fault["fault"], at=fault["at_s"], hit=hit,
                                          took=took, back=back, timeouts=fault["timeouts"],
                                          retried=fault["retried"],
                                          internal=fault["internal"]))
    return lines


def fault_rows(paths: Sequence[Path | str]) -> list[dict[str, Any]]:
    """Every fault of every run under `paths`: the summary's record of it, with the run's
    folder, name, verdict and the command that repeats it."""
    rows = []
    for folder in find_runs(paths):
        summary = json.loads((folder / "summary.json").read_text())
        done = sorted((f for f in summary.get("faults", []) if not f.get("error")),
                      key=lambda f: f["at_s"])
        for fault in done:
            # the panel stops at the neighbouring faults of the same run (not at one that
            # overlaps it: both are drawn over the same seconds)
            ends = [f["at_s"] + f["duration"] for f in done
                    if f["at_s"] + f["duration"] <= fault["at_s"] and f is not fault]
            starts = [f["at_s"] for f in done if f["at_s"] >= fault["at_s"] + fault["duration"]
                      and f is not fault]
            after = max(ends, default=None)
            before = min(starts, default=None)
            rows.append({**fault, "folder": folder, "run": summary.get("name", folder.name),
                         "clean": summary.get("clean"),
                         "command": summary.get("command", ""), "after_s": after,
                         "before_s": before})
    return rows


def _cost(row: dict[str, Any]) -> int:
    return int(row["retried"]) + int(row["timeouts"]) + int(row["internal"])


def _median_text(values: list[int]) -> str:
    """A count over runs: the value itself when every run agrees, else median and range."""
    if min(values) == max(values):
        return f"{values[0]:,}"
    return f"{statistics.median(values):,.0f} ({min(values):,}-{max(values):,})"


_SECTION_WORDS = {
    "en": {"none": "no request", "none_runs": " in any of {runs} runs",
           "free": "{Kind} cost {cost}",
           "same": "{cost:,} request(s)", "same_runs": " in each of {runs} runs",
           "spread": "a median of {median:,.0f} request(s) over {runs} runs (from {low:,} to "
                     "{high:,})",
           "cost": "{Kind} cost {cost}",
           "counts": ": {retried} retried, {timeouts} given up after every retry, {internal} "
                     "answered INTERNAL",
           "back": "; throughput was back to {share:.0%} of its level before after {s:.1f} s",
           "some_never": " ({n} run(s) not back by their end)",
           "never": "; throughput did not come back to {share:.0%} of its level before by the "
                    "end",
           "unclean": " {n} of {runs} run(s) with faults were not clean ({names}): see their "
                      "findings.",
           "clean": " Every one of the {runs} run(s) with faults was clean: the verifier found "
                    "no lost or doubled update across the faults.",
           "columns": ("fault", "runs", "back to {share:.0%} after (s)", "retried", "given up",
                       "INTERNAL", "runs clean"),
           "of": "{n} of {runs}", "not_back": "never", "never_n": ", {n} never",
           "title": "What a fault costs",
           "question": "A worker killed or stopped, the whole server killed and restarted, the "
                       "network cut, slowed or lossy: how long does the service take to come "
                       "back, and which requests does each cost a client that retries?",
           "x": "seconds from the fault", "y": "answered per second",
           "suptitle": "throughput around each fault (red: the fault; green: back to "
                       "{share:.0%})"},
    "es": {"none": "ninguna petición", "none_runs": " en ninguna de {runs} ejecuciones",
           "free": "{Kind} no costó {cost}",
           "same": "{cost:,} petición(es)", "same_runs": " en cada una de {runs} ejecuciones",
           "spread": "una mediana de {median:,.0f} petición(es) en {runs} ejecuciones (de "
                     "{low:,} a {high:,})",
           "cost": "{Kind} costó {cost}",
           "counts": ": {retried} reintentadas, {timeouts} abandonadas tras todos los "
                     "reintentos, {internal} respondidas INTERNAL",
           "back": "; el rendimiento volvió al {share:.0%} de su nivel de antes tras {s:.1f} s",
           "some_never": " ({n} ejecución(es) sin volver antes de su final)",
           "never": "; el rendimiento no volvió al {share:.0%} de su nivel de antes antes del "
                    "final",
           "unclean": " {n} de {runs} ejecución(es) con fallos no fueron limpias ({names}): mira "
                      "sus hallazgos.",
           "clean": " Las {runs} ejecución(es) con fallos fueron limpias: el verificador no "
                    "encontró ninguna actualización perdida ni duplicada a través de los fallos.",
           "columns": ("fallo", "ejecuciones", "de vuelta al {share:.0%} tras (s)",
                       "reintentadas", "abandonadas", "INTERNAL", "ejecuciones limpias"),
           "of": "{n} de {runs}", "not_back": "nunca", "never_n": ", {n} nunca",
           "title": "Lo que cuesta un fallo",
           "question": "Un trabajador matado o detenido, el servidor entero matado y arrancado "
                       "de nuevo, la red cortada, lenta o con pérdidas: ¿cuánto tarda el "
                       "servicio en volver, y qué peticiones le cuesta cada fallo a un cliente "
                       "que reintenta?",
           "x": "segundos desde el fallo", "y": "respondidas por segundo",
           "suptitle": "rendimiento alrededor de cada fallo (rojo: el fallo; verde: de vuelta "
                       "al {share:.0%})"},
}


def _section_words(lang: str) -> dict[str, Any]:
    return _SECTION_WORDS["es" if lang == "es" else "en"]


def _sentence(kind: str, rows: list[dict[str, Any]], lang: str = "en") -> str:
    words = _section_words(lang)
    english, spanish = FAULT_WORDS.get(kind, (kind, kind))
    name = spanish if lang == "es" else english
    costs = [_cost(r) for r in rows]
    runs = len(rows)
    if max(costs) == 0:
        cost = words["none"] + (words["none_runs"].format(runs=runs) if runs > 1 else "")
    elif min(costs) == max(costs):
        cost = words["same"].format(cost=costs[0]) + (words["same_runs"].format(runs=runs)
                                                      if runs > 1 else "")
    else:
        cost = words["spread"].format(median=statistics.median(costs), runs=runs,
                                      low=min(costs), high=max(costs))
    head = words["free" if max(costs) == 0 else "cost"]
    text = head.format(Kind=name[:1].upper() + name[1:], cost=cost) + words["counts"].format(
        retried=_median_text([int(r["retried"]) for r in rows]),
        timeouts=_median_text([int(r["timeouts"]) for r in rows]),
        internal=_median_text([int(r["internal"]) for r in rows]))
    recoveries = [r["recovered_after_s"] for r in rows if r["recovered_after_s"] is not None]
    if recoveries:
        text += words["back"].format(share=RECOVERED_SHARE, s=statistics.median(recoveries))
        if len(recoveries) < runs:
            text += words["some_never"].format(n=runs - len(recoveries))
    else:
        text += words["never"].format(share=RECOVERED_SHARE)
    return text + "."


def _figure(kinds: list[str], picked: dict[str, dict[str, Any]],
            lang: str = "en") -> plt.Figure:
    words = _section_words(lang)
    columns = min(3, len(kinds))
    lines = -(-len(kinds) // columns)
    fig, grid = plt.subplots(lines, columns, figsize=(3.4 * columns, 2.9 * lines),
                             squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes, kinds, strict=False):
        row = picked[kind]
        table = pd.read_csv(row["folder"] / "timeline.csv")
        start = row["at_s"] - MARGIN_S
        end = row["at_s"] + row["duration"] + (row["recovered_after_s"] or 0) + MARGIN_S
        if row["after_s"] is not None:
            start = max(start, (row["after_s"] + row["at_s"]) / 2)
        if row["before_s"] is not None:
            end = min(end, row["before_s"] - 0.1)  # the interval before the next one
        part = table[(table["t_s"] >= start) & (table["t_s"] <= end)]
        ax.plot(part["t_s"] - row["at_s"], part["rate_per_s"], color="#0072B2", lw=1.4)
        if row["duration"]:
            ax.axvspan(0, row["duration"], color="#D62728", alpha=0.15, lw=0)
        ax.axvline(0, color="#D62728", ls="--", lw=1)
        if row["recovered_after_s"] is not None:
            ax.axvline(row["recovered_after_s"], color="#009E73", ls=":", lw=1.2)
        ax.set_title(row["fault"], fontsize=10)
        ax.set_xlabel(words["x"])
        ax.set_ylabel(words["y"])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(words["suptitle"].format(share=RECOVERED_SHARE), fontsize=10)
    fig.tight_layout()
    return fig


def _recovery_text(rows: list[dict[str, Any]], lang: str = "en") -> str:
    words = _section_words(lang)
    values = [r["recovered_after_s"] for r in rows if r["recovered_after_s"] is not None]
    if not values:
        return str(words["not_back"])
    text = f"{statistics.median(values):.1f}"
    if f"{min(values):.1f}" != f"{max(values):.1f}":
        text += f" ({min(values):.1f}-{max(values):.1f})"
    return text + ("" if len(values) == len(rows) else
                   words["never_n"].format(n=len(rows) - len(values)))


def fault_sections(paths: Sequence[Path | str], lang: str = "en") -> list[Section]:
    """The section, in `lang` ("en" or "es"), when some run under `paths` had faults; else
    none."""
    rows = fault_rows(paths)
    if not rows:
        return []
    words = _section_words(lang)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    kinds = list(by_kind)
    # the figure shows, for each kind, the run whose cost is the median one
    picked = {kind: sorted(group, key=_cost)[len(group) // 2] for kind, group in
              by_kind.items()}
    runs = {r["run"]: r for r in rows}
    unclean = [name for name, r in runs.items() if not r["clean"]]
    text = " ".join(_sentence(kind, by_kind[kind], lang) for kind in kinds)
    if unclean:
        text += words["unclean"].format(n=len(unclean), runs=len(runs), names=", ".join(unclean))
    else:
        text += words["clean"].format(runs=len(runs))
    fault, count, back, retried, given_up, internal, clean = words["columns"]
    shown = pd.DataFrame({
        fault: [by_kind[k][0]["fault"] for k in kinds],
        count: [len(by_kind[k]) for k in kinds],
        back.format(share=RECOVERED_SHARE): [_recovery_text(by_kind[k], lang) for k in kinds],
        retried: [_median_text([int(r["retried"]) for r in by_kind[k]]) for k in kinds],
        given_up: [_median_text([int(r["timeouts"]) for r in by_kind[k]]) for k in kinds],
        internal: [_median_text([int(r["internal"]) for r in by_kind[k]]) for k in kinds],
        clean: [words["of"].format(n=sum(bool(r["clean"]) for r in by_kind[k]),
                                   runs=len(by_kind[k])) for k in kinds],
    })
    return [Section(
        "faults", words["title"], words["question"], _figure(kinds, picked, lang), text, shown,
        sorted({r["command"] for r in rows if r["command"]}))]
