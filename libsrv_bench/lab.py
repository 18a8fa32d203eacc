"""The lab report's experiments: for each, the question, a figure, the conclusion the numbers
support, and a small table; the report and notebooks 03 and 04 show the same `Section`s.

`sections(runs)` finds, among any run folders, the experiments they answer: latency against
clients, throughput against workers, the storage engines, the lost-update experiment, and the
transport's limit. An experiment the runs cannot answer (say, no run without the lock) is left
out. Conclusions are computed from the medians over rounds, and say how many rounds they rest
on; a single round is called what it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from libsrv_bench import plots
from libsrv_bench.historyplot import finding_figure
from libsrv_bench.results import read_histogram
from libsrv_bench.rounds import aggregate, find_runs, runs_frame, varied, varied_groups
from libsrv_bench.settings import ACTIVATE


@dataclass
class Section:
    """One experiment of the report."""

    key: str  # also the figure's file name
    title: str
    question: str
    figure: plt.Figure
    conclusion: str
    table: pd.DataFrame  # already rounded and labelled for reading
    commands: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # the verifier's, in words
    # (caption, figure) drawn beside the findings: the verifier's picture of the first one
    pictures: list[tuple[str, plt.Figure]] = field(default_factory=list)

    def markdown(self, figure_path: str | None = None,
                 picture_paths: Sequence[str] = ()) -> str:
        """The section as Markdown (the figure linked at `figure_path` when given, and each
        picture at its path in `picture_paths`)."""
        parts = [f"## {self.title}\n", f"**Question.** {self.question}\n"]
        if figure_path:
            parts.append(f"![{self.title}]({figure_path})\n")
        parts.append(f"**What the runs show.** {self.conclusion}\n")
        parts.append(table_markdown(self.table))
        if self.findings:
            parts.append("What the verifier found (the first few):\n")
            parts += [f"- {finding}" for finding in self.findings]
            parts.append("")
        for (caption, _), path in zip(self.pictures, picture_paths, strict=False):
            parts.append(f"![the verifier's picture]({path})\n\n{caption}\n")
        if self.commands:
            parts.append("Each run repeats with (in the kit's folder):\n\n```\n" +
                         "\n".join([ACTIVATE, *self.commands]) + "\n```\n")
        return "\n".join(parts)


def table_markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    return head + "\n".join("| " + " | ".join(str(v) for v in row) + " |"
                            for row in table.itertuples(index=False)) + "\n"


def _n(value: float, digits: int = 0) -> str:
    if value != value:
        return "–"
    return f"{value:,.{digits}f}"


def _ms(value: float) -> str:
    return "–" if value != value else (f"{value:.2f}" if value < 10 else f"{value:,.1f}")


def _spread(row: pd.Series, metric: str, fmt=_n) -> str:
    """`median (lowest–highest)`, or the median alone when there was one round."""
    if row["rounds"] == 1:
        return fmt(row[metric])
    return f"{fmt(row[metric])} ({fmt(row[metric + '_lo'])}–{fmt(row[metric + '_hi'])})"


def _pct(row: pd.Series, metric: str) -> str:
    text = _spread(row, metric, _ms)
    return text if row[f"{metric}_enough"] else text + " †"


def _rounds(rows: pd.DataFrame) -> str:
    counts = sorted(set(rows["rounds"]))
    if counts == [1]:
        return "one round only, so these are single measurements, not settled results"
    low, high = counts[0], counts[-1]
    number = f"{low}" if low == high else f"{low} to {high}"
    return f"medians of {number} interleaved rounds, with the lowest and highest round"


def _note(rows: pd.DataFrame, percentiles: Sequence[str] = (), *, marks: bool = True) -> str:
    """The line under a figure: what its points are, and on how many CPUs. Hollow marks are
    explained only when the figure has some: a configuration of one round, or (for the
    `percentiles` the figure draws) one measured on too few requests; `marks=False` for a
    figure that draws no marks."""
    one_round = marks and bool((rows["rounds"] == 1).any())
    weak = any(not all(rows[f"{metric}_enough"]) for metric in percentiles)
    why = [*(["one round only"] if one_round else []),
           *(["too few requests for that percentile"] if weak else [])]
    hollow = f" · a hollow mark: {', or '.join(why)}" if why else ""
    return f"{_rounds(rows)}{hollow} · {rows['cpus'].iloc[0]} CPUs"


def _commands(rows: pd.DataFrame) -> list[str]:
    """The commands of these rows' runs, once each, in the rows' order (1, 4, 16, 64 clients,
    not the text's order 1, 16, 4, 64)."""
    return list(dict.fromkeys(c for commands in rows["commands"] for c in commands))


def _figures_table(rows: pd.DataFrame, first: str, first_values: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        first: first_values,
        "rounds": list(rows["rounds"]),
        "req/s": [_spread(r, "throughput") for _, r in rows.iterrows()],
        "p50 ms": [_pct(r, "p50_ms") for _, r in rows.iterrows()],
        "p99 ms": [_pct(r, "p99_ms") for _, r in rows.iterrows()],
        "server CPU µs/req": [_n(v) for v in rows["server_cpu_us"]],
        "cores busy": [_n(100 * v) + "%" if v == v else "–" for v in rows["machine_busy"]],
    })


