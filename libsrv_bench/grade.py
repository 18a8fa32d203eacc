"""Grade many groups' servers in one report: ``python -m libsrv_bench grade GROUPS.toml``.

GROUPS.toml has one ``[[group]]`` table per group::

    [[group]]
    name = "grupo-1"
    endpoint = "tcp://127.0.0.1:5601"
    dialect = "class"                 # kit, class, or FILE.py:Name
    catalog = "grupo1/DB.json"        # the file the server serves (needed unless dialect kit)
    command = "python servidor.py"    # optional: the bench starts it (and kills it once)
    cwd = "grupo1"                    # optional: where the command runs

For each group, in order: the protocol check (the class report's chapter-6 scenarios, one
request at a time), the concurrency fight (hot-spot loans and returns from many clients,
verified), latency at 1 client and throughput at 16, and, when the bench starts the server, a
SIGKILL and restart (the loans acknowledged before it must be in the file after it). The catalog
file is restored from the copy taken at the start before each step that writes. Relative paths
are read from the folder of GROUPS.toml.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from libsrv.catalog import AVAILABLE, LENT
from libsrv.protocol import Action, Code
from libsrv_bench.commanded import UNKNOWN_ISBN, CommandServer
from libsrv_bench.dialects import DEFAULT_DIALECT, Outcome, dialect_named
from libsrv_bench.foreign import Asker, books_in_file, file_state
from libsrv_bench.history import TIMEOUT
from libsrv_bench.runner import RunOutcome, run_experiment
from libsrv_bench.sentences import said, say
from libsrv_bench.settings import RunConfig

ASK_SECONDS = 3.0
FIGHT = {"workload": "hot-spot", "hot": 2, "clients": 16, "duration": 3.0, "warmup": 0.5}
SPEED = {"workload": "read-mostly", "duration": 2.0, "warmup": 0.5}


class GradeError(ValueError):
    """GROUPS.toml cannot be used; the message says why."""


@dataclass
class Group:
    name: str
    endpoint: str
    dialect: str = DEFAULT_DIALECT
    catalog: Path | None = None
    command: list[str] | None = None
    cwd: Path | None = None


@dataclass
class Check:
    """One grading check: its (English) name, whether it passed, and what was seen, as
    English words (`detail`) and as `sentences` facts (`key`, `facts`) to say it in Spanish."""

    name: str
    passed: bool
    detail: str
    key: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def words(self, lang: str = "en") -> str:
        return say(self.key, self.facts, lang) if self.key else self.detail


def _check(name: str, passed: bool, key: str, **facts: Any) -> Check:
    return Check(name, passed, say(key, facts), key, facts)


@dataclass
class GroupResult:
    group: Group
    checks: list[Check] = field(default_factory=list)
    fight: dict[str, Any] = field(default_factory=dict)
    p50_ms_1: float | None = None
    throughput_16: float | None = None
    # the fight's first findings, as entries of violations.json (their facts included)
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def findings_in(self, lang: str = "en") -> list[str]:
        """What went wrong, in `lang`: each failed check (named as `lessons.check_name`
        names it), then the fight's first anomalies."""
        from libsrv_bench.lessons import check_name

        return [f"{check_name(c.name, lang)}: {c.words(lang)}" for c in self.checks
                if not c.passed] + [said(d, lang) for d in self.anomalies]

    @property
    def findings(self) -> list[str]:
        return self.findings_in("en")


def load_groups(path: Path | str) -> list[Group]:
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GradeError(f"cannot read {path}: {error}") from None
    base = path.parent
    groups = []
    for n, table in enumerate(document.get("group", []), start=1):
        if not isinstance(table, dict) or "name" not in table or "endpoint" not in table:
            raise GradeError(f"{path}: group #{n} needs at least name and endpoint")
        command = table.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        groups.append(Group(
            name=str(table["name"]), endpoint=str(table["endpoint"]),
            dialect=_resolve_dialect(str(table.get("dialect", DEFAULT_DIALECT)), base),
            catalog=base / table["catalog"] if "catalog" in table else None,
            command=command, cwd=base / table["cwd"] if "cwd" in table else base))
    if not groups:
        raise GradeError(f"{path} has no [[group]] table")
    return groups


def _resolve_dialect(spec: str, base: Path) -> str:
    path, sep, name = spec.rpartition(":")
    if sep and path.endswith(".py") and not Path(path).is_absolute():
        return f"{base / path}:{name}"
    return spec


# ---------------------------------------------------------------- talking to one server


