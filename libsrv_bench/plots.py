"""The lab report's figures, as matplotlib Figures: the report saves them, notebooks show them.

Every figure takes rows of `libsrv_bench.rounds.aggregate` (one per configuration, medians over
rounds with the lowest and highest round) and draws each point at its median with a bar from
the lowest to the highest round. A point measured in one round only is drawn hollow, and so is
a percentile that a round had too few requests to measure. Each configuration has one colour
and marker; the runs' settings are written under the figure by the report, not inside it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from hdrh.histogram import HdrHistogram
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullLocator,
)

from libsrv_bench.rounds import TAIL_SAMPLES, enough

# colour-blind-safe colours (Okabe and Ito), each with its own marker; red is kept for runs
# without the lock so that it always means "unsafe"
STYLES = [("#0072B2", "o"), ("#E69F00", "s"), ("#009E73", "^"), ("#CC79A7", "D"),
          ("#56B4E9", "v"), ("#000000", "P"), ("#999999", "X"), ("#F0E442", "*")]
UNSAFE = ("#D62728", "x")
SAFE = STYLES[0]
PERCENTILE_TICKS = (50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99)
SIZE = (8.5, 4.2)


def style(index: int, unsafe: bool = False) -> tuple[str, str]:
    return UNSAFE if unsafe else STYLES[index % len(STYLES)]


def _spread(rows: pd.DataFrame, metric: str) -> list[list[float]]:
    """Error-bar lengths below and above each median: down to the lowest, up to the highest."""
    return [list((rows[metric] - rows[f"{metric}_lo"]).clip(lower=0)),
            list((rows[f"{metric}_hi"] - rows[metric]).clip(lower=0))]


def _figure(columns: int = 1, note: str = "") -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, columns, figsize=SIZE, layout="constrained", squeeze=False)
    if note:
        fig.supxlabel(note, fontsize=8, color="0.35")
    return fig, list(axes[0])


def number(value: float) -> str:
    """A figure as the report writes it: three significant digits or so, thousands grouped."""
    if value != value:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _plain_ticks(ax: plt.Axes, values: Sequence[float], axis: str = "x") -> None:
    """Ticks at exactly `values`, written as plain numbers (1, 4, 16, 64, not 2^0...2^6)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(list(values)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(NullLocator())


def _log_ticks(ax: plt.Axes) -> None:
    """A log y axis labelled 1, 2, 5, 10, 20, 50 ... instead of powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # matplotlib labels minor ticks as 3x10^0 over a short range: plain numbers there, and
    # none where the majors (1, 2, 5 per decade) are enough
    def minor(value: float, _: int) -> str:
        low, high = ax.get_ylim()
        return f"{value:g}" if low > 0 and high / low < 10 else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _dots(ax: plt.Axes, positions: Sequence[float], values: Sequence[float],
          spread: list[list[float]], colours: Sequence[str], hollow: Sequence[bool], *,
          horizontal: bool = False) -> None:
    """A dot plot: a mark at each median with the rounds' spread as a line (a hollow mark
    for a single round)."""
    for index, (where, value, colour, empty) in enumerate(
            zip(positions, values, colours, hollow, strict=True)):
        err = [[spread[0][index]], [spread[1][index]]]
        xy = (value, where) if horizontal else (where, value)
        ax.errorbar(*xy, **({"xerr": err} if horizontal else {"yerr": err}), fmt="o",
                    markersize=8, color=colour, markerfacecolor="white" if empty else colour,
                    markeredgewidth=1.5, elinewidth=1.2, capsize=4)


def _bars(ax: plt.Axes, rows: pd.DataFrame, metric: str, labels: list[str],
          colours: list[str], *, log: bool = False, unit: str = "") -> None:
    """Bars at the medians with the rounds' spread, each labelled with its median; on a log
    axis, dots instead of bars."""
    positions = list(range(len(rows)))
    hollow = [r == 1 for r in rows["rounds"]]
    if log:  # a bar on a log axis starts at an arbitrary floor and makes gaps look small
        _dots(ax, positions, list(rows[metric]), _spread(rows, metric), colours, hollow)
    else:
        ax.bar(positions, rows[metric], color=[("white" if h else c) for h, c in
                                               zip(hollow, colours, strict=True)],
               edgecolor=colours, linewidth=1.5, yerr=_spread(rows, metric), capsize=4,
               error_kw={"elinewidth": 1, "ecolor": "0.2"})
    tops = rows[f"{metric}_hi"].where(rows[f"{metric}_hi"].notna(), rows[metric])
    for x, median, top in zip(positions, rows[metric], tops, strict=True):
        y = top * (1.25 if log else 1.0) + (0 if log else 0.02 * tops.max())
        ax.annotate(number(median) + unit, (x, y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions, labels, fontsize=8)
    if log:
        _log_ticks(ax)
        low = max(min(rows[f"{metric}_lo"].min(), rows[metric].min()) / 3, 1e-3)
        ax.set_ylim(low, tops.max() * 6)
    else:
        ax.set_ylim(0, tops.max() * 1.18 if tops.max() > 0 else 1)
    ax.grid(True, axis="y", which="major", alpha=0.3)


# the words of the report's figures, in English and in the class's Spanish
WORDS = {
    "en": {"clients": "concurrent clients", "latency_ms": "latency (ms)", "latency": "Latency",
           "per_s": "requests / s", "throughput": "Throughput", "median": "median (p50)",
           "percentile": "percentile (each line stops where fewer than {n} requests lie "
                         "beyond it)",
           "workers": "worker processes", "cpu": "server CPU time per request (µs)",
           "cost": "Cost per request", "single": "0\n(single REP)",
           "fraction": "throughput as a fraction of the transport's limit (1 = as fast as it)"},
    "es": {"clients": "clientes concurrentes", "latency_ms": "latencia (ms)",
           "latency": "Latencia", "per_s": "peticiones / s", "throughput": "Rendimiento",
           "median": "mediana (p50)",
           "percentile": "percentil (cada línea acaba donde quedan menos de {n} peticiones "
                         "más allá)",
           "workers": "procesos trabajadores", "cpu": "CPU del servidor por petición (µs)",
           "cost": "Coste por petición", "single": "0\n(un solo REP)",
           "fraction": "rendimiento como fracción del límite del transporte (1 = tan rápido "
                       "como él)"},
}


def _words(lang: str) -> dict[str, str]:
    return WORDS["es" if lang == "es" else "en"]


def latency_vs_clients(rows: pd.DataFrame, note: str = "", lang: str = "en") -> plt.Figure:
    """Left: p50 and p99 latency against clients (log scales); right: throughput."""
    words = _words(lang)
    fig, (left, right) = _figure(2, note)
    clients = list(rows["clients"])
    for index, (metric, name, line) in enumerate((("p50_ms", words["median"], "-"),
                                                  ("p99_ms", "p99", "--"))):
        colour, marker = style(index)
        left.errorbar(clients, rows[metric], yerr=_spread(rows, metric), color=colour,
                      marker=marker, linestyle=line, capsize=3, label=name)
        weak = rows[~rows[f"{metric}_enough"] | (rows["rounds"] == 1)]
        left.plot(weak["clients"], weak[metric], linestyle="none", marker=marker,
                  markerfacecolor="white", markeredgecolor=colour, markersize=8)
    left.set_xscale("log")
    _plain_ticks(left, clients)
    _log_ticks(left)
    left.set_xlabel(words["clients"])
    left.set_ylabel(words["latency_ms"])
    left.set_title(words["latency"], fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    colour, marker = style(2)
    right.errorbar(clients, rows["throughput"], yerr=_spread(rows, "throughput"), color=colour,
                   marker=marker, capsize=3)
    right.set_xscale("log")
    _plain_ticks(right, clients)
    right.set_ylim(0, rows["throughput_hi"].max() * 1.15)
    right.set_xlabel(words["clients"])
    right.set_ylabel(words["per_s"])
    right.set_title(words["throughput"], fontsize=10)
    right.grid(True, alpha=0.3)
    return fig


def percentile_curves(curves: dict[str, list[HdrHistogram]], note: str = "",
                      lang: str = "en") -> plt.Figure:
    """Latency at each percentile, one line per configuration at the median of its rounds with a
    band from the lowest to the highest round; a line stops where fewer than TAIL_SAMPLES
    requests of a round lie beyond the percentile."""
    fig, (ax,) = _figure(1, note)
    for index, (name, hists) in enumerate(curves.items()):
        counts = [h.get_total_count() for h in hists]
        if not counts or min(counts) == 0:
            continue
        ticks = [p for p in PERCENTILE_TICKS if enough(min(counts), p)]
        values = [[h.get_value_at_percentile(p) / 1e6 for h in hists] for p in ticks]
        xs = [1 / (1 - p / 100) for p in ticks]
        middle = [statistics.median(v) for v in values]
        colour, marker = style(index)
        ax.plot(xs, middle, color=colour, marker=marker, label=name)
        if len(hists) > 1:
            ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values],
                            color=colour, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    names = {round(1 / (1 - p / 100)): f"{p:g}%" for p in PERCENTILE_TICKS}
    _plain_ticks(ax, sorted(names))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: names.get(round(v), "")))
    _log_ticks(ax)
    ax.set_xlabel(_words(lang)["percentile"].format(n=TAIL_SAMPLES))
    ax.set_ylabel(_words(lang)["latency_ms"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def workers_label(workers: int, lang: str = "en") -> str:
    return _words(lang)["single"] if workers == 0 else str(workers)


def throughput_vs_workers(rows: pd.DataFrame, note: str = "", lang: str = "en") -> plt.Figure:
    """Left: throughput per number of workers; right: the server's CPU time per request."""
    words = _words(lang)
    fig, (left, right) = _figure(2, note)
    labels = [workers_label(w, lang) for w in rows["workers"]]
    colour = STYLES[0][0]
    _bars(left, rows, "throughput", labels, [colour] * len(rows))
    left.set_xlabel(words["workers"])
    left.set_ylabel(words["per_s"])
    left.set_title(words["throughput"], fontsize=10)
    _bars(right, rows, "server_cpu_us", labels, [STYLES[1][0]] * len(rows), unit=" µs")
    right.set_xlabel(words["workers"])
    right.set_ylabel(words["cpu"])
    right.set_title(words["cost"], fontsize=10)
    return fig


