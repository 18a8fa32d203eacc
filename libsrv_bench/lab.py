"""The lab report's experiments: for each, the question, a figure, the conclusion the numbers
support, and a small table; the report and notebooks 03 and 04 show the same `Section`s.

`sections(runs)` finds, among any run folders, the experiments they answer: latency against
clients, throughput against workers, the storage engines, the lost-update experiment, and the
transport's limit. An experiment the runs cannot answer (say, no run without the lock) is left
out. Conclusions are computed from the medians over rounds, and say how many rounds they rest
on; a single round is called what it is.
"""

from __future__ import annotations

import html
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
from libsrv_bench.rounds import describe as describe_config
from libsrv_bench.sentences import said
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
                 picture_paths: Sequence[str] = (), lang: str = "en") -> str:
        """The section as Markdown (the figure linked at `figure_path` when given, and each
        picture at its path in `picture_paths`), its labels in `lang`."""
        words = _MARKDOWN_WORDS["es" if lang == "es" else "en"]
        parts = [f"## {self.title}\n", f"**{words['question']}** {self.question}\n"]
        if figure_path:
            parts.append(f"![{self.title}]({figure_path})\n")
        parts.append(f"**{words['shown']}** {self.conclusion}\n")
        parts.append(table_markdown(self.table))
        if self.findings:
            parts.append(f"{words['found']}\n")
            parts += [f"- {markdown_text(finding)}" for finding in self.findings]
            parts.append("")
        for (caption, _), path in zip(self.pictures, picture_paths, strict=False):
            parts.append(f"![{words['picture']}]({path})\n\n{caption}\n")
        if self.commands:
            parts.append(f"{words['repeat']}\n\n```\n" +
                         "\n".join([ACTIVATE, *self.commands]) + "\n```\n")
        return "\n".join(parts)


_MARKDOWN_WORDS = {
    "en": {"question": "Question.", "shown": "What the runs show.",
           "found": "What the verifier found (the first few):",
           "picture": "the verifier's picture",
           "repeat": "Each run repeats with (in the kit's folder):"},
    "es": {"question": "Pregunta.", "shown": "Lo que muestran las ejecuciones.",
           "found": "Lo que encontró el verificador (los primeros):",
           "picture": "el dibujo del verificador",
           "repeat": "Cada ejecución se repite con (en la carpeta del kit):"},
}