def clients_section(table: pd.DataFrame, runs: pd.DataFrame) -> list[Section]:
    rows = varied(table, "clients")
    if rows.empty:
        return []
    lo, hi = rows.iloc[0], rows.iloc[-1]
    best = rows["throughput"].max()
    knee = rows[rows["throughput"] >= 0.9 * best].iloc[0]
    text = (f"From {lo['clients']} to {hi['clients']} clients, the median latency went from "
            f"{_ms(lo['p50_ms'])} ms to {_ms(hi['p50_ms'])} ms and p99 from "
            f"{_ms(lo['p99_ms'])} ms to {_ms(hi['p99_ms'])} ms, while throughput went from "
            f"{_n(lo['throughput'])} to {_n(hi['throughput'])} requests/s. ")
    if knee["clients"] < hi["clients"]:
        text += (f"Throughput was within 10% of its highest value from {knee['clients']} "
                 f"clients on: past that point the server is saturated, and every extra client "
                 f"only waits longer in its queue (p50 x{hi['p50_ms'] / knee['p50_ms']:.1f} "
                 f"from {knee['clients']} to {hi['clients']} clients).")
    else:
        text += (f"Throughput was still rising at {hi['clients']} clients: the server was not "
                 "yet saturated.")
    note = _note(rows, marks=False)  # curves, not marks
    first = rows.iloc[0]["config"]
    curves = {_clients(r["clients"]): [read_histogram(f) for f in r["folders"]]
              for _, r in rows.iterrows()}
    server = (f"{first.target or first.endpoint}, in the {first.dialect} protocol"
              if first.endpoint else
              f"{first.storage}, {plots.workers_label(first.workers).splitlines()[0]} workers")
    return [Section(
        "clients", "Latency against clients",
        f"How do latency and throughput change as more clients share one server "
        f"({server}, {first.workload} workload)?",
        plots.latency_vs_clients(rows, _note(rows, ("p50_ms", "p99_ms"))),
        text + f" ({_rounds(rows)}.)",
        _figures_table(rows, "clients", [str(c) for c in rows["clients"]]),
        _commands(rows)),
        Section(
        "percentiles", "The whole latency distribution",
        "Beyond p50 and p99: how slow is the slowest request in a hundred, a thousand, "
        "ten thousand, for each number of clients?",
        plots.percentile_curves(curves, note),
        _tail_sentence(rows) + f" ({_rounds(rows)}; shaded: the lowest to the highest round.)",
        _figures_table(rows, "clients", [str(c) for c in rows["clients"]]).iloc[:, :5],
        [])]


def _clients(count: int) -> str:
    return f"{count} client" if count == 1 else f"{count} clients"