_STORAGE_LABELS = {"en": ("requests / s (log scale)", "Throughput", "p99 latency, ms (log scale)",
                           "p99 latency", "storage engine"),
                   "es": ("peticiones / s (escala log.)", "Rendimiento",
                          "latencia p99, ms (escala log.)", "Latencia p99",
                          "motor de almacenamiento")}


def storage_engines(rows: pd.DataFrame, note: str = "", lang: str = "en") -> plt.Figure:
    """Throughput and p99 per storage engine, on log scales (they differ by decades); labels
    in `lang`, "en" or "es"."""
    rate, rate_title, p99, p99_title, engine = _STORAGE_LABELS["es" if lang == "es" else "en"]
    fig, (left, right) = _figure(2, note)
    labels = list(rows["storage"])
    colours = [style(i)[0] for i in range(len(rows))]
    _bars(left, rows, "throughput", labels, colours, log=True)
    left.set_ylabel(rate)
    left.set_title(rate_title, fontsize=10)
    _bars(right, rows, "p99_ms", labels, colours, log=True, unit=" ms")
    right.set_ylabel(p99)
    right.set_title(p99_title, fontsize=10)
    for ax in (left, right):
        ax.set_xlabel(engine)
    return fig


_LOST_LABELS = {"en": ("without the lock", "with the lock", "round {n}",
                       "anomalies found by the verifier"),
                "es": ("sin el cerrojo", "con el cerrojo", "ronda {n}",
                       "anomalías halladas por el verificador")}