def protocol_checks(ask: Asker, books: list[dict[str, Any]]) -> list[Check]:
    """The class report's scenarios, each a check with what was seen."""
    free = next((b for b in books if b["estado"] == AVAILABLE), None)
    if free is None:
        return [_check("a book to test with", False, "no-free-book")]
    isbn, title = free["ISBN"], free["titulo"]
    checks = []

    def expect(name: str, outcome: Outcome, code: str, more: bool = True) -> None:
        ok = outcome.code == code and more
        checks.append(_check(name, ok, "expected", code=str(code), got=str(outcome.code),
                             book_right=more))

    q = ask.ask(Action.QUERY_ISBN, isbn=isbn)
    expect("query by ISBN", q, Code.OK, q.book is not None and q.book.get("titulo") == title)
    loan = ask.ask(Action.LOAN_ISBN, isbn=isbn, borrower="Grader")
    expect("loan by ISBN", loan, Code.OK,
           loan.book is None or loan.book.get("prestatario") == "Grader")
    expect("loan of a lent book refused", ask.ask(Action.LOAN_ISBN, isbn=isbn,
                                                  borrower="Other"), Code.UNAVAILABLE)
    expect("return", ask.ask(Action.RETURN_ISBN, isbn=isbn), Code.OK)
    expect("return of a book not lent refused", ask.ask(Action.RETURN_ISBN, isbn=isbn),
           Code.NOT_LOANED)
    if Action.LOAN_TITLE in ask.dialect.actions:
        expect("loan by title", ask.ask(Action.LOAN_TITLE, title=title, borrower="Grader"),
               Code.OK)
        ask.ask(Action.RETURN_ISBN, isbn=isbn)
    expect("unknown ISBN", ask.ask(Action.QUERY_ISBN, isbn=UNKNOWN_ISBN), Code.NOT_FOUND)
    missing = ask.raw(ask.dialect.request(Action.LOAN_ISBN, {"isbn": isbn}, None),
                      Action.LOAN_ISBN, {"isbn": isbn})
    checks.append(_check("missing field answered, nothing lent", missing.code not in (
        TIMEOUT, Code.OK), "loan-without-borrower", got=str(missing.code)))
    garbage = ask.raw(b"{not json", Action.QUERY_ISBN, {})
    checks.append(_check("invalid JSON answered", garbage.code != TIMEOUT, "got",
                         got=str(garbage.code), hang=garbage.code == TIMEOUT))
    after = ask.ask(Action.QUERY_ISBN, isbn=isbn)
    checks.append(_check("still answers, book available", after.code == Code.OK and (
        after.book is None or after.book["estado"] == AVAILABLE), "got", got=str(after.code)))
    return checks


# ---------------------------------------------------------------- one group


def crash_check(group: Group, started: CommandServer, ask: Asker,
                books: list[dict[str, Any]]) -> Check:
    """Loans acknowledged, then SIGKILL and restart: each must still be in the file and in
    the server's answers."""
    free = [b["ISBN"] for b in books if b["estado"] == AVAILABLE][:3]
    acked = [isbn for isbn in free
             if ask.ask(Action.LOAN_ISBN, isbn=isbn, borrower="Crash").code == Code.OK]
    started.kill()
    on_disk, error = file_state(group.catalog) if group.catalog else ({}, None)
    try:
        started.start()
    except RuntimeError as failure:
        return _check("SIGKILL and restart", False, "start-failed", failure=str(failure))
    if error is not None:
        return _check("SIGKILL and restart", False, "file-broken", error=str(error))
    lost = [isbn for isbn in acked if on_disk is not None and group.catalog is not None
            and (on_disk.get(isbn) or {}).get("estado") != LENT]
    shown = [isbn for isbn in acked
             if (ask.ask(Action.QUERY_ISBN, isbn=isbn).book or {}).get("estado") != LENT]
    if not acked:
        return _check("SIGKILL and restart", False, "nothing-acknowledged")
    ok = not lost and not shown
    return _check("SIGKILL and restart", ok, "crash", acked=len(acked), lost=len(lost),
                  shown=len(shown))