def _tail_sentence(rows: pd.DataFrame) -> str:
    parts = []
    for _, row in rows.iterrows():
        if row["p999_ms_enough"]:
            parts.append(f"{_clients(row['clients'])}: p99.9 {_ms(row['p999_ms'])} ms, "
                         f"{row['p999_ms'] / row['p50_ms']:.1f}x the median")
    if not parts:
        return ("No run had enough requests to measure p99.9 (at least 10,000 per round): run "
                "longer to see the tail.")
    return "The tail is where queues show: " + "; ".join(parts) + "."


def workers_section(table: pd.DataFrame) -> list[Section]:
    rows = varied(table, "workers")
    if rows.empty:
        return []
    by = {int(r["workers"]): r for _, r in rows.iterrows()}
    pooled = [w for w in by if w > 0]
    most = max(pooled) if pooled else None
    sentences = []
    if most is not None and 1 in by and most != 1:
        gain = by[most]["throughput"] / by[1]["throughput"]
        how = (f"gave {gain:.1f}x the throughput of 1" if gain >= 1.05 else
               f"gave less throughput than 1 ({gain:.2f}x)" if gain <= 0.95 else
               f"gave about the throughput of 1 ({gain:.2f}x)")
        sentences.append(f"{most} workers {how} ({_n(by[most]['throughput'])} against "
                         f"{_n(by[1]['throughput'])} requests/s)")
    top = by[most] if most is not None else rows.iloc[-1]
    busy = top["machine_busy"]
    cpus = top["cpus"]
    if busy == busy:
        sentences.append(f"with {top['workers']} workers the machine's {cpus} cores were "
                         f"{busy:.0%} busy")
    text = "; ".join(sentences).capitalize() + ". " if sentences else ""
    if busy == busy and busy >= 0.85:
        text += ("The cores were nearly full, so more worker processes could not add "
                 "throughput here: they take turns on the same cores. On a machine with more "
                 "cores, throughput grows with workers until the broker's own core is full. ")
    if 0 in by and pooled:
        best_pool = max(pooled, key=lambda w: by[w]["throughput"])
        ratio = by[0]["throughput"] / by[best_pool]["throughput"]
        text += (f"The single REP server (0 workers: no broker, one process) answered "
                 f"{_n(by[0]['throughput'])} requests/s, {ratio:.1f}x the best broker "
                 f"({best_pool} workers): the broker's extra hop costs "
                 f"{_n(by[best_pool]['server_cpu_us'] - by[0]['server_cpu_us'])} µs of CPU per "
                 f"request, which only pays off with cores to spare.")
    return [Section(
        "workers", "Throughput against workers",
        "Does a broker in front of more worker processes answer more requests per second?",
        plots.throughput_vs_workers(rows, _note(rows)),
        text.strip() + f" ({_rounds(rows)}.)",
        _figures_table(rows, "workers", [plots.workers_label(w).replace("\n", " ")
                                         for w in rows["workers"]]),
        _commands(rows))]


def _workload_words(workload: str) -> str:
    if workload == "mix:query_title=100":
        return "queries by title"
    return f"the {workload} workload"