def lost_updates(rows: pd.DataFrame, note: str = "", lang: str = "en") -> plt.Figure:
    """Anomalies the verifier found in each round, with and without the lock (labels in
    `lang`, "en" or "es")."""
    without, with_lock, round_label, ylabel = _LOST_LABELS["es" if lang == "es" else "en"]
    fig, (ax,) = _figure(1, note)
    rounds = max(len(v) for v in rows["violations_per_round"])
    width = 0.8 / len(rows)
    for index, (_, row) in enumerate(rows.iterrows()):
        colour = UNSAFE[0] if row["unsafe"] else SAFE[0]
        name = without if row["unsafe"] else with_lock
        counts = row["violations_per_round"]
        xs = [r + (index - (len(rows) - 1) / 2) * width for r in range(len(counts))]
        ax.bar(xs, counts, width=width * 0.95, color=colour, label=name)
        for x, count in zip(xs, counts, strict=True):
            ax.annotate(str(count), (x, count), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(rounds), [round_label.format(n=r + 1) for r in range(rounds)])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = max(max(v) for v in rows["violations_per_round"])
    ax.set_ylim(0, max(top * 1.2, 1))
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def versus_limit(rows: pd.DataFrame, limit: str, note: str = "",
                 lang: str = "en") -> plt.Figure:
    """Each server's throughput as a fraction of the transport's limit, one bar per server
    (median over rounds, spread as lines); when they span a decade or more, dots on a log
    scale."""
    fig, (ax,) = _figure(1, note)
    positions = list(range(len(rows)))
    colours = [style(i, u)[0] for i, u in enumerate(rows["unsafe"])]
    spread_decades = rows["throughput_vs_echo"].max() / max(rows["throughput_vs_echo"].min(),
                                                            1e-9) >= 10
    hollow = [r == 1 for r in rows["rounds"]] if "rounds" in rows else [False] * len(rows)
    if spread_decades:  # dots: a bar on a log axis makes a 37x gap look like 4x
        _dots(ax, positions, list(rows["throughput_vs_echo"]),
              _spread(rows, "throughput_vs_echo"), colours, hollow, horizontal=True)
    else:
        ax.barh(positions, rows["throughput_vs_echo"],
                color=[("white" if h else c) for h, c in zip(hollow, colours, strict=True)],
                edgecolor=colours, linewidth=1.5, xerr=_spread(rows, "throughput_vs_echo"),
                capsize=4, error_kw={"elinewidth": 1, "ecolor": "0.2"})
    ax.set_yticks(positions, list(rows["label"]), fontsize=8)
    ax.invert_yaxis()
    if spread_decades:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(rows["throughput_vs_echo_lo"].min() / 3, 3)
    else:
        ax.set_xlim(0, 1.25)
    ax.axvline(1.0, color="0.3", linestyle=":", linewidth=1)
    ax.annotate(limit + " = 1", (1.0, 0.0), xycoords=("data", "axes fraction"),
                xytext=(-3, 3), textcoords="offset points", fontsize=8, ha="right",
                va="bottom", color="0.3")
    for y, (_, row) in zip(positions, rows.iterrows(), strict=True):
        top = row["throughput_vs_echo_hi"]
        ax.annotate(f" {number(row['throughput_vs_echo'])}", (top, y), va="center",
                    fontsize=8)
    ax.set_xlabel(_words(lang)["fraction"])
    ax.grid(True, axis="x", which="major", alpha=0.3)
    return fig