def markdown_text(text: object) -> str:
    """`text` shown as written in Markdown that may become HTML (a notebook, a report): it
    can hold what a server answered or a student's program printed, so HTML's special
    characters are escaped, and so is a table's cell separator."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def table_markdown(table: pd.DataFrame) -> str:
    head = ("| " + " | ".join(markdown_text(c) for c in table.columns) + " |\n|"
            + "---|" * len(table.columns) + "\n")
    return head + "\n".join("| " + " | ".join(markdown_text(v) for v in row) + " |"
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


_COMMON = {
    "en": {"single_round": "one round only, so these are single measurements, not settled "
                           "results",
           "medians": "medians of {number} interleaved rounds, with the lowest and highest "
                      "round",
           "to": "{low} to {high}", "one_round": "one round only",
           "few": "too few requests for that percentile", "hollow": " · a hollow mark: {why}",
           "or": ", or ", "cpus": "{cpus} CPUs",
           "columns": ("rounds", "req/s", "p50 ms", "p99 ms", "server CPU µs/req",
                       "cores busy")},
    "es": {"single_round": "una sola ronda: son medidas sueltas, no resultados asentados",
           "medians": "medianas de {number} rondas alternas, con la ronda más baja y la más "
                      "alta",
           "to": "{low} a {high}", "one_round": "una sola ronda",
           "few": "pocas peticiones para ese percentil", "hollow": " · marca hueca: {why}",
           "or": ", o ", "cpus": "{cpus} CPU",
           "columns": ("rondas", "peticiones/s", "p50 (ms)", "p99 (ms)",
                       "CPU del servidor (µs/petición)", "núcleos ocupados")},
}


def _rounds(rows: pd.DataFrame, lang: str = "en") -> str:
    words = _words(_COMMON, lang)
    counts = sorted(set(rows["rounds"]))
    if counts == [1]:
        return words["single_round"]
    low, high = counts[0], counts[-1]
    number = f"{low}" if low == high else words["to"].format(low=low, high=high)
    return words["medians"].format(number=number)


def _note(rows: pd.DataFrame, percentiles: Sequence[str] = (), *, marks: bool = True,
          lang: str = "en") -> str:
    """The line under a figure: what its points are, and on how many CPUs. Hollow marks are
    explained only when the figure has some: a configuration of one round, or (for the
    `percentiles` the figure draws) one measured on too few requests; `marks=False` for a
    figure that draws no marks."""
    words = _words(_COMMON, lang)
    one_round = marks and bool((rows["rounds"] == 1).any())
    weak = any(not all(rows[f"{metric}_enough"]) for metric in percentiles)
    why = [*([words["one_round"]] if one_round else []), *([words["few"]] if weak else [])]
    hollow = words["hollow"].format(why=words["or"].join(why)) if why else ""
    return f"{_rounds(rows, lang)}{hollow} · " + words["cpus"].format(cpus=rows["cpus"].iloc[0])


def _commands(rows: pd.DataFrame) -> list[str]:
    """The commands of these rows' runs, once each, in the rows' order (1, 4, 16, 64 clients,
    not the text's order 1, 16, 4, 64)."""
    return list(dict.fromkeys(c for commands in rows["commands"] for c in commands))


def _figures_table(rows: pd.DataFrame, first: str, first_values: list[str],
                   lang: str = "en") -> pd.DataFrame:
    rounds, per_s, p50, p99, cpu, busy = _words(_COMMON, lang)["columns"]
    return pd.DataFrame({
        first: first_values,
        rounds: list(rows["rounds"]),
        per_s: [_spread(r, "throughput") for _, r in rows.iterrows()],
        p50: [_pct(r, "p50_ms") for _, r in rows.iterrows()],
        p99: [_pct(r, "p99_ms") for _, r in rows.iterrows()],
        cpu: [_n(v) for v in rows["server_cpu_us"]],
        busy: [_n(100 * v) + "%" if v == v else "–" for v in rows["machine_busy"]],
    })


_CLIENT_WORDS = {
    "en": {"from": "From {lo} to {hi} clients, the median latency went from {p50_lo} ms to "
                   "{p50_hi} ms and p99 from {p99_lo} ms to {p99_hi} ms, while throughput went "
                   "from {t_lo} to {t_hi} requests/s. ",
           "knee": "Throughput was within 10% of its highest value from {knee} clients on: past "
                   "that point the server is saturated, and every extra client only waits "
                   "longer in its queue (p50 x{factor:.1f} from {knee} to {hi} clients).",
           "rising": "Throughput was still rising at {hi} clients: the server was not yet "
                     "saturated.",
           "theirs": "{name}, in the {dialect} protocol",
           "ours": "{storage}, {workers} workers",
           "title": "Latency against clients",
           "question": "How do latency and throughput change as more clients share one server "
                       "({server}, {workload} workload)?",
           "tail_title": "The whole latency distribution",
           "tail_question": "Beyond p50 and p99: how slow is the slowest request in a hundred, "
                            "a thousand, ten thousand, for each number of clients?",
           "shaded": "shaded: the lowest to the highest round",
           "client": "{n} client", "clients": "{n} clients", "column": "clients",
           "tail_part": "{who}: p99.9 {p999} ms, {factor:.1f}x the median",
           "no_tail": "No run had enough requests to measure p99.9 (at least 10,000 per "
                      "round): run longer to see the tail.",
           "tail": "The tail is where queues show: {parts}."},
    "es": {"from": "De {lo} a {hi} clientes, la latencia mediana pasó de {p50_lo} ms a "
                   "{p50_hi} ms y la p99 de {p99_lo} ms a {p99_hi} ms, mientras el rendimiento "
                   "pasó de {t_lo} a {t_hi} peticiones/s. ",
           "knee": "El rendimiento quedó a menos de un 10% de su máximo desde {knee} clientes: "
                   "a partir de ahí el servidor está saturado, y cada cliente de más solo espera "
                   "más en su cola (p50 x{factor:.1f} de {knee} a {hi} clientes).",
           "rising": "El rendimiento aún subía con {hi} clientes: el servidor no estaba "
                     "saturado.",
           "theirs": "{name}, con el protocolo {dialect}",
           "ours": "{storage}, {workers} trabajadores",
           "title": "Latencia según los clientes",
           "question": "¿Cómo cambian la latencia y el rendimiento cuando más clientes comparten "
                       "un servidor ({server}, carga {workload})?",
           "tail_title": "Toda la distribución de la latencia",
           "tail_question": "Más allá de p50 y p99: ¿cuánto tarda la petición más lenta de cada "
                            "cien, mil, diez mil, para cada número de clientes?",
           "shaded": "sombreado: de la ronda más baja a la más alta",
           "client": "{n} cliente", "clients": "{n} clientes", "column": "clientes",
           "tail_part": "{who}: p99.9 {p999} ms, {factor:.1f}x la mediana",
           "no_tail": "Ninguna ejecución tuvo peticiones bastantes para medir la p99.9 (al "
                      "menos 10.000 por ronda): ejecuta más tiempo para ver la cola.",
           "tail": "La cola es donde se ven las esperas: {parts}."},
}


def clients_section(table: pd.DataFrame, runs: pd.DataFrame,
                    lang: str = "en") -> list[Section]:
    rows = varied(table, "clients")
    if rows.empty:
        return []
    words = _words(_CLIENT_WORDS, lang)
    lo, hi = rows.iloc[0], rows.iloc[-1]
    best = rows["throughput"].max()
    knee = rows[rows["throughput"] >= 0.9 * best].iloc[0]
    text = words["from"].format(lo=lo["clients"], hi=hi["clients"], p50_lo=_ms(lo["p50_ms"]),
                                p50_hi=_ms(hi["p50_ms"]), p99_lo=_ms(lo["p99_ms"]),
                                p99_hi=_ms(hi["p99_ms"]), t_lo=_n(lo["throughput"]),
                                t_hi=_n(hi["throughput"]))
    if knee["clients"] < hi["clients"]:
        text += words["knee"].format(knee=knee["clients"], hi=hi["clients"],
                                     factor=hi["p50_ms"] / knee["p50_ms"])
    else:
        text += words["rising"].format(hi=hi["clients"])
    note = _note(rows, marks=False, lang=lang)  # curves, not marks
    first = rows.iloc[0]["config"]
    curves = {_clients(r["clients"], lang): [read_histogram(f) for f in r["folders"]]
              for _, r in rows.iterrows()}
    server = (words["theirs"].format(name=first.target or first.endpoint,
                                     dialect=first.dialect) if first.endpoint else
              words["ours"].format(storage=first.storage, workers=plots.workers_label(
                  first.workers, lang).splitlines()[0]))
    counts = [str(c) for c in rows["clients"]]
    return [Section(
        "clients", words["title"],
        words["question"].format(server=server, workload=first.workload),
        plots.latency_vs_clients(rows, _note(rows, ("p50_ms", "p99_ms"), lang=lang), lang),
        text + f" ({_rounds(rows, lang)}.)",
        _figures_table(rows, words["column"], counts, lang),
        _commands(rows)),
        Section(
        "percentiles", words["tail_title"], words["tail_question"],
        plots.percentile_curves(curves, note, lang),
        _tail_sentence(rows, lang) + f" ({_rounds(rows, lang)}; {words['shaded']}.)",
        _figures_table(rows, words["column"], counts, lang).iloc[:, :5],
        [])]


def _clients(count: int, lang: str = "en") -> str:
    words = _words(_CLIENT_WORDS, lang)
    return (words["client"] if count == 1 else words["clients"]).format(n=count)


def _tail_sentence(rows: pd.DataFrame, lang: str = "en") -> str:
    words = _words(_CLIENT_WORDS, lang)
    parts = []
    for _, row in rows.iterrows():
        if row["p999_ms_enough"]:
            parts.append(words["tail_part"].format(who=_clients(row["clients"], lang),
                                                   p999=_ms(row["p999_ms"]),
                                                   factor=row["p999_ms"] / row["p50_ms"]))
    if not parts:
        return words["no_tail"]
    return words["tail"].format(parts="; ".join(parts))


_WORKER_WORDS = {
    "en": {"gain": "gave {gain:.1f}x the throughput of 1", "less": "gave less throughput than "
           "1 ({gain:.2f}x)", "same": "gave about the throughput of 1 ({gain:.2f}x)",
           "compare": "{most} workers {how} ({t_most} against {t_one} requests/s)",
           "busy": "with {workers} workers the machine's {cpus} cores were {busy:.0%} busy",
           "full": "The cores were nearly full, so more worker processes could not add "
                   "throughput here: they take turns on the same cores. On a machine with more "
                   "cores, throughput grows with workers until the broker's own core is full. ",
           "single": "The single REP server (0 workers: no broker, one process) answered "
                     "{t_single} requests/s, {ratio:.1f}x the best broker ({best} workers): the "
                     "broker's extra hop costs {cpu} µs of CPU per request, which only pays off "
                     "with cores to spare.",
           "title": "Throughput against workers",
           "question": "Does a broker in front of more worker processes answer more requests "
                       "per second?",
           "column": "workers"},
    "es": {"gain": "dieron {gain:.1f}x el rendimiento de 1", "less": "dieron menos rendimiento "
           "que 1 ({gain:.2f}x)", "same": "dieron más o menos el rendimiento de 1 "
           "({gain:.2f}x)",
           "compare": "{most} trabajadores {how} ({t_most} frente a {t_one} peticiones/s)",
           "busy": "con {workers} trabajadores los {cpus} núcleos de la máquina estuvieron "
                   "ocupados un {busy:.0%}",
           "full": "Los núcleos estaban casi llenos, así que más procesos trabajadores no "
                   "podían añadir rendimiento aquí: se turnan en los mismos núcleos. En una "
                   "máquina con más núcleos, el rendimiento crece con los trabajadores hasta "
                   "llenar el núcleo del propio broker. ",
           "single": "El servidor de un solo REP (0 trabajadores: sin broker, un proceso) "
                     "respondió {t_single} peticiones/s, {ratio:.1f}x el mejor broker ({best} "
                     "trabajadores): el salto de más del broker cuesta {cpu} µs de CPU por "
                     "petición, y solo compensa con núcleos de sobra.",
           "title": "Rendimiento según los trabajadores",
           "question": "¿Responde más peticiones por segundo un broker delante de más procesos "
                       "trabajadores?",
           "column": "trabajadores"},
}


def workers_section(table: pd.DataFrame, lang: str = "en") -> list[Section]:
    rows = varied(table, "workers")
    if rows.empty:
        return []
    words = _words(_WORKER_WORDS, lang)
    by = {int(r["workers"]): r for _, r in rows.iterrows()}
    pooled = [w for w in by if w > 0]
    most = max(pooled) if pooled else None
    sentences = []
    if most is not None and 1 in by and most != 1:
        gain = by[most]["throughput"] / by[1]["throughput"]
        how = words["gain" if gain >= 1.05 else "less" if gain <= 0.95 else "same"].format(
            gain=gain)
        sentences.append(words["compare"].format(most=most, how=how,
                                                 t_most=_n(by[most]["throughput"]),
                                                 t_one=_n(by[1]["throughput"])))
    top = by[most] if most is not None else rows.iloc[-1]
    busy = top["machine_busy"]
    cpus = top["cpus"]
    if busy == busy:
        sentences.append(words["busy"].format(workers=top["workers"], cpus=cpus, busy=busy))
    text = "; ".join(sentences).capitalize() + ". " if sentences else ""
    if busy == busy and busy >= 0.85:
        text += words["full"]
    if 0 in by and pooled:
        best_pool = max(pooled, key=lambda w: by[w]["throughput"])
        ratio = by[0]["throughput"] / by[best_pool]["throughput"]
        text += words["single"].format(
            t_single=_n(by[0]["throughput"]), ratio=ratio, best=best_pool,
            cpu=_n(by[best_pool]["server_cpu_us"] - by[0]["server_cpu_us"]))
    return [Section(
        "workers", words["title"], words["question"],
        plots.throughput_vs_workers(rows, _note(rows, lang=lang), lang),
        text.strip() + f" ({_rounds(rows, lang)}.)",
        _figures_table(rows, words["column"],
                       [plots.workers_label(w, lang).replace("\n", " ") for w in rows["workers"]],
                       lang),
        _commands(rows))]


_REAL_WORDS = {
    "en": {"title_queries": "queries by title", "workload": "the {workload} workload",
           "text": "With {what} over {books:,} books, each request costs {cpu_ms} ms of a "
                   "worker's CPU (one worker: {t_one} requests/s). {most} workers gave "
                   "{gain:.1f}x the throughput of 1 ({t_most} requests/s) on {cpus} cores: ",
           "parallel": "the work happens in the worker processes, side by side on the cores, "
                       "and the broker's hop is small beside it. In the read-mostly section the "
                       "work per request is tiny, so the hop and the processes' turns on the "
                       "cores decide instead.",
           "short": "less than the cores would allow; the machine was busy with other work, or "
                    "the clients were too few to keep every worker busy.",
           "title": "Workers when requests do real work",
           "question": "When each request costs milliseconds of work, do more worker processes "
                       "answer more?",
           "column": "workers"},
    "es": {"title_queries": "consultas por título", "workload": "la carga {workload}",
           "text": "Con {what} sobre {books:,} libros, cada petición cuesta {cpu_ms} ms de CPU "
                   "de un trabajador (un trabajador: {t_one} peticiones/s). {most} "
                   "trabajadores dieron {gain:.1f}x el rendimiento de 1 ({t_most} "
                   "peticiones/s) en {cpus} núcleos: ",
           "parallel": "el trabajo ocurre en los procesos trabajadores, uno al lado del otro en "
                       "los núcleos, y el salto del broker es pequeño a su lado. En la sección "
                       "de lectura casi exclusiva el trabajo por petición es mínimo, así que "
                       "deciden el salto y los turnos de los procesos en los núcleos.",
           "short": "menos de lo que permitirían los núcleos; la máquina estaba ocupada con "
                    "otro trabajo, o había muy pocos clientes para mantener ocupado a cada "
                    "trabajador.",
           "title": "Trabajadores cuando las peticiones hacen trabajo de verdad",
           "question": "Cuando cada petición cuesta milisegundos de trabajo, ¿responden más "
                       "peticiones más procesos trabajadores?",
           "column": "trabajadores"},
}


def real_work_section(table: pd.DataFrame, lang: str = "en") -> list[Section]:
    """Workers again, where each request does real work (queries by title scan the catalog in
    the worker): the pattern a class comes for, beside the read-mostly section."""
    groups = [g for g in varied_groups(table, "workers")[1:]
              if 1 in set(g["workers"]) and len(set(g["workers"]) - {0}) >= 2]
    if not groups:
        return []
    words = _words(_REAL_WORDS, lang)
    rows = groups[0]
    by = {int(r["workers"]): r for _, r in rows.iterrows()}
    most = max(by)
    first = rows.iloc[0]
    gain = by[most]["throughput"] / by[1]["throughput"]
    workload = str(first["workload"])
    what = (words["title_queries"] if workload == "mix:query_title=100"
            else words["workload"].format(workload=workload))
    text = words["text"].format(what=what, books=int(first["books"]),
                                cpu_ms=_n(by[1]["server_cpu_us"] / 1000, 1),
                                t_one=_n(by[1]["throughput"]), most=most, gain=gain,
                                t_most=_n(by[most]["throughput"]), cpus=by[most]["cpus"])
    text += words["parallel" if gain >= 1.3 else "short"]
    return [Section(
        "workers-real-work", words["title"], words["question"],
        plots.throughput_vs_workers(rows, _note(rows, lang=lang), lang),
        text + f" ({_rounds(rows, lang)}.)",
        _figures_table(rows, words["column"],
                       [plots.workers_label(w, lang).replace("\n", " ") for w in rows["workers"]],
                       lang),
        _commands(rows))]


_STORAGE_WORDS = {
    "en": {"text": "{fast} answered {times:,.0f}x the requests per second of {slow} ({t_fast} "
                   "against {t_slow}), and its p99 was {p_fast} ms against {p_slow} ms.",
           "json": " The json engine rewrites the whole {books:,}-book file for every loan or "
                   "return, under the lock, so writers queue behind each other; the journal "
                   "appends one line.",
           "few": " († too few requests in a round to measure p99: the slow engine answered "
                  "few; run longer.)",
           "title": "Storage engines",
           "question": "What does it cost to keep the catalog on disk: rewriting the JSON file "
                       "on every change, or appending to a journal?",
           "column": "storage"},
    "es": {"text": "{fast} respondió {times:,.0f}x las peticiones por segundo de {slow} "
                   "({t_fast} frente a {t_slow}), y su p99 fue de {p_fast} ms frente a "
                   "{p_slow} ms.",
           "json": " El motor json reescribe el archivo entero de {books:,} libros en cada "
                   "préstamo o devolución, con el cerrojo tomado, así que los que escriben "
                   "hacen cola unos detrás de otros; el diario (journal) añade una línea.",
           "few": " († muy pocas peticiones en una ronda para medir el p99: el motor lento "
                  "respondió pocas; ejecuta más tiempo.)",
           "title": "Motores de almacenamiento",
           "question": "¿Cuánto cuesta guardar el catálogo en disco: reescribir el archivo JSON "
                       "en cada cambio, o añadir a un diario?",
           "column": "almacenamiento"},
}


def storage_section(table: pd.DataFrame, lang: str = "en") -> list[Section]:
    rows = varied(table, "storage")
    if rows.empty:
        return []
    words = _words(_STORAGE_WORDS, lang)
    fast = rows.loc[rows["throughput"].idxmax()]
    slow = rows.loc[rows["throughput"].idxmin()]
    text = words["text"].format(
        fast=fast["storage"], slow=slow["storage"],
        times=fast["throughput"] / slow["throughput"], t_fast=_n(fast["throughput"]),
        t_slow=_n(slow["throughput"], 1 if slow["throughput"] < 10 else 0),
        p_fast=_ms(fast["p99_ms"]), p_slow=_ms(slow["p99_ms"]))
    if {"json", "journal"} <= set(rows["storage"]):
        text += words["json"].format(books=int(fast["books"]))
    if not all(rows["p99_ms_enough"]):
        text += words["few"]
    return [Section(
        "storage", words["title"], words["question"],
        plots.storage_engines(rows, _note(rows, lang=lang), lang),
        text + f" ({_rounds(rows, lang)}.)",
        _figures_table(rows, words["column"], list(rows["storage"]), lang),
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
            return [(caption.format(kind=_kind(detail["kind"], lang), detail=said(detail, lang)),
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
    return [f"{_kind(d['kind'], lang)}: {said(d, lang)}" for _, _, d in sorted(ranked)[:limit]]


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
    """The lost-update experiment in `lang` ("en" or "es"), the verifier's findings
    included."""
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


_LIMIT_WORDS = {
    "en": {"text": "The server ({server}) answered {ratio} of the requests per second of the "
                   "{limit} with the same clients, and its p99 was {p99:.2f}x the echo's{mark}. "
                   "It spent {cpu} µs of server CPU per request, the echo {echo_cpu} µs: the "
                   "difference is what parsing, looking up, locking and recording a request "
                   "cost.",
           "others": " Others: {others}.",
           "no_hop": "a hop that server does not make",
           "same_hop": "a hop of the same kind as the broker's",
           "close": " The limit is barely above the server ({server}, {ratio}x of it): the "
                    "limit passes every request through libzmq's proxy to a worker, {hop}, so "
                    "at this load it hardly bounds that server; `python -m libsrv_bench "
                    "compare` puts a bare REP echo beside it, the floor of a server without a "
                    "hop.",
           "columns": ("configuration", "rounds", "throughput / limit", "p99 / limit",
                       "server CPU µs/req"),
           "title": "Against the transport's limit",
           "question": "How close does the server come to what ZeroMQ itself can do on this "
                       "machine: libzmq's C proxy in front of the same number of workers that "
                       "only echo, loaded by the same clients in the same round?",
           "the": "the {limit}"},
    "es": {"text": "El servidor ({server}) respondió {ratio} de las peticiones por segundo del "
                   "{limit} con los mismos clientes, y su p99 fue {p99:.2f}x la del eco{mark}. "
                   "Gastó {cpu} µs de CPU del servidor por petición, el eco {echo_cpu} µs: la "
                   "diferencia es lo que cuesta interpretar, buscar, bloquear y registrar una "
                   "petición.",
           "others": " Otros: {others}.",
           "no_hop": "un salto que ese servidor no hace",
           "same_hop": "un salto del mismo tipo que el del broker",
           "close": " El límite apenas supera al servidor ({server}, {ratio}x de él): el "
                    "límite pasa cada petición por el proxy de libzmq hasta un trabajador, "
                    "{hop}, así que a esta carga apenas acota a ese servidor; `python -m "
                    "libsrv_bench compare` pone a su lado un eco REP sin más, el suelo de un "
                    "servidor sin salto.",
           "columns": ("configuración", "rondas", "rendimiento / límite", "p99 / límite",
                       "CPU del servidor (µs/petición)"),
           "title": "Frente al límite del transporte",
           "question": "¿Cuánto se acerca el servidor a lo que ZeroMQ mismo puede hacer en esta "
                       "máquina: el proxy en C de libzmq delante del mismo número de "
                       "trabajadores que solo hacen eco, con los mismos clientes en la misma "
                       "ronda?",
           "the": "{limit}"},
}


# a server at this share of the limit or more is hardly bounded by it: the limit's own hop
# (libzmq's proxy) is then what sets it apart, and the report says so
BARELY_ABOVE = 0.85


def limit_section(table: pd.DataFrame, lang: str = "en") -> list[Section]:
    servers = table[(table["echo"] == "") & table["throughput_vs_echo"].notna()]
    if servers.empty:
        return []
    words = _words(_LIMIT_WORDS, lang)
    limits = table[table["echo"] == "proxy"]
    main = servers.iloc[0]
    servers = servers[servers["workload"] == main["workload"]]  # the echo ignores the workload
    limit = limits[(limits["workers"] == main["workers"]) &
                   (limits["clients"] == main["clients"])].iloc[0]
    ratio = _spread(main, "throughput_vs_echo", plots.number)

    def p99_mark(row: pd.Series) -> str:  # a ratio of two p99s is as weak as the weaker
        return "" if row["p99_ms_enough"] and limit["p99_ms_enough"] else " †"

    text = words["text"].format(server=main["label"], ratio=ratio, limit=limit["label"],
                                p99=main["p99_vs_echo"], mark=p99_mark(main),
                                cpu=_n(main["server_cpu_us"]),
                                echo_cpu=_n(limit["server_cpu_us"]))
    others = servers.iloc[1:]
    if not others.empty:
        text += words["others"].format(others="; ".join(
            f"{r['label']} {plots.number(r['throughput_vs_echo'])}"
            for _, r in others.iterrows()))
    close = servers[servers["throughput_vs_echo"] >= BARELY_ABOVE]
    for _, row in close.iterrows():
        hop = words["no_hop"] if row["workers"] == 0 else words["same_hop"]
        text += words["close"].format(server=row["label"],
                                      ratio=plots.number(row["throughput_vs_echo"]), hop=hop)
    shown = pd.DataFrame(dict(zip(words["columns"], [
        list(servers["label"]),
        list(servers["rounds"]),
        [_spread(r, "throughput_vs_echo", plots.number) for _, r in servers.iterrows()],
        [plots.number(r["p99_vs_echo"]) + p99_mark(r) for _, r in servers.iterrows()],
        [_n(v) for v in servers["server_cpu_us"]]], strict=True)))
    return [Section(
        "limit", words["title"], words["question"],
        plots.versus_limit(servers, words["the"].format(limit=limit["label"]),
                           _note(servers, lang=lang), lang),
        text + f" ({_rounds(servers, lang)}.)", shown,
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
    """The experiments that the run folders under `paths` answer, in the report's order, in
    `lang` ("en" or "es": every section, its figures and the configurations' names)."""
    runs = runs_frame(find_runs(paths))
    if runs.empty:
        raise ValueError("no run folders (with summary.json) among the given paths")
    # a run with faults is not a steady measurement: it has its own section, and only that
    table = _zeromq_only(aggregate(runs))
    table = table[table["config"].map(lambda config: not config.faults)]
    if lang == "es":  # the configurations' names too
        table = table.assign(label=table["config"].map(lambda c: describe_config(c, lang)))
    from libsrv_bench.faultcost import fault_sections  # it builds on this module's Section

    return (limit_section(table, lang) + clients_section(table, runs, lang) +
            workers_section(table, lang) +
            real_work_section(table, lang) + storage_section(table, lang) +
            lost_update_section(table, lang) + fault_sections(paths, lang) +
            transports_section(paths, lang))


def show(found: Sequence[Section], lang: str = "en") -> None:
    """Display sections in a notebook: the same words, figure and table as the report (the
    labels around them in `lang`; a section's own words are in the language it was made in)."""
    from IPython.display import Markdown, display

    words = _MARKDOWN_WORDS["es" if lang == "es" else "en"]
    question, shown, verifier = words["question"], words["shown"], words["found"]
    for section in found:
        display(Markdown(f"### {section.title}\n\n**{question}** {section.question}"))
        display(section.figure)
        plt.close(section.figure)
        display(Markdown(f"**{shown}** {section.conclusion}"))
        display(Markdown(table_markdown(section.table)))
        if section.findings:
            display(Markdown(f"{verifier}\n\n" + "\n".join(f"- {markdown_text(f)}"
                                                            for f in section.findings)))
        for caption, picture in section.pictures:
            display(picture)
            plt.close(picture)
            display(Markdown(caption))