def real_work_section(table: pd.DataFrame) -> list[Section]:
    """Workers again, where each request does real work (queries by title scan the catalog in
    the worker): the pattern a class comes for, beside the read-mostly section."""
    groups = [g for g in varied_groups(table, "workers")[1:]
              if 1 in set(g["workers"]) and len(set(g["workers"]) - {0}) >= 2]
    if not groups:
        return []
    rows = groups[0]
    by = {int(r["workers"]): r for _, r in rows.iterrows()}
    most = max(by)
    first = rows.iloc[0]
    gain = by[most]["throughput"] / by[1]["throughput"]
    cpus = by[most]["cpus"]
    text = (f"With {_workload_words(str(first['workload']))} over {int(first['books']):,} books, "
            f"each request costs {_n(by[1]['server_cpu_us'] / 1000, 1)} ms of a worker's CPU "
            f"(one worker: {_n(by[1]['throughput'])} requests/s). {most} workers gave "
            f"{gain:.1f}x the throughput of 1 ({_n(by[most]['throughput'])} requests/s) on "
            f"{cpus} cores: ")
    text += ("the work happens in the worker processes, side by side on the cores, and the "
             "broker's hop is small beside it. In the read-mostly section the work per request "
             "is tiny, so the hop and the processes' turns on the cores decide instead."
             if gain >= 1.3 else
             "less than the cores would allow; the machine was busy with other work, or the "
             "clients were too few to keep every worker busy.")
    return [Section(
        "workers-real-work", "Workers when requests do real work",
        "When each request costs milliseconds of work, do more worker processes answer more?",
        plots.throughput_vs_workers(rows, _note(rows)),
        text + f" ({_rounds(rows)}.)",
        _figures_table(rows, "workers", [plots.workers_label(w).replace("\n", " ")
                                         for w in rows["workers"]]),
        _commands(rows))]


def storage_section(table: pd.DataFrame) -> list[Section]:
    rows = varied(table, "storage")
    if rows.empty:
        return []
    fast = rows.loc[rows["throughput"].idxmax()]
    slow = rows.loc[rows["throughput"].idxmin()]
    text = (f"{fast['storage']} answered {fast['throughput'] / slow['throughput']:,.0f}x the "
            f"requests per second of {slow['storage']} ({_n(fast['throughput'])} against "
            f"{_n(slow['throughput'], 1 if slow['throughput'] < 10 else 0)}), and its p99 was "
            f"{_ms(fast['p99_ms'])} ms against {_ms(slow['p99_ms'])} ms.")
    if {"json", "journal"} <= set(rows["storage"]):
        text += (f" The json engine rewrites the whole {fast['books']:,}-book file for every "
                 "loan or return, under the lock, so writers queue behind each other; the "
                 "journal appends one line.")
    if not all(rows["p99_ms_enough"]):
        text += " († too few requests in a round to measure p99: the slow engine answered " \
                "few; run longer.)"
    return [Section(
        "storage", "Storage engines",
        "What does it cost to keep the catalog on disk: rewriting the JSON file on every "
        "change, or appending to a journal?",
        plots.storage_engines(rows, _note(rows)),
        text + f" ({_rounds(rows)}.)",
        _figures_table(rows, "storage", list(rows["storage"])),
        _commands(rows))]


def _details(rows: pd.DataFrame) -> list[dict]:
    details = []
    for folders in rows["folders"]:
        for folder in folders:
            details += json.loads((Path(folder) / "violations.json").read_text()) \
                .get("details", [])
    return details


def _kind(kind: str, lang: str) -> str:
    """A finding's kind as the class names it (`lessons.FINDING_NAMES`) in Spanish; as the
    verifier names it in English."""
    if lang != "es":
        return kind
    from libsrv_bench.lessons import FINDING_NAMES

    return FINDING_NAMES.get(kind, {}).get("es", kind)


def _first_picture(rows: pd.DataFrame,
                   caption: str = "The first finding, drawn: {kind}: {detail}",
                   lang: str = "en") -> list[tuple[str, plt.Figure]]:
    """The verifier's picture of the first finding of these rows' runs that has operations
    to draw (none when they found nothing)."""
    for detail in _details(rows):
        if detail.get("ops") and detail["kind"] != "final-state":
            return [(caption.format(kind=_kind(detail["kind"], lang), detail=detail["detail"]),
                     finding_figure(detail, lang=lang))]
    return []


def _findings(rows: pd.DataFrame, limit: int = 4, *, lang: str = "en") -> list[str]:
    """The verifier's first findings in these rows' runs, one of each kind before a second of
    any, so that a reader sees every way the runs went wrong."""
    details = _details(rows)
    seen: dict[str, int] = {}
    ranked = []
    for detail in details:
        seen[detail["kind"]] = seen.get(detail["kind"], 0) + 1
        ranked.append((seen[detail["kind"]], len(ranked), detail))
    return [f"{_kind(d['kind'], lang)}: {d['detail']}" for _, _, d in sorted(ranked)[:limit]]


