"""A run over time: what was answered, refused and lost in each interval, and how long it took.

Whole-run percentiles hide a stall: one second without replies is a number in a table. The
timeline shows it. `timeline_frame` buckets a run's requests (`results.records_frame`) by the
interval in which each was answered (a timeout by the interval in which it was sent), and each
run folder gets ``timeline.csv`` and ``timeline.png`` (events such as killed workers drawn as
vertical lines, and faults that last as shaded bands).

Latency per interval is exact (the interval's own requests, sorted), both from the intended
send (corrected: what an open-loop client waited) and from the actual send (uncorrected).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

from libsrv_bench.history import FAILURE_CODES
from libsrv_bench.settings import RunConfig

INTERVAL_MS = 100.0
COLUMNS = ("t_s", "answered", "errors", "timeouts", "rate_per_s", "p50_ms", "p99_ms", "max_ms",
           "p99_uncorrected_ms")


def timeline_frame(frame: pd.DataFrame, interval_ms: float = INTERVAL_MS) -> pd.DataFrame:
    """One row per interval from the first request to the last reply: `t_s` (the interval's
    start, seconds from the run's start), requests answered in it (`errors` among them: codes
    that say the server failed), requests sent in it that never got a reply (`timeouts`), the
    answered rate, and the latency of what was answered in it."""
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    answered = frame[frame["recv_ms"].notna()]
    lost = frame[frame["recv_ms"].isna()]
    end = max(answered["recv_ms"].max() if not answered.empty else 0.0,
              lost["send_ms"].max() if not lost.empty else 0.0)
    count = int(end // interval_ms) + 1
    slot = (answered["recv_ms"] // interval_ms).astype(int)
    groups = answered.groupby(slot)
    table = pd.DataFrame(index=range(count))
    table["t_s"] = table.index * interval_ms / 1000
    table["answered"] = groups.size().reindex(table.index, fill_value=0)
    failed = answered["code"].isin(FAILURE_CODES)
    table["errors"] = failed.groupby(slot).sum().reindex(table.index, fill_value=0)
    table["timeouts"] = (lost["send_ms"] // interval_ms).astype(int).value_counts() \
        .reindex(table.index, fill_value=0)
    table["rate_per_s"] = table["answered"] * 1000 / interval_ms
    latency = groups["latency_ms"]
    table["p50_ms"] = latency.quantile(0.5).reindex(table.index)
    table["p99_ms"] = latency.quantile(0.99).reindex(table.index)
    table["max_ms"] = latency.max().reindex(table.index)
    table["p99_uncorrected_ms"] = groups["service_ms"].quantile(0.99).reindex(table.index)
    return table[list(COLUMNS)].astype({"answered": int, "errors": int, "timeouts": int})


Event = tuple[float, str, float]  # (seconds from the start, label, how long it lasted)


_WORDS = {
    "en": {"answered": "answered / s", "failed": "errors + timeouts / s",
           "rate": "requests / s", "latency": "latency, ms (log scale)",
           "x": "seconds from the start (intervals of {ms:g} ms)"},
    "es": {"answered": "respondidas / s", "failed": "errores + tiempos agotados / s",
           "rate": "peticiones / s", "latency": "latencia, ms (escala log.)",
           "x": "segundos desde el inicio (intervalos de {ms:g} ms)"},
}


def timeline_figure(table: pd.DataFrame, events: Sequence[Event] = (),
                    title: str = "", lang: str = "en") -> plt.Figure:
    """Top: requests answered per second, with errors and timeouts; bottom: latency p50, p99
    and max per interval (log scale). `events` are drawn as a dashed line where each starts,
    and a shaded band while it lasts. Labels in `lang` ("en" or "es")."""
    words = _WORDS["es" if lang == "es" else "en"]
    fig, (rate, latency) = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True,
                                        height_ratios=[1, 1.2])
    rate.plot(table["t_s"], table["rate_per_s"], color="#0072B2", linewidth=1.2,
              label=words["answered"])
    failed = table["errors"] + table["timeouts"]
    if failed.any():
        step = _interval_s(table)
        rate.bar(table["t_s"], failed / step, width=step, align="edge", color="#D55E00",
                 alpha=0.7, label=words["failed"])
    rate.set_ylabel(words["rate"])
    rate.set_ylim(bottom=0)
    rate.grid(True, alpha=0.3)
    rate.legend(fontsize=8, loc="lower right")
    for column, colour, label in (("p50_ms", "#009E73", "p50"), ("p99_ms", "#E69F00", "p99"),
                                  ("max_ms", "#CC79A7", "max")):
        latency.plot(table["t_s"], table[column], color=colour, linewidth=1.1, label=label)
    if table["max_ms"].notna().any():
        latency.set_yscale("log")
        latency.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # not 10^1
        latency.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    latency.set_ylabel(words["latency"])
    latency.set_xlabel(words["x"].format(ms=_interval_s(table) * 1000))
    latency.grid(True, which="major", alpha=0.3)
    latency.legend(fontsize=8, loc="upper right")
    for number, (at, label, lasted) in enumerate(sorted(events)):
        for ax in (rate, latency):
            ax.axvline(at, color="0.35", linestyle="--", linewidth=1)
            if lasted:
                ax.axvspan(at, at + lasted, color="#D55E00", alpha=0.12, linewidth=0)
        # labels on two staggered rows, so that faults close together stay readable
        rate.annotate(label, (at, 1.0), xycoords=("data", "axes fraction"),
                      xytext=(3, -11 - 11 * (number % 2)), textcoords="offset points",
                      fontsize=7.5, color="0.25")
    if title:
        fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    return fig


def _minor_label(value: float, _: int) -> str:
    """2 and 5 of each decade labelled (20, 50), the rest left bare: readable, not crowded."""
    leading = f"{value:.0e}"[0]
    return f"{value:g}" if leading in "25" else ""


def _interval_s(table: pd.DataFrame) -> float:
    return float(table["t_s"].iloc[1] - table["t_s"].iloc[0]) if len(table) > 1 else \
        INTERVAL_MS / 1000


def run_figure(folder: Path | str, lang: str = "en") -> plt.Figure:
    """The timeline of a run folder, from its ``timeline.csv`` and the faults its summary
    records (what ``timeline.png`` shows; notebooks call this), labelled in `lang`."""
    import json

    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    events = [(f["at_s"], f["fault"], f["duration"]) for f in summary.get("faults", [])
              if not f.get("error")]
    from libsrv_bench.rounds import config_of

    return timeline_figure(pd.read_csv(folder / "timeline.csv"), events,
                           run_title(config_of(summary), lang), lang)


def run_title(config: RunConfig, lang: str = "en") -> str:
    """A run's timeline title: its label when it has one, else its configuration in words
    (its folder's name may be cut and hashed: a long fault schedule makes a long name)."""
    from libsrv_bench.rounds import describe

    return config.label or describe(config, lang)


def write_timeline(folder: Path, frame: pd.DataFrame,
                   events: Sequence[Event] = (), title: str = "", *,
                   figure: bool = True) -> pd.DataFrame:
    """``timeline.csv`` (and, with `figure`, ``timeline.png``) in the run `folder`; returns
    the table."""
    table = timeline_frame(frame)
    table.to_csv(folder / "timeline.csv", index=False, float_format="%.3f")
    if figure and not table.empty:
        fig = timeline_figure(table, events, title)
        fig.savefig(folder / "timeline.png", dpi=80)
        plt.close(fig)
    return table
