"""``python -m libsrv_bench transports``: the class's ZeroMQ-versus-gRPC question, measured.

The kit's server over ZeroMQ (single REP, and the broker with workers), gRPC and HTTP, each
beside its own stack's echo (the same processes and framework with a fixed reply instead of
the library: what the stack costs before any catalog work), all against the transport's limit
(libzmq's proxy in front of echo workers), in interleaved rounds (`compare`), at each client
count: one client for latency, more for throughput. Every server row is verified (its
history, the final states, the catalog file); every row says the CPU its server and the load
generator spent per request, and whether a load process was saturated (then the generator,
not the server, may have set that row's pace).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from libsrv.defaults import TRANSPORT_NAMES, TRANSPORT_TITLES
from libsrv_bench.compare import REFERENCE, compare, medians, transport_reference
from libsrv_bench.runner import RunOutcome
from libsrv_bench.settings import RunConfig, same_load

CLIENT_COUNTS = (1, 16, 64)  # latency at one client; throughput at 16 and 64
LOAD_SATURATED = "load_saturated"


def row_name(config: RunConfig) -> str:
    """A row's name: the stack, server or echo, and its processes."""
    stack = TRANSPORT_TITLES[config.transport]
    n = config.workers
    if config.gateway:
        return f"Flask gateway -> {row_name(replace(config, gateway=False))}"
    if config.echo == "raw":
        return "raw TCP echo, one process"
    if config.echo:
        if config.transport == "zmq":
            return "ZeroMQ echo, one REP process" if n == 0 else \
                f"ZeroMQ echo, libzmq proxy + {n} workers"
        return f"{stack} echo, {n or 'one'} process{'es' if n > 1 else ''}"
    if config.transport == "zmq":
        return "ZeroMQ server, single REP" if n == 0 else f"ZeroMQ server, broker + {n} workers"
    return f"{stack} server, {n or 'one'} process{'es' if n > 1 else ''}"


def transport_rows(base: RunConfig) -> dict[str, RunConfig]:
    """The rows beside the reference: the raw TCP echo (the machine's floor), then for each
    transport its echo and the kit's server with `base.workers` processes (ZeroMQ also as a
    single REP, its echo the bare REP echo; its echo with workers is the reference itself;
    and the class's Flask gateway in front of it)."""
    raw = replace(base, echo="raw", label="", workers=0)
    rows: dict[str, RunConfig] = {row_name(raw): raw}  # the machine's floor
    for transport in TRANSPORT_NAMES:
        server = replace(base, transport=transport, label="", echo="")
        echo = replace(server, echo="proxy")
        if transport == "zmq":
            single = replace(server, workers=0)
            rows[row_name(replace(echo, workers=0))] = replace(echo, workers=0)
            rows[row_name(single)] = single
        else:
            rows[row_name(echo)] = echo
        rows[row_name(server)] = server
        if transport == "zmq":  # the class's own path: browser -> Flask -> ZeroMQ
            rows[row_name(replace(server, gateway=True))] = replace(server, gateway=True)
    return rows


def own_echo(server_row: str, workers: int) -> str:
    """The row a server row is measured against: its own stack's echo, with as many processes
    (for the ZeroMQ broker that is the reference: libzmq's proxy in front of as many echo
    workers); for the Flask gateway, the same server without it."""
    if server_row.startswith("Flask gateway -> "):
        return server_row.removeprefix("Flask gateway -> ")  # the same server, directly
    if server_row == "ZeroMQ server, single REP":
        return row_name(RunConfig(echo="proxy", workers=0))
    if server_row.startswith("ZeroMQ server"):
        return REFERENCE
    stack = next(t for t, title in TRANSPORT_TITLES.items()
                 if server_row.startswith(f"{title} server"))
    return row_name(RunConfig(echo="proxy", transport=stack, workers=workers))