_LOST_WORDS = {
    "en": {"title": "The lost-update experiment",
           "question": "{clients} clients loan and return {books} as fast as they can, through "
                       "{workers} worker processes. Does the file lock keep every acknowledged "
                       "loan and return exact?",
           "without": "Without the lock, the verifier found anomalies in {hit} of {rounds} "
                      "round(s) ({counts}): clients were told a loan or return succeeded that no "
                      "order of the acknowledged operations explains, so an update was lost or "
                      "doubled. ",
           "none": "With the lock, it found none in {rounds} round(s) ({requests} requests "
                   "checked against the final catalog file).",
           "some": "With the lock it found {found}: that is a bug in the server, not a lesson; "
                   "please report it with the run folder.",
           "missed": " This time no round without the lock lost an update: races need clients "
                     "that collide; raise the clients or the duration.",
           "columns": ("lock", "rounds", "requests", "anomalies per round", "req/s"),
           "lock": ("off", "on"),
           "note": "anomalies found in each round · {cpus} CPUs",
           "picture": "The first finding, drawn: {kind}: {detail}",
           "one_book": "the same book", "books": "the same {count} books"},
    "es": {"title": "El experimento de la actualización perdida",
           "question": "{clients} clientes prestan y devuelven {books} tan deprisa como pueden, "
                       "a través de {workers} procesos trabajadores. ¿Mantiene el cerrojo del "
                       "archivo exacto cada préstamo y cada devolución confirmados?",
           "without": "Sin el cerrojo, el verificador encontró anomalías en {hit} de {rounds} "
                      "ronda(s) ({counts}): a algunos clientes se les dijo que un préstamo o una "
                      "devolución salió bien sin que ningún orden de las operaciones confirmadas "
                      "lo explique, así que una actualización se perdió o se duplicó. ",
           "none": "Con el cerrojo no encontró ninguna en {rounds} ronda(s) ({requests} "
                   "peticiones comprobadas contra el archivo final del catálogo).",
           "some": "Con el cerrojo encontró {found}: es un fallo del servidor, no una lección; "
                   "avisa con la carpeta de la ejecución.",
           "missed": " Esta vez ninguna ronda sin cerrojo perdió una actualización: las "
                     "carreras necesitan clientes que choquen; sube los clientes o la duración.",
           "columns": ("cerrojo", "rondas", "peticiones", "anomalías por ronda",
                       "peticiones/s"),
           "lock": ("sin", "con"),
           "note": "anomalías encontradas en cada ronda · {cpus} CPU",
           "picture": "El primer hallazgo, dibujado: {kind}: {detail}",
           "one_book": "el mismo libro", "books": "los mismos {count} libros"},
}


def _words(table: dict[str, dict[str, Any]], lang: str) -> dict[str, Any]:
    return table["es" if lang == "es" else "en"]