def grade_group(group: Group, out: Path, log: Callable[[str], None],
                lang: str = "en") -> GroupResult:
    """Grade one group (see the module's docstring); `log` gets one line per step, in
    `lang`."""
    result = GroupResult(group)

    def step(key: str, **facts: Any) -> None:
        log(say(key, {"group": group.name, **facts}, lang))

    dialect = dialect_named(group.dialect)
    pristine = out / f"{group.name}-catalog.json" if group.catalog else None
    if group.catalog is not None and pristine is not None:
        shutil.copy(group.catalog, pristine)
    books = books_in_file(group.catalog) if group.catalog else []
    ask = Asker(group.endpoint, dialect, timeout=ASK_SECONDS)
    started = CommandServer(group.command, group.endpoint, dialect, cwd=group.cwd,
                            probe=books[0]["ISBN"] if books else UNKNOWN_ISBN) \
        if group.command else None

    def restore() -> None:
        if pristine is not None and group.catalog is not None:
            shutil.copy(pristine, group.catalog)

    try:
        if started is not None:
            step("step-start", command=shlex.join(group.command or []))
            started.start()
        step("step-protocol")
        result.checks += protocol_checks(ask, books)
        restore()
        base = {"endpoint": group.endpoint, "dialect": group.dialect, "target": group.name,
                "catalog": str(group.catalog) if group.catalog else None, "seed": 1}
        step("step-fight")
        fight = run_experiment(RunConfig(**base, **FIGHT, label=f"{group.name}-fight"),
                               out / "runs", progress=False)
        result.fight = {"clean": fight.summary.get("clean"),
                        "not_clean": fight.summary.get("not_clean", []),
                        "violations": fight.violations,
                        "requests": fight.summary["requests"]}
        result.checks.append(_fight_check(fight))
        details = fight.verdict.get("details", [])
        result.anomalies = details[:3]
        if details and details[0].get("ops"):  # drawn in the report: the verifier's picture
            result.fight["first_finding"] = details[0]
        restore()
        for clients in (1, 16):
            step("step-speed", clients=clients)
            speed = run_experiment(RunConfig(**base, **SPEED, clients=clients,
                                             label=f"{group.name}-c{clients}"),
                                   out / "runs", progress=False)
            if clients == 1:
                result.p50_ms_1 = speed.summary["p50_ms"]
            else:
                result.throughput_16 = speed.summary["throughput"]
            restore()
        if started is not None:
            step("step-crash")
            result.checks.append(crash_check(group, started, ask, books))
            restore()
    except Exception as error:  # a group's server can fail in any way: say so, grade on
        result.checks.append(_check("the grader could go on", False, "raised",
                                    kind=type(error).__name__, error=str(error)))
    finally:
        ask.close()
        if started is not None:
            started.kill()
        restore()
    return result


def _fight_check(fight: RunOutcome) -> Check:
    summary = fight.summary
    if summary.get("clean"):
        return _check("concurrency fight clean", True, "fight-clean",
                      requests=summary["requests"], writes=summary.get("writes_acknowledged", 0))
    reasons = summary.get("not_clean_facts") or []
    if not reasons:
        return _check("concurrency fight clean", False, "fight-not-clean")
    return _check("concurrency fight clean", False, "reasons", reasons=reasons)


# ---------------------------------------------------------------- the report


def results_figure(results: list[GroupResult], lang: str = "en") -> plt.Figure:
    """The groups' latency and throughput side by side (`grade.png`), labelled in `lang`."""
    from libsrv_bench.plots import grade_figure

    return grade_figure([r.group.name for r in results], [r.p50_ms_1 for r in results],
                        [r.throughput_16 for r in results], [r.passed for r in results], lang)


def results_table(results: list[GroupResult], lang: str = "en") -> pd.DataFrame:
    """One row per group, one column per check (✔ passed, ✘ failed, – not run), then the
    speed figures; headers in `lang` (the checks' names as `lessons.CHECK_NAMES` gives them)."""
    from libsrv_bench.lessons import check_name

    es = lang == "es"
    names = list(dict.fromkeys(c.name for r in results for c in r.checks))
    rows = []
    for result in results:
        marks = {c.name: "✔" if c.passed else "✘" for c in result.checks}
        rows.append({"grupo" if es else "group": result.group.name,
                     **{check_name(n, lang): marks.get(n, "–") for n in names},
                     "p50 con 1 cliente (ms)" if es else "p50, 1 client (ms)":
                         _num(result.p50_ms_1),
                     "peticiones/s con 16 clientes" if es else "requests/s, 16 clients":
                         _num(result.throughput_16)})
    return pd.DataFrame(rows).set_index("grupo" if es else "group")


