"""What the lab notebooks say about a run, in the class's language ("es") or English ("en").

Every sentence is computed from the run's files (summary.json, violations.json), never fixed
text beside a number, so what a notebook says changes with what was measured. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from libsrv.defaults import DEFAULT_PAGE_LANG
from libsrv.messages import LANGUAGES
from libsrv_bench.judgement import reasons_in
from libsrv_bench.sentences import said
from libsrv_bench.settings import GENERATOR_FLOOR

# each verifier finding, named as the class would: which update was lost or doubled
FINDING_NAMES = {
    "double-loan": {"es": "préstamo doble (una actualización perdida: la devolución o el "
                          "préstamo anterior no quedó escrito)",
                    "en": "double loan (a lost update: the earlier return or loan was not "
                          "kept)"},
    "double-return": {"es": "devolución doble (una actualización duplicada: una devolución "
                            "contada dos veces, o un préstamo perdido)",
                      "en": "double return (a doubled update: a return counted twice, or a "
                            "loan lost)"},
    "stale-read": {"es": "lectura antigua (se sirvió un estado anterior a escrituras ya "
                         "confirmadas)",
                   "en": "stale read (a state older than acknowledged writes was served)"},
    "wrong-refusal": {"es": "rechazo falso (se rechazó como si el libro estuviera en otro "
                            "estado: una actualización perdida)",
                      "en": "wrong refusal (refused as if the book were in another state: a "
                            "lost update)"},
    "final-state": {"es": "estado final imposible (el archivo acaba como ningún orden de las "
                          "respuestas explica: una actualización perdida)",
                    "en": "impossible final state (the file ends as no order of the replies "
                          "explains: a lost update)"},
    "wrong-borrower": {"es": "prestatario equivocado (el archivo nombra a otra persona)",
                       "en": "wrong borrower (the file names someone else)"},
    "file-mismatch": {"es": "archivo distinto de lo servido",
                      "en": "file differs from what was served"},
    "wrong-book": {"es": "libro equivocado (la respuesta muestra otro libro que el pedido)",
                   "en": "wrong book (the reply shows another book than the one asked for)"},
    "file-unreadable": {"es": "archivo ilegible (las escrituras concurrentes lo rompieron)",
                        "en": "unreadable file (concurrent writes broke it)"},
}

_COLUMNS = {  # the verifier's op fields -> table headers with units
    "client": {"es": "cliente", "en": "client"},
    "op": {"es": "operación", "en": "operation"},
    "borrower": {"es": "prestatario", "en": "borrower"},
    "status": {"es": "respuesta", "en": "reply"},
    "saw": {"es": "vio el libro", "en": "saw the book"},
    "invoke_ms": {"es": "enviada (ms)", "en": "sent (ms)"},
    "complete_ms": {"es": "respondida (ms)", "en": "answered (ms)"},
}
_VALUES = {"es": {"loan": "préstamo", "return": "devolución", "query": "consulta",
                  "ok": "hecho", "refused": "rechazado", "unknown": "sin respuesta",
                  "lent": "prestado", "available": "disponible"},
           "en": {"ok": "done", "refused": "refused", "unknown": "no reply"}}
_TEXT = {
    "es": {"none": "ninguna en esta ronda: ejecuta otra vez o sube CLIENTS",
           "lock": "sin el cerrojo: {lost} anomalías en {rounds} rondas {each}; con el cerrojo: "
                   "{kept}.",
           "lock_caught": " Cada anomalía es una respuesta que ningún orden de las operaciones "
                          "explica: el cerrojo es lo que evita las actualizaciones perdidas.",
           "lock_missed": " Sin cerrojo no hubo carrera esta vez: con pocos clientes o "
                          "pocos segundos puede pasar; sube CLIENTS o SECONDS.",
           "clean": "{target}: limpio ({requests:,} peticiones, ninguna anomalía)",
           "not_clean": "{target}: NO limpio: {why}",
           "feed": "el feed: {changes:,} cambios, {found:,} escrituras confirmadas encontradas "
                   "en él, {findings} hallazgo(s); el verificador: {violations} anomalía(s)."},
    "en": {"none": "none this round: run again, or raise CLIENTS",
           "lock": "without the lock: {lost} anomalies over {rounds} rounds {each}; with the "
                   "lock: {kept}.",
           "lock_caught": " Each anomaly is a reply no order of the operations explains: the "
                          "lock is what prevents lost updates.",
           "lock_missed": " Without the lock there was no race this time: with few clients or "
                          "seconds it happens; raise CLIENTS or SECONDS.",
           "clean": "{target}: clean ({requests:,} requests, no anomaly)",
           "not_clean": "{target}: NOT CLEAN: {why}",
           "feed": "the feed: {changes:,} changes, {found:,} acknowledged writes found in it, "
                   "{findings} finding(s); the verifier: {violations} anomaly(ies)."},
}


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else DEFAULT_PAGE_LANG


def finding_name(kind: str, lang: str = DEFAULT_PAGE_LANG) -> str:
    """The finding `kind` (the verifier's word) named as a lost or doubled update."""
    names = FINDING_NAMES.get(kind)
    return names[_lang(lang)] if names else kind


def first_finding(verdicts: Sequence[Mapping[str, Any]], lang: str = DEFAULT_PAGE_LANG) -> str:
    """One line for the first finding of the first round that has one, or that there is none."""
    for verdict in verdicts:
        for detail in verdict.get("details", []):
            return f"{finding_name(detail['kind'], lang)}: {said(detail, lang)}"
    return _TEXT[_lang(lang)]["none"]


def ops_rows(ops: Sequence[Mapping[str, Any]],
             lang: str = DEFAULT_PAGE_LANG) -> list[dict[str, Any]]:
    """The operations behind a finding as table rows: headers with units, words for codes,
    times rounded to 0.1 ms, "—" where a field does not apply (a query has no borrower)."""
    lang = _lang(lang)
    words = _VALUES[lang]
    rows = []
    for op in ops:
        row = {}
        for field, header in _COLUMNS.items():
            value = op.get(field)
            if field.endswith("_ms"):
                value = "—" if value is None else round(float(value), 1)
            elif value is None:
                value = "—"
            else:
                value = words.get(str(value).lower(), value)
            row[header[lang]] = value
        rows.append(row)
    return rows


def lock_verdict(lost: Sequence[int], kept: Sequence[int], lang: str = DEFAULT_PAGE_LANG) -> str:
    """The anomalies without and with the lock, per round, and what they mean."""
    text = _TEXT[_lang(lang)]
    line = text["lock"].format(lost=sum(lost), rounds=len(lost), each=list(lost),
                               kept=sum(kept))
    return line + (text["lock_caught"] if sum(lost) else text["lock_missed"])


def target_verdict(summary: Mapping[str, Any], lang: str = DEFAULT_PAGE_LANG) -> str:
    """A foreign target's round: clean with its request count, or not clean and why."""
    text = _TEXT[_lang(lang)]
    if summary.get("clean"):
        return text["clean"].format(target=summary.get("target", "?"),
                                    requests=int(summary.get("requests", 0)))
    return text["not_clean"].format(target=summary.get("target", "?"),
                                    why="; ".join(reasons_in(dict(summary), lang)))


def feed_verdict(summary: Mapping[str, Any], lang: str = DEFAULT_PAGE_LANG) -> str:
    """An observed run: the feed's count and check beside the verifier's."""
    feed = summary["feed"]
    return _TEXT[_lang(lang)]["feed"].format(
        changes=feed["changes"], found=feed["acknowledged_in_feed"],
        findings=feed["violations"], violations=summary["violations"])


_ROUND = {"es": "ejecución {number}/{total} terminada: {requests:,} peticiones, {violations} "
                "anomalía(s)",
          "en": "run {number}/{total} done: {requests:,} requests, {violations} anomaly(ies)"}


def round_progress(lang: str = DEFAULT_PAGE_LANG) -> Callable[[int, int, Any], None]:
    """An `on_run` for `run_rounds` that prints one line as each run ends (a notebook's
    progress: a bar per run would go to stderr)."""
    template = _ROUND[_lang(lang)]

    def said(number: int, total: int, outcome: Any) -> None:
        print(template.format(number=number, total=total,
                              requests=int(outcome.summary.get("requests", 0)),
                              violations=outcome.summary.get("violations", 0)), flush=True)
    return said


# compare's rows and columns, as a table a student reads (units in the headers)
_ROW_NAMES = {
    "reference": {"es": "límite del transporte (proxy de libzmq + ecos REP)",
                  "en": "transport's limit (libzmq proxy + REP echoes)"},
    "reference, lean generator": {"es": "el mismo límite, generador ligero (calibración)",
                                  "en": "the same limit, lean generator (calibration)"},
    "bare REP echo": {"es": "eco REP solo, sin proxy", "en": "bare REP echo, no proxy"},
    "server": {"es": "el servidor del kit", "en": "the kit's server"},
}
_BROKER_ECHO = re.compile(r"^kit broker \+ (\d+) echo workers$")
_BROKER_ECHO_NAME = {"es": "broker del kit + {n} trabajadores eco",
                     "en": "kit broker + {n} echo workers"}


def row_name(name: str, lang: str = DEFAULT_PAGE_LANG) -> str:
    """A `compare` row's name in words; a group's own name stays as it is."""
    lang = _lang(lang)
    echo = _BROKER_ECHO.match(name)
    if echo:
        return _BROKER_ECHO_NAME[lang].format(n=echo[1])
    return _ROW_NAMES.get(name, {}).get(lang, name)
_COST_COLUMNS = {
    "name": {"es": "configuración", "en": "configuration"},
    "throughput": {"es": "peticiones/s", "en": "requests/s"},
    "throughput_ratio": {"es": "× el límite", "en": "× the limit"},
    "ratio_spread": {"es": "rango en las rondas", "en": "range over rounds"},
    "p99_ms": {"es": "p99 (ms)", "en": "p99 (ms)"},
    "server_cpu_us": {"es": "CPU del servidor (µs/petición)",
                      "en": "server CPU (µs/request)"},
    "load_cpu_us": {"es": "CPU del generador (µs/petición)", "en": "load CPU (µs/request)"},
    "machine_busy": {"es": "máquina ocupada", "en": "machine busy"},
}
_COST_TEXT = {
    "es": {
        "target": "{name} va a {ratio:.2f}× el límite del transporte (de {spread} según la "
                  "ronda).",
        "unmeasured": "{name}: sin razón frente al límite, porque el límite no respondió "
                      "ninguna petición en su ronda (máquina muy ocupada o ronda muy corta): "
                      "repite con más SECONDS.",
        "target_cpu": " Cada petición le cuesta {cpu:.0f} µs de CPU, frente a {ref:.0f} µs "
                      "del límite: esa diferencia es lo que cuesta el servicio de biblioteca.",
        "echo_above": "El eco REP solo va más rápido que el límite ({ratio:.2f}×): es un solo "
                      "proceso, sin el salto del proxy, y cada petición cruza un socket menos. "
                      "El límite es el proxy porque el servidor con trabajadores también da "
                      "ese salto.",
        "echo_below": "El eco REP solo no supera al límite ({ratio:.2f}×): con {cores} "
                      "núcleos, el proxy y sus ecos reparten el trabajo entre procesos.",
        "busy_full": "La máquina estuvo ocupada un {busy:.0%} (mediana de las filas): casi "
                     "llena, así que las peticiones por segundo son los núcleos divididos por "
                     "la CPU total de cada petición.",
        "busy_part": "La máquina estuvo ocupada un {busy:.0%} (mediana de las filas): no del "
                     "todo llena; parte del tiempo se fue en esperas (turnos entre procesos, "
                     "la red), no en cálculo.",
        "load": "El generador de carga gastó {load:.0f} µs por petición en la fila del "
                "servidor, un {share:.0%} de la CPU medida: en esta máquina compite por los "
                "mismos núcleos que el servidor.",
        "calibrated": "Calibración: el generador del kit sacó del límite {share:.2f}× lo que "
                      "sacó un generador independiente con un proceso por cliente ({spread} "
                      "según la ronda), así que el generador del kit no frenó la medida.",
        "calibrated_many": " Por encima de 1: cada uno de los {clients} procesos del "
                           "generador independiente espera su turno en {cores} núcleos para "
                           "cada respuesta, mientras que un proceso de carga del kit atiende "
                           "varias respuestas cada vez que despierta.",
        "lean_python": " El generador independiente corrió en Python (aquí no se pudo "
                       "compilar su bucle en C): en {cores} núcleos se frena a sí mismo, así "
                       "que esta calibración se queda corta.",
        "throttled": "Calibración: el generador del kit sacó del límite solo {share:.2f}× lo "
                     "que sacó un generador independiente con un proceso por cliente ({spread} "
                     "según la ronda): el generador del kit marcó el ritmo del límite, así que "
                     "las razones de arriba salen infladas (más procesos de carga pueden "
                     "ayudar: --processes).",
    },
    "en": {
        "target": "{name} runs at {ratio:.2f}× the transport's limit ({spread} over the "
                  "rounds).",
        "unmeasured": "{name}: no ratio to the limit, because the limit answered no request "
                      "in its round (a very busy machine or a very short round): run again "
                      "with more SECONDS.",
        "target_cpu": " Each request costs it {cpu:.0f} µs of CPU, against {ref:.0f} µs for "
                      "the limit: that difference is what the library service costs.",
        "echo_above": "The bare REP echo is faster than the limit ({ratio:.2f}×): it is one "
                      "process, with no proxy hop, so each request crosses one socket fewer. "
                      "The limit is the proxy because the server with workers makes that hop "
                      "too.",
        "echo_below": "The bare REP echo does not beat the limit ({ratio:.2f}×): with {cores} "
                      "cores, the proxy and its echoes share the work between processes.",
        "busy_full": "The machine was {busy:.0%} busy (median of the rows): nearly full, so "
                     "requests per second are the cores divided by each request's total CPU.",
        "busy_part": "The machine was {busy:.0%} busy (median of the rows): not full; part of "
                     "the time went in waiting (turns between processes, the network), not in "
                     "computing.",
        "load": "The load generator spent {load:.0f} µs per request in the server's row, "
                "{share:.0%} of the CPU measured: on this machine it competes for the same "
                "cores as the server.",
        "calibrated": "Calibration: the kit's generator got {share:.2f}× from the limit what "
                      "an independent one-process-per-client generator got ({spread} over the "
                      "rounds), so the kit's generator did not hold the measurement back.",
        "calibrated_many": " Above 1: each of the independent generator's {clients} "
                           "processes waits for its turn on {cores} cores for every reply, "
                           "where one of the kit's load processes takes several replies each "
                           "time it wakes.",
        "lean_python": " The independent generator ran in Python (its C loop could not be "
                       "built here): on {cores} cores it holds itself back, so this "
                       "calibration falls short.",
        "throttled": "Calibration: the kit's generator got only {share:.2f}× from the limit "
                     "what an independent one-process-per-client generator got ({spread} over "
                     "the rounds): the kit's generator set the limit's pace, so the ratios "
                     "above are overstated (more load processes may help: --processes).",
    },
}
BUSY_FULL = 0.9  # a machine this busy is CPU-bound: throughput is cores / CPU per request


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: not measured


def cost_rows_read(rows: Sequence[Mapping[str, Any]],
                   lang: str = DEFAULT_PAGE_LANG) -> list[dict[str, Any]]:
    """`compare.medians` rows as a student reads them: named in words, units in the headers,
    rounded, "—" where a row has no such number (the limit has no ratio to itself: 1)."""
    lang = _lang(lang)
    out = []
    for row in rows:
        name = str(row.get("name", ""))
        shown: dict[str, Any] = {}
        for field, header in _COST_COLUMNS.items():
            value = row.get(field)
            if field == "name":
                value = row_name(name, lang)
            elif field == "throughput_ratio" and name == "reference":
                value = "1"
            elif field == "ratio_spread":
                value = value if isinstance(value, str) else "—"
            else:
                number = _number(value)
                if number is None:
                    value = "—"
                elif field == "machine_busy":
                    value = f"{number:.0%}"
                elif field in ("throughput", "server_cpu_us", "load_cpu_us"):
                    value = f"{number:,.0f}"
                else:
                    value = f"{number:.2f}"
            shown[header[lang]] = value
        out.append(shown)
    return out


def cost_sentences(rows: Sequence[Mapping[str, Any]], lang: str = DEFAULT_PAGE_LANG, *,
                   cores: int = 2) -> list[str]:
    """What `compare.medians` rows show, said from their numbers: the server against the
    limit and its CPU, why a bare echo may beat the limit, how busy the machine was, and the
    load generator's share."""
    lang = _lang(lang)
    text = _COST_TEXT[lang]
    by_name = {str(r.get("name")): r for r in rows}
    reference = by_name.get("reference", {})
    said = []
    limits = set(_ROW_NAMES) - {"server"}
    targets = [r for n, r in by_name.items() if n not in limits and not _BROKER_ECHO.match(n)]
    for row in targets:
        ratio = _number(row.get("throughput_ratio"))
        name = row_name(str(row["name"]), lang)
        name = name[:1].upper() + name[1:]
        if ratio is None:
            said.append(text["unmeasured"].format(name=name))
            continue
        line = text["target"].format(name=name, ratio=ratio,
                                     spread=row.get("ratio_spread", "—"))
        cpu, ref = _number(row.get("server_cpu_us")), _number(reference.get("server_cpu_us"))
        if cpu is not None and ref is not None:
            line += text["target_cpu"].format(cpu=cpu, ref=ref)
        said.append(line)
    echo = _number(by_name.get("bare REP echo", {}).get("throughput_ratio"))
    if echo is not None:
        said.append(text["echo_above" if echo > 1 else "echo_below"].format(ratio=echo,
                                                                            cores=cores))
    busy = [b for b in (_number(r.get("machine_busy")) for r in rows) if b is not None]
    if busy:
        middle = sorted(busy)[len(busy) // 2]
        said.append(text["busy_full" if middle >= BUSY_FULL else "busy_part"].format(
            busy=middle))
    for row in targets[:1]:
        load, cpu = _number(row.get("load_cpu_us")), _number(row.get("server_cpu_us"))
        if load is not None and cpu is not None and load + cpu > 0:
            said.append(text["load"].format(load=load, share=load / (load + cpu)))
    line = calibration_sentence(by_name.get("reference, lean generator", {}), lang,
                                cores=cores)
    if line:
        said.append(line)
    return said


def calibration_sentence(calibration: Mapping[str, Any], lang: str = DEFAULT_PAGE_LANG, *,
                         cores: int = 2) -> str:
    """What `compare`'s calibration row (the reference driven by the lean generator) says of
    bench's own generator: it did not hold the measurement back, or it set the reference's
    pace (below GENERATOR_FLOOR); empty without the row. `compare` prints it too."""
    text = _COST_TEXT[_lang(lang)]
    share = _number(calibration.get("generator_ratio"))
    if share is None:
        return ""
    spread = calibration.get("ratio_spread", "—")
    clients = _number(calibration.get("lean_clients"))
    if share < GENERATOR_FLOOR:
        line = text["throttled"].format(share=share, spread=spread)
    else:
        line = text["calibrated"].format(share=share, spread=spread)
        if share > 1.1 and clients is not None and clients > cores:
            line += text["calibrated_many"].format(clients=int(clients), cores=cores)
    if calibration.get("lean_loop") == "python":
        line += text["lean_python"].format(cores=cores)
    return line


_RUN_COLUMNS = {
    "engines": {"es": "motores", "en": "engines"},
    "throughput": {"es": "peticiones/s", "en": "requests/s"},
    "p50_ms": {"es": "p50 (ms)", "en": "p50 (ms)"},
    "p99_ms": {"es": "p99 (ms)", "en": "p99 (ms)"},
    "requests": {"es": "peticiones", "en": "requests"},
    "violations": {"es": "anomalías", "en": "anomalies"},
    "load_cpu": {"es": "CPU del generador (µs/petición)", "en": "load CPU (µs/request)"},
}
_ENGINES_TEXT = {
    "es": {"faster": "Repartida en {engines} motores, la carga llegó a {spread:,.0f} "
                     "peticiones/s frente a {alone:,.0f} desde un solo proceso ({ratio:.2f}×).",
           "slower": "Repartida en {engines} motores, la carga llegó a {spread:,.0f} "
                     "peticiones/s frente a {alone:,.0f} desde un solo proceso ({ratio:.2f}×): "
                     "repartir cuesta (el reloj de cada motor, los resultados que vuelven).",
           "same_machine": " Todo corrió en esta máquina de {cores} núcleos: los motores no "
                           "añaden CPU, solo más procesos generando carga a la vez, así que esto "
                           "no dice que los motores sean más rápidos; con motores en otros PC sí "
                           "se suma su CPU."},
    "en": {"faster": "Spread over {engines} engines, the load reached {spread:,.0f} requests/s "
                     "against {alone:,.0f} from one process ({ratio:.2f}×).",
           "slower": "Spread over {engines} engines, the load reached {spread:,.0f} requests/s "
                     "against {alone:,.0f} from one process ({ratio:.2f}×): spreading costs "
                     "something (each engine's clock, the results coming back).",
           "same_machine": " All of it ran on this {cores}-core machine: engines add no CPU, "
                           "only more processes generating load at once, so this does not say "
                           "engines are faster; engines on other PCs do add their CPU."},
}


def run_rows(summaries: Sequence[Mapping[str, Any]],
             lang: str = DEFAULT_PAGE_LANG) -> list[dict[str, Any]]:
    """One row per run: how it was driven, its rate, latency, anomalies and load CPU."""
    lang = _lang(lang)
    head = {field: names[lang] for field, names in _RUN_COLUMNS.items()}
    return [{head["engines"]: s.get("engines", 0),
             head["throughput"]: f"{s['throughput']:,.0f}",
             head["p50_ms"]: round(s["p50_ms"], 2), head["p99_ms"]: round(s["p99_ms"], 2),
             head["requests"]: s["requests"], head["violations"]: s["violations"],
             head["load_cpu"]: round(s["load"]["cpu_us_per_request"])} for s in summaries]


_ENGINE_COLUMNS = {
    "engine": {"es": "motor", "en": "engine"},
    "host": {"es": "máquina", "en": "host"},
    "clients": {"es": "clientes", "en": "clients"},
    "requests": {"es": "peticiones", "en": "requests"},
    "throughput": {"es": "peticiones/s", "en": "requests/s"},
    "offset_ms": {"es": "desfase del reloj (ms)", "en": "clock offset (ms)"},
    "uncertainty_ms": {"es": "incertidumbre (ms)", "en": "uncertainty (ms)"},
    "status": {"es": "estado", "en": "status"},
    "reason": {"es": "motivo", "en": "reason"},
}
_ENGINE_STATUS = {"es": {"ok": "bien", "missing": "falta"}, "en": {}}


def engine_rows(engine_runs: Sequence[Mapping[str, Any]],
                lang: str = DEFAULT_PAGE_LANG) -> list[dict[str, Any]]:
    """Each engine's part of a spread run: headers with units, rounded, "—" for no reason."""
    lang = _lang(lang)
    head = {field: names[lang] for field, names in _ENGINE_COLUMNS.items()}
    status = _ENGINE_STATUS[lang]
    def number(run: Mapping[str, Any], field: str) -> Any:
        value = _number(run.get(field))
        return "—" if value is None else round(value, 2)

    rows = []
    for run in engine_runs:
        rows.append({head["engine"]: run.get("engine"), head["host"]: run.get("host", "—"),
                     head["clients"]: run.get("clients"), head["requests"]: run.get("requests"),
                     head["throughput"]: f"{_number(run.get('throughput')) or 0:,.0f}",
                     head["offset_ms"]: number(run, "offset_ms"),
                     head["uncertainty_ms"]: number(run, "uncertainty_ms"),
                     head["status"]: status.get(str(run.get("status")), run.get("status")),
                     head["reason"]: run.get("reason") or "—"})
    return rows


def engines_sentence(summaries: Sequence[Mapping[str, Any]], lang: str = DEFAULT_PAGE_LANG, *,
                     cores: int = 2, same_machine: bool = True) -> str:
    """The run from the engines against the run from one process, and what it does not mean."""
    text = _ENGINES_TEXT[_lang(lang)]
    alone = next((s for s in summaries if not s.get("engines")), None)
    spread = next((s for s in summaries if s.get("engines")), None)
    if alone is None or spread is None or not alone["throughput"]:
        return ""
    ratio = spread["throughput"] / alone["throughput"]
    line = text["faster" if ratio >= 1 else "slower"].format(
        engines=spread["engines"], spread=spread["throughput"], alone=alone["throughput"],
        ratio=ratio)
    return line + (text["same_machine"].format(cores=cores) if same_machine else "")


_GROUP_TEXT = {"es": {"passed": "== {name}: pasó todas las comprobaciones",
                      "failed": "== {name}: {count} hallazgo(s)",
                      "report": "El informe completo: {path}"},
               "en": {"passed": "== {name}: every check passed",
                      "failed": "== {name}: {count} finding(s)",
                      "report": "The whole report: {path}"}}


def group_lines(results: Sequence[Any], report: object, lang: str = DEFAULT_PAGE_LANG) -> list[str]:
    """`grade`'s results as lines: each group's verdict, its findings (as `grade` words them),
    and where the whole report is."""
    text = _GROUP_TEXT[_lang(lang)]
    lines = []
    for result in results:
        key = "passed" if result.passed else "failed"
        lines.append(text[key].format(name=result.group.name, count=len(result.findings)))
        lines.extend(f"  - {finding}" for finding in result.findings_in(lang))
    lines.append("\n" + text["report"].format(path=report))
    return lines


_FAULT_RUN = {"es": {"counts": "{answered:,} respondidas a {rate:,.0f} peticiones/s, "
                               "{retried:,} reintentadas, {timeouts:,} abandonadas",
                     "clean": "veredicto: limpio: ninguna actualización perdida ni duplicada",
                     "dirty": "veredicto: NO limpio: {why}"},
              "en": {"counts": "{answered:,} answered at {rate:,.0f} req/s, {retried:,} "
                               "retried, {timeouts:,} given up",
                     "clean": "verdict: clean: no update lost or doubled",
                     "dirty": "verdict: NOT CLEAN: {why}"}}


def fault_run_lines(summary: Mapping[str, Any], lang: str = DEFAULT_PAGE_LANG) -> tuple[str, str]:
    """A fault run's counts (answered, rate, retried, given up) and the verifier's verdict."""
    text = _FAULT_RUN[_lang(lang)]
    counts = text["counts"].format(answered=summary["answered"], rate=summary["throughput"],
                                   retried=summary["retried"], timeouts=summary["timeouts"])
    verdict = text["clean"] if summary["clean"] else text["dirty"].format(
        why="; ".join(reasons_in(dict(summary), lang)))
    return counts, verdict


_FAULT_TABLE = {
    "es": {"run": "ejecución", "faults": "fallos", "retries": "reintentos", "ids": "ids",
           "answered": "respondidas", "retried": "reintentadas", "given_up": "abandonadas",
           "anomalies": "anomalías", "verdict": "veredicto", "yes": "sí", "no": "no",
           "none": "ninguno", "clean": "limpio", "dirty": "NO limpio",
           "all_clean": "Las {n} ejecuciones salieron limpias: los fallos costaron tiempo y "
                        "reintentos, ninguna actualización.",
           "some_dirty": "Limpias: {clean} de {n}. No limpias: {names}."},
    "en": {"run": "run", "faults": "faults", "retries": "retries", "ids": "ids",
           "answered": "answered", "retried": "retried", "given_up": "given up",
           "anomalies": "anomalies", "verdict": "verdict", "yes": "yes", "no": "no",
           "none": "none", "clean": "clean", "dirty": "NOT clean",
           "all_clean": "All {n} runs were clean: the faults cost time and retries, never an "
                        "update.",
           "some_dirty": "Clean: {clean} of {n}. Not clean: {names}."},
}


def fault_run_rows(runs: Mapping[str, Mapping[str, Any]],
                   lang: str = DEFAULT_PAGE_LANG) -> tuple[list[dict[str, Any]], str]:
    """Runs with faults side by side (`runs`: a name for each run's summary): what was done to
    each, what it cost and its verdict, and one sentence of which were clean."""
    words = _FAULT_TABLE[_lang(lang)]
    rows = []
    for name, summary in runs.items():
        config = summary.get("config", {})
        rows.append({
            words["run"]: name,
            words["faults"]: ", ".join(config.get("faults") or ()) or words["none"],
            words["retries"]: words["yes"] if config.get("retries") else words["no"],
            words["ids"]: words["no"] if config.get("no_ids") else words["yes"],
            words["answered"]: f"{int(summary.get('answered', 0)):,}",
            words["retried"]: f"{int(summary.get('retried', 0)):,}",
            words["given_up"]: f"{int(summary.get('timeouts', 0)):,}",
            words["anomalies"]: int(summary.get("violations", 0)),
            words["verdict"]: words["clean"] if summary.get("clean") else words["dirty"]})
    dirty = [name for name, summary in runs.items() if not summary.get("clean")]
    sentence = (words["all_clean"].format(n=len(runs)) if not dirty else
                words["some_dirty"].format(clean=len(runs) - len(dirty), n=len(runs),
                                           names=", ".join(dirty)))
    return rows, sentence


# grade's checks (`libsrv_bench.grade`), named in the class's language
CHECK_NAMES = {
    "query by ISBN": "consulta por ISBN",
    "loan by ISBN": "préstamo por ISBN",
    "loan of a lent book refused": "préstamo de un libro prestado rechazado",
    "return": "devolución",
    "return of a book not lent refused": "devolución de un libro no prestado rechazada",
    "loan by title": "préstamo por título",
    "unknown ISBN": "ISBN desconocido",
    "missing field answered, nothing lent": "campo que falta respondido, nada prestado",
    "invalid JSON answered": "JSON no válido respondido",
    "still answers, book available": "sigue respondiendo, libro disponible",
    "concurrency fight clean": "pelea concurrente limpia",
    "SIGKILL and restart": "SIGKILL y nuevo arranque",
    "a book to test with": "un libro con el que probar",
    "the grader could go on": "el corrector pudo seguir",
}


def check_name(name: str, lang: str = DEFAULT_PAGE_LANG) -> str:
    """A grading check's name in `lang` (the English one, which `grade` keeps, otherwise)."""
    return CHECK_NAMES.get(name, name) if _lang(lang) == "es" else name