def lost_update_section(table: pd.DataFrame, lang: str = "en") -> list[Section]:
    """The lost-update experiment in `lang` ("en" or "es"; the verifier's findings keep their
    English sentences, named by kind in `lang`)."""
    rows = varied(table, "unsafe_no_lock")
    if rows.empty:
        return []
    words = _words(_LOST_WORDS, lang)
    rows = rows.iloc[::-1]  # without the lock first
    unsafe = rows[rows["unsafe"]].iloc[0]
    safe = rows[~rows["unsafe"]].iloc[0]
    hit = sum(1 for v in unsafe["violations_per_round"] if v)
    counts = ", ".join(str(v) for v in unsafe["violations_per_round"])
    text = words["without"].format(hit=hit, rounds=unsafe["rounds"], counts=counts)
    if safe["violations"] == 0:
        text += words["none"].format(rounds=safe["rounds"], requests=f"{safe['requests']:,}")
    else:
        text += words["some"].format(found=safe["violations"])
    if not hit:
        text += words["missed"]
    off, on = words["lock"]
    shown = pd.DataFrame(dict(zip(words["columns"], [
        [off if r["unsafe"] else on for _, r in rows.iterrows()],
        list(rows["rounds"]),
        [f"{r:,}" for r in rows["requests"]],
        [", ".join(map(str, v)) for v in rows["violations_per_round"]],
        [_spread(r, "throughput") for _, r in rows.iterrows()]], strict=True)))
    hot = unsafe["config"].hot or 1
    books = words["one_book"] if hot == 1 else words["books"].format(count=hot)
    return [Section(
        "lost-update", words["title"],
        words["question"].format(clients=unsafe["clients"], books=books,
                                 workers=unsafe["workers"]),
        plots.lost_updates(rows, words["note"].format(cpus=rows["cpus"].iloc[0]), lang),
        text, shown, _commands(rows),
        _findings(rows[rows["unsafe"]], lang=lang) + _findings(rows[~rows["unsafe"]], lang=lang),
        _first_picture(rows[rows["unsafe"]], words["picture"], lang))]


# a server at this share of the limit or more is hardly bounded by it: the limit's own hop
# (libzmq's proxy) is then what sets it apart, and the report says so
BARELY_ABOVE = 0.85


def limit_section(table: pd.DataFrame) -> list[Section]:
    servers = table[(table["echo"] == "") & table["throughput_vs_echo"].notna()]
    if servers.empty:
        return []
    limits = table[table["echo"] == "proxy"]
    main = servers.iloc[0]
    servers = servers[servers["workload"] == main["workload"]]  # the echo ignores the workload
    limit = limits[(limits["workers"] == main["workers"]) &
                   (limits["clients"] == main["clients"])].iloc[0]
    ratio = _spread(main, "throughput_vs_echo", plots.number)

    def p99_mark(row: pd.Series) -> str:  # a ratio of two p99s is as weak as the weaker
        return "" if row["p99_ms_enough"] and limit["p99_ms_enough"] else " †"

    text = (f"The server ({main['label']}) answered {ratio} "
            f"of the requests per second of the {limit['label']} with the same clients, and "
            f"its p99 was {main['p99_vs_echo']:.2f}x the echo's{p99_mark(main)}. It spent "
            f"{_n(main['server_cpu_us'])} µs of server CPU per request, the echo "
            f"{_n(limit['server_cpu_us'])} µs: the difference is what parsing, looking up, "
            "locking and recording a request cost.")
    others = servers.iloc[1:]
    if not others.empty:
        text += " Others: " + "; ".join(
            f"{r['label']} {plots.number(r['throughput_vs_echo'])}"
            for _, r in others.iterrows()) + "."
    close = servers[servers["throughput_vs_echo"] >= BARELY_ABOVE]
    for _, row in close.iterrows():
        hop = ("a hop that server does not make" if row["workers"] == 0 else
               "a hop of the same kind as the broker's")
        text += (f" The limit is barely above the server ({row['label']}, "
                 f"{plots.number(row['throughput_vs_echo'])}x of it): the limit passes every "
                 f"request through libzmq's proxy to a worker, {hop}, so at this load it "
                 "hardly bounds that server; `python -m libsrv_bench compare` puts a bare REP "
                 "echo beside it, the floor of a server without a hop.")
    shown = pd.DataFrame({
        "configuration": list(servers["label"]),
        "rounds": list(servers["rounds"]),
        "throughput / limit": [_spread(r, "throughput_vs_echo", plots.number)
                               for _, r in servers.iterrows()],
        "p99 / limit": [plots.number(r["p99_vs_echo"]) + p99_mark(r)
                        for _, r in servers.iterrows()],
        "server CPU µs/req": [_n(v) for v in servers["server_cpu_us"]],
    })
    return [Section(
        "limit", "Against the transport's limit",
        "How close does the server come to what ZeroMQ itself can do on this machine: libzmq's "
        "C proxy in front of the same number of workers that only echo, loaded by the same "
        "clients in the same round?",
        plots.versus_limit(servers, f"the {limit['label']}", _note(servers)),
        text + f" ({_rounds(servers)}.)", shown,
        _commands(pd.concat([servers.iloc[:1], limits.iloc[:1]])))]