_REPORT = {
    "en": {"title": "# Grading report",
           "intro": "One row per group; each check is described under the table. ✔ passed, ✘ "
                    "failed, – not run.",
           "group": "group", "p50": "p50 at 1 client (ms)", "rate": "req/s at 16 clients",
           "figure": "latency and throughput per group", "protocol": "{dialect} protocol",
           "catalog": "catalog {catalog}", "passed": "Every check passed.",
           "finding": "the fight's first finding, as the verifier saw it"},
    "es": {"title": "# Informe de calificación",
           "intro": "Una fila por grupo; cada comprobación se explica bajo la tabla. ✔ pasada, "
                    "✘ fallada, – no hecha.",
           "group": "grupo", "p50": "p50 con 1 cliente (ms)",
           "rate": "peticiones/s con 16 clientes",
           "figure": "latencia y rendimiento por grupo", "protocol": "protocolo {dialect}",
           "catalog": "catálogo {catalog}", "passed": "Pasó todas las comprobaciones.",
           "finding": "el primer hallazgo de la pelea, como lo vio el verificador"},
}


def write_grade_report(results: list[GroupResult], out: Path, lang: str = "en") -> Path:
    """README.md and grade.png in `out`: groups x checks, a figure, findings in words, in
    `lang` ("en" or "es"); grades.json beside them holds the same results as data."""
    from libsrv_bench.historyplot import finding_figure
    from libsrv_bench.lab import markdown_text
    from libsrv_bench.lessons import check_name

    words = _REPORT.get(lang, _REPORT["en"])
    names = [c.name for c in results[0].checks] if results else []
    for result in results[1:]:
        names += [c.name for c in result.checks if c.name not in names]
    lines = [words["title"], "", words["intro"], "",
             f"| {words['group']} | " + " | ".join(check_name(n, lang) for n in names)
             + f" | {words['p50']} | {words['rate']} |", "|---" * (len(names) + 3) + "|"]
    for result in results:
        marks = {c.name: "✔" if c.passed else "✘" for c in result.checks}
        lines.append(f"| {result.group.name} | " + " | ".join(marks.get(n, "–") for n in names)
                     + f" | {_num(result.p50_ms_1)} | {_num(result.throughput_16)} |")
    figure = results_figure(results, lang)
    figure.savefig(out / "grade.png", dpi=120)
    plt.close(figure)
    lines += ["", f"![{words['figure']}](grade.png)", ""]
    for result in results:
        lines += [f"## {result.group.name}", "",
                  f"{result.group.endpoint}, "
                  + words["protocol"].format(dialect=result.group.dialect)
                  + (", " + words["catalog"].format(catalog=result.group.catalog)
                     if result.group.catalog else ""), ""]
        findings = result.findings_in(lang)
        if not findings:
            lines += [words["passed"], ""]
        lines += [f"- {markdown_text(finding)}" for finding in findings] + [""]
        finding = result.fight.get("first_finding")
        if finding:
            picture = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', result.group.name)}-finding.png"
            drawn = finding_figure(finding, lang=lang)
            drawn.savefig(out / picture, dpi=100)
            plt.close(drawn)
            lines += [f"![{words['finding']}]({picture})", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "grades.json").write_text(json.dumps([{
        "group": r.group.name, "passed": r.passed, "p50_ms_1": r.p50_ms_1,
        "throughput_16": r.throughput_16, "fight": r.fight,
        "checks": [c.__dict__ for c in r.checks]} for r in results], indent=2))
    return path


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_groups(folder: Path | str) -> Path:
    """A GROUPS.toml to try `grade` with, no student needed: two "groups" that are the kit's own
    server with the class's whole-file design (json storage, 2 workers), one with its file lock
    and one without, each on a copy of the shipped catalog in a folder of its own, graded in
    the class's protocol. Returns the file's path."""
    from libsrv.shipped import copy_shipped_catalog

    folder = Path(folder)
    lines = []
    for name, extra in (("grupo-con-lock", []), ("grupo-sin-lock", ["--unsafe-no-lock"])):
        copy_shipped_catalog(folder / name / "DB.json")
        port = _free_port()
        command = [sys.executable, "-m", "libsrv", "serve", "--port", str(port), "--workers",
                   "2", "--storage", "json", "--db", "DB.json", "--quiet", "--no-pub", *extra]
        lines += ["[[group]]", f"name = {json.dumps(name)}",
                  f'endpoint = "tcp://127.0.0.1:{port}"', 'dialect = "class"',
                  f'catalog = "{name}/DB.json"', f'cwd = "{name}"',
                  f"command = {json.dumps(command)}", ""]
    path = folder / "groups.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def grade(groups_file: Path | str, out: Path | str, log: Callable[[str], None] = print,
          lang: str = "en") -> list[GroupResult]:
    """Grade every group of `groups_file`; the report goes to `out`. `log` gets a line per
    step; it and the report are in `lang` ("en" or "es")."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = [grade_group(group, out, log, lang) for group in load_groups(groups_file)]
    write_grade_report(results, out, lang)
    return results