def compare_transports(base: RunConfig, *, clients: Sequence[int] = CLIENT_COUNTS,
                       rounds: int = 3, out: Path | str = "report/transports",
                       progress: bool = False,
                       on_run: Callable[[int, int, RunOutcome], None] | None = None
                       ) -> pd.DataFrame:
    """Every row's medians over `rounds` interleaved rounds, at each count of `clients`, one
    table (a `clients` column; ratios are to the reference of the same round and count)."""
    tables = []
    for count in clients:
        at = same_load(replace(base, clients=count, processes=0))
        raw = compare(transport_reference(at), transport_rows(at), rounds=rounds,
                      out=Path(out) / f"c{count}", progress=progress, on_run=on_run)
        table = medians(raw)
        saturated = raw.groupby("name", sort=False)[LOAD_SATURATED].apply(
            lambda values: bool(values.fillna(False).astype(bool).any()))
        table[LOAD_SATURATED] = table["name"].map(saturated).fillna(False)
        table.insert(0, "clients", count)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def verdicts(table: pd.DataFrame, lang: str = "en") -> dict[str, str]:
    """Each server row's verdict over every round and client count, by its (English) name:
    "clean" only when the verifier found no anomaly and every run was judged clean (enough
    requests answered, writes acknowledged, errors under the limit); else how many anomalies,
    or why a run was not clean (the judgement's words, in `lang`)."""
    words = _WORDS["es" if lang == "es" else "en"]
    said: dict[str, str] = {}
    servers = table[table["name"].str.contains(" server, ")]
    for name, group in servers.groupby("name", sort=False):
        found = int(group["violations"].fillna(0).sum())
        column = "not_clean_es" if lang == "es" and "not_clean_es" in group else "not_clean"
        reasons = sorted({r for r in group.get(column, ()) if isinstance(r, str) and r})
        if found:
            said[str(name)] = words["anomalies"].format(n=found)
        elif reasons:
            said[str(name)] = words["not_clean"].format(why="; ".join(reasons))
        else:
            said[str(name)] = words["clean"]
    return said


_WORDS = {
    "en": {"row": "{name}: {rate:,.0f} requests/s at {most} clients ({ratio:.2f}× the limit",
           "mate": ", {times:.2f}× {mate}", "echo": "its own echo",
           "without": "the server without it",
           "cpu": "), {cpu:,.0f} µs of server CPU per request",
           "p99": "; p99 {p99:.2f} ms at {fewest} client(s)",
           "saturated": "warning: a load process was saturated for {name} at {clients} "
                        "clients: the generator may have set that row's pace",
           "clean": "clean", "anomalies": "{n} anomalies", "not_clean": "NOT CLEAN: {why}",
           "clients": "A client asking for one book takes {zmq} lines of code over ZeroMQ, "
                      "{http} over HTTP and {grpc} over gRPC, plus the {proto}-line contract "
                      "gRPC compiles its stubs from (docs/clients)."},
    "es": {"row": "{name}: {rate:,.0f} peticiones/s con {most} clientes ({ratio:.2f}× el "
                  "límite",
           "mate": ", {times:.2f}× {mate}", "echo": "su propio eco",
           "without": "el servidor sin ella",
           "cpu": "), {cpu:,.0f} µs de CPU del servidor por petición",
           "p99": "; p99 de {p99:.2f} ms con {fewest} cliente(s)",
           "saturated": "aviso: un proceso de carga llegó a su límite en {name} con {clients} "
                        "clientes: el generador pudo marcar el ritmo de esa fila",
           "clean": "limpio", "anomalies": "{n} anomalías", "not_clean": "NO LIMPIO: {why}",
           "clients": "Un cliente que pide un libro ocupa {zmq} líneas de código con ZeroMQ, "
                      "{http} con HTTP y {grpc} con gRPC, más el contrato de {proto} líneas "
                      "del que gRPC genera sus stubs (docs/clients)."},
}
# a row's name, word by word, in Spanish (the table and the CSV keep the English names)
_SPANISH_NAMES = [
    (r"^reference$", "el límite: proxy de libzmq + trabajadores eco"),
    (r"^raw TCP echo, one process$", "eco TCP crudo, un proceso"),
    (r"^ZeroMQ echo, one REP process$", "eco ZeroMQ, un proceso REP"),
    (r"^ZeroMQ echo, libzmq proxy \+ (\d+) workers$",
     r"eco ZeroMQ, proxy de libzmq + \1 trabajadores"),
    (r"^ZeroMQ server, single REP$", "servidor ZeroMQ, REP único"),
    (r"^ZeroMQ server, broker \+ (\d+) workers$", r"servidor ZeroMQ, broker + \1 trabajadores"),
    (r"^(gRPC|HTTP) (server|echo), (\d+|one) process(es)?$", None),
]


def spoken_name(name: str, lang: str = "en") -> str:
    """A row's name in `lang` (the CSV keeps the English one)."""
    if lang != "es":
        return name
    if name.startswith("Flask gateway -> "):
        return "pasarela Flask -> " + spoken_name(name.removeprefix("Flask gateway -> "), lang)
    for pattern, words in _SPANISH_NAMES:
        match = re.match(pattern, name)
        if match is None:
            continue
        if words is not None:
            return match.expand(words)
        stack, kind, count, _ = match.groups()
        count = "un" if count in ("one", "1") else count
        return (f"{'servidor' if kind == 'server' else 'eco'} {stack}, {count} "
                f"proceso{'' if count == 'un' else 's'}")
    return name