_TRANSPORT_WORDS = {
    "en": {"title": "ZeroMQ, gRPC and HTTP",
           "question": "The class report chose ZeroMQ over gRPC in prose and put a Flask page in "
                       "front of its server: on this machine, with the same catalog, rules, load "
                       "and verifier behind each, what does each transport cost, and what does "
                       "the class's Flask hop add?",
           "note": "at {most} clients; medians over {rounds} interleaved round(s); grey: each "
                   "stack's echo (a fixed reply)",
           "rounds": " ({rounds} round(s).)",
           "columns": ("clients", "configuration", "req/s", "x limit", "p99 ms",
                       "server CPU us/req", "load CPU us/req", "verdict"),
           "echo": "echo",
           "titles": ("requests per second", "CPU per request (µs)"),
           "legend": ("server's processes (solid)", "load generator")},
    "es": {"title": "ZeroMQ, gRPC y HTTP",
           "question": "El informe de la clase eligió ZeroMQ frente a gRPC con argumentos y puso "
                       "una página Flask delante de su servidor: en esta máquina, con el mismo "
                       "catálogo, las mismas reglas, la misma carga y el mismo verificador detrás "
                       "de cada uno, ¿cuánto cuesta cada transporte, y cuánto añade el salto "
                       "Flask de la clase?",
           "note": "con {most} clientes; medianas de {rounds} ronda(s) alternas; gris: el eco "
                   "de cada pila (una respuesta fija)",
           "rounds": " ({rounds} ronda(s).)",
           "columns": ("clientes", "configuración", "peticiones/s", "× el límite", "p99 (ms)",
                       "CPU del servidor (µs/petición)", "CPU del generador (µs/petición)",
                       "veredicto"),
           "echo": "eco",
           "titles": ("peticiones por segundo", "CPU por petición (µs)"),
           "legend": ("procesos del servidor (sólido)", "generador de carga")},
}


def transports_section(paths: Sequence[Path | str], lang: str = "en") -> list[Section]:
    """The class's ZeroMQ-versus-gRPC question, from the newest ``transports.csv`` that
    `python -m libsrv_bench transports` wrote under `paths`, in `lang` ("en" or "es"): the
    rows at the largest client count drawn, every count in the table, the sentences computed
    from it."""
    from libsrv_bench.transports import (
        DAGGER_NOTE,
        client_sentence,
        measured_p99,
        spoken_name,
        summary_lines,
        verdicts,
    )

    found = sorted((csv for path in map(Path, paths)
                    for csv in ([path] if path.name == "transports.csv" else
                                path.rglob("transports.csv") if path.is_dir() else [])),
                   key=lambda csv: csv.stat().st_mtime)
    if not found:
        return []
    words = _TRANSPORT_WORDS["es" if lang == "es" else "en"]
    table = pd.read_csv(found[-1])
    rows = table[~table["name"].isin(["reference, lean generator"])]
    most = int(rows["clients"].max())
    said = verdicts(rows, lang)
    workers = _workers_of(rows)
    columns = words["columns"]
    shown = pd.DataFrame({
        columns[0]: list(rows["clients"]),
        columns[1]: [spoken_name(n, "es") if lang == "es" else
                     "libzmq proxy + echo workers (the limit)" if n == "reference" else n
                     for n in rows["name"]],
        columns[2]: [plots.number(v) for v in rows["throughput"]],
        columns[3]: ["1" if n == "reference" else plots.number(v)
                     for n, v in zip(rows["name"], rows["throughput_ratio"], strict=True)],
        columns[4]: [_ms(r["p99_ms"]) + ("" if measured_p99(r) else " †")
                     for _, r in rows.iterrows()],
        columns[5]: [_n(v) for v in rows["server_cpu_us"]],
        columns[6]: [_n(v) for v in rows["load_cpu_us"]],
        columns[7]: [said.get(n, words["echo"]) for n in rows["name"]],
    })
    top = rows[rows["clients"] == most]
    rounds = int(rows["rounds"].max()) if "rounds" in rows else 1
    names = [spoken_name(n, "es") for n in top["name"]] if lang == "es" else []
    figure = plots.transports_figure(top, words["note"].format(most=most, rounds=rounds),
                                     names, words["titles"], words["legend"])
    return [Section(
        "transports", words["title"], words["question"], figure,
        " ".join([*summary_lines(rows, workers, lang), client_sentence(lang)]).strip()
        + words["rounds"].format(rounds=rounds)
        + ("" if all(measured_p99(r) for _, r in rows.iterrows())
           else f" ({DAGGER_NOTE['es' if lang == 'es' else 'en']}.)"), shown,
        [f"python -m libsrv_bench transports --rounds {rounds} --clients-list "
         f"{','.join(str(c) for c in sorted(set(rows['clients'])))}"])]