_GRADE_WORDS = {
    "en": ("red: the group failed at least one check (see its findings); a missing bar was "
           "not measured", "median latency at 1 client (ms)", "throughput at 16 clients (req/s)"),
    "es": ("rojo: el grupo falló al menos una comprobación (mira sus hallazgos); una barra que "
           "falta no se midió", "latencia mediana con 1 cliente (ms)",
           "rendimiento con 16 clientes (peticiones/s)"),
}


def grade_figure(groups: Sequence[str], p50_ms: Sequence[float | None],
                 throughput: Sequence[float | None], passed: Sequence[bool],
                 lang: str = "en") -> plt.Figure:
    """The groups side by side: median latency at one client and throughput at sixteen, on
    linear axes with each value written at its bar; a group that failed a check is red."""
    note, latency, per_s = _GRADE_WORDS["es" if lang == "es" else "en"]
    fig, (left, right) = _figure(2, note=note)
    rows = list(range(len(groups)))
    colours = [SAFE[0] if ok else UNSAFE[0] for ok in passed]
    for ax, values, title in ((left, p50_ms, latency), (right, throughput, per_s)):
        shown = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        ax.barh(rows, shown, color=colours)
        for row, value in zip(rows, values, strict=True):
            ax.annotate("–" if value is None else number(value), (shown[row], row),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(rows, labels=list(groups))
        ax.invert_yaxis()
        ax.set_xlim(0, max(shown, default=0.0) * 1.25 or 1.0)
        ax.set_title(title, fontsize=10)
    return fig


def transports_figure(rows: pd.DataFrame, note: str = "", names: Sequence[str] = (),
                      titles: Sequence[str] = ("requests per second", "CPU per request (µs)"),
                      legend: Sequence[str] = ("server's processes (solid)",
                                               "load generator")) -> plt.Figure:
    """The `transports` rows at one client count (medians over rounds): requests per second
    on the left, CPU per request (the server's processes and the load generator's) on the
    right, on linear axes with each value written at its bar; servers in colour, echoes grey,
    the class's gateway orange. `names`, `titles` and `legend` are the words shown (default:
    the rows' English names)."""
    fig, (left, right) = _figure(2, note)
    positions = list(range(len(rows)))
    kinds = list(rows["name"])
    names = list(names) or ["the limit: libzmq proxy + echo workers" if n == "reference" else n
                            for n in kinds]
    colours = [STYLES[1][0] if n.startswith("Flask") else
               SAFE[0] if " server, " in n else "0.6" for n in kinds]
    throughput = [float(v) for v in rows["throughput"]]
    left.barh(positions, throughput, color=colours)
    for y, value in zip(positions, throughput, strict=True):
        left.annotate(number(value), (value, y), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize=7)
    left.set_xlim(0, max(throughput, default=0.0) * 1.3 or 1.0)
    left.xaxis.set_major_locator(MaxNLocator(4))  # long names leave this panel narrow
    left.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    left.set_title(titles[0], fontsize=10)
    server = [float(v) if v == v else 0.0 for v in rows["server_cpu_us"]]
    load = [float(v) if v == v else 0.0 for v in rows["load_cpu_us"]]
    right.barh(positions, server, color=colours)
    right.barh(positions, load, left=server, color="white", edgecolor="0.4", hatch="///")
    for y, (own, theirs) in enumerate(zip(server, load, strict=True)):
        right.annotate(f"{number(own)} + {number(theirs)}", (own + theirs, y), xytext=(3, 0),
                       textcoords="offset points", va="center", fontsize=7)
    right.set_xlim(0, max((s + g for s, g in zip(server, load, strict=True)), default=0.0)
                   * 1.45 or 1.0)
    right.set_title(titles[1], fontsize=10)
    fig.legend(handles=[Patch(facecolor=SAFE[0], label=legend[0]),
                        Patch(facecolor="white", edgecolor="0.4", hatch="///",
                              label=legend[1])], fontsize=7, ncol=2,
               loc="outside upper right")  # above the panels: no bar or label under it
    for ax in (left, right):
        ax.set_yticks(positions, names if ax is left else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
    return fig