def summary_lines(table: pd.DataFrame, workers: int, lang: str = "en") -> list[str]:
    """What the table says, in sentences computed from it (in `lang`): each server's
    throughput against its own echo (`own_echo`; the servers had `workers` processes) and the
    limit at the largest client count, its latency at the smallest, its CPU per request, and
    any row whose load generator was saturated."""
    words = _WORDS["es" if lang == "es" else "en"]
    lines: list[str] = []
    most, fewest = table["clients"].max(), table["clients"].min()
    top = table[table["clients"] == most].set_index("name")
    low = table[table["clients"] == fewest].set_index("name")
    for name in top.index:
        if " server, " not in name:
            continue
        row = top.loc[name]
        echo_name = own_echo(name, workers)
        echo = top.loc[echo_name] if echo_name in top.index else None
        text = words["row"].format(name=spoken_name(name, lang), rate=row["throughput"],
                                   most=most, ratio=row["throughput_ratio"])
        if echo is not None and echo["throughput"]:
            mate = words["without"] if name.startswith("Flask") else words["echo"]
            text += words["mate"].format(times=row["throughput"] / echo["throughput"],
                                         mate=mate)
        text += words["cpu"].format(cpu=row["server_cpu_us"])
        if name in low.index:
            text += words["p99"].format(p99=low.loc[name]["p99_ms"], fewest=fewest)
            text += "" if measured_p99(low.loc[name]) else " †"
        if lang == "es":  # its names start in lower case ("servidor gRPC"); gRPC's must not
            text = text[:1].upper() + text[1:]
        lines.append(text + ".")
    loaded = table[table[LOAD_SATURATED].astype(bool)]
    for _, row in loaded.iterrows():
        lines.append(words["saturated"].format(name=spoken_name(row["name"], lang),
                                               clients=row["clients"]))
    return lines


def measured_p99(row: pd.Series) -> bool:
    """Whether a row's p99 was measured on enough requests in every round (a table written
    before rows said so: yes)."""
    value = row.get("p99_enough", True)
    return bool(value) if value == value else True


DAGGER_NOTE = {"en": "† too few requests in a round to measure p99 (fewer than 10 beyond it)",
               "es": "† demasiado pocas peticiones en una ronda para medir el p99 (menos de 10 "
                     "por encima)"}


def table_for_print(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs, in order; a p99 measured on too few requests marked †."""
    columns: list[Any] = ["clients", "name", "throughput", "throughput_ratio", "ratio_spread",
                          "p99_ms", "server_cpu_us", "load_cpu_us", "machine_busy",
                          "violations", LOAD_SATURATED]
    shown = table[[c for c in columns if c in table.columns]].copy()
    shown["p99_ms"] = [f"{row['p99_ms']:.2f}" + ("" if measured_p99(row) else " †")
                       for _, row in table.iterrows()]
    return shown


def code_lines(path: Path | str) -> int:
    """Lines of code in a Python or .proto file: not blank, not a comment, not the module's
    docstring (what a student types, not what explains it)."""
    source = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix != ".py":
        return sum(1 for line in source.splitlines()
                   if line.strip() and not line.strip().startswith("//"))
    tree = ast.parse(source)
    skipped: set[int] = set()
    docstring = ast.get_docstring(tree, clean=False)
    if docstring is not None and tree.body:
        node = tree.body[0]
        skipped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    coded = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                   tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)}
    return len(coded - skipped)


CLIENT_FILES = {"ZeroMQ": "zmq_client.py", "HTTP": "http_client.py", "gRPC": "grpc_client.py"}
_CHECKOUT = Path(__file__).resolve().parent.parent


def client_sentence(lang: str = "en") -> str:
    """How many lines of code a client asking for one book takes in each transport (the
    checkout's docs/clients; empty where they are not, as in an installed package)."""
    folder, proto = _CHECKOUT / "docs" / "clients", _CHECKOUT / "libsrv" / "transports"
    if not all((folder / name).exists() for name in CLIENT_FILES.values()):
        return ""
    counts = {title: code_lines(folder / name) for title, name in CLIENT_FILES.items()}
    return _WORDS["es" if lang == "es" else "en"]["clients"].format(
        zmq=counts["ZeroMQ"], http=counts["HTTP"], grpc=counts["gRPC"],
        proto=code_lines(proto / "library.proto"))