def _workers_of(rows: pd.DataFrame) -> int:
    """The server processes of a transports table (from its row names)."""
    for name in rows["name"]:
        if name.startswith("gRPC server, "):
            count = name.split(", ", 1)[1].split(" ", 1)[0]
            return int(count) if count.isdigit() else 0
    return 0


def _zeromq_only(table: pd.DataFrame) -> pd.DataFrame:
    """The runs the other sections read: the kit's ZeroMQ server and echoes (the transports
    comparison's gRPC, HTTP, gateway and raw rows have their own section)."""
    return table[table["config"].map(lambda config: config.transport == "zmq"
                                     and not config.gateway and config.echo != "raw")]


def sections(paths: Sequence[Path | str], lang: str = "en") -> list[Section]:
    """The experiments that the run folders under `paths` answer, in the report's order. In
    Spanish (`lang` "es") so far: the lost-update experiment and the transports; the others
    are in English."""
    runs = runs_frame(find_runs(paths))
    if runs.empty:
        raise ValueError("no run folders (with summary.json) among the given paths")
    # a run with faults is not a steady measurement: it has its own section, and only that
    table = _zeromq_only(aggregate(runs))
    table = table[table["config"].map(lambda config: not config.faults)]
    from libsrv_bench.faultcost import fault_sections  # it builds on this module's Section

    return (limit_section(table) + clients_section(table, runs) + workers_section(table) +
            real_work_section(table) +
            storage_section(table) + lost_update_section(table, lang) + fault_sections(paths) +
            transports_section(paths, lang))


_SHOW_WORDS = {"en": ("Question.", "What the runs show.", "What the verifier found (the "
                                                                "first few):"),
               "es": ("Pregunta.", "Lo que muestran las ejecuciones.", "Lo que encontró el "
                                                                     "verificador (los primeros):")}


def show(found: Sequence[Section], lang: str = "en") -> None:
    """Display sections in a notebook: the same words, figure and table as the report (the
    labels around them in `lang`; a section's own words are in the language it was made in)."""
    from IPython.display import Markdown, display

    question, shown, verifier = _SHOW_WORDS["es" if lang == "es" else "en"]
    for section in found:
        display(Markdown(f"### {section.title}\n\n**{question}** {section.question}"))
        display(section.figure)
        plt.close(section.figure)
        display(Markdown(f"**{shown}** {section.conclusion}"))
        display(Markdown(table_markdown(section.table)))
        if section.findings:
            display(Markdown(f"{verifier}\n\n" + "\n".join(f"- {f}" for f in section.findings)))
        for caption, picture in section.pictures:
            display(picture)
            plt.close(picture)
            display(Markdown(caption))
