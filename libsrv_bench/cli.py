"""``python -m libsrv_bench run|baseline|sweep|compare|transports|feed-cost|report|grade|demo|echo``

The flags that describe a run come from `libsrv_bench.settings`, the one table of a run's settings.

Exit status of ``run``: 0 when the run is clean (the verifier found nothing and the run can
vouch for it), 1 when the verifier found anomalies, 2 when the run itself failed, 3 when it is
not clean for another reason (more errors and timeouts than ``--max-errors``, no acknowledged
write, a book the verifier could not decide) or missed a threshold (``--max-p99-ms``,
``--min-throughput``, ``--max-timeouts``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from libsrv.messages import LANGUAGES
from libsrv.storage import DEFAULT_ENGINE
from libsrv_bench.settings import (
    DEMO_ROUNDS,
    DEMO_SECONDS,
    ECHO_VIA,
    GENERATOR_FLOOR,
    add_flags,
    config_from_args,
    same_load,
)

EXIT_OK, EXIT_VIOLATIONS, EXIT_FAILED, EXIT_THRESHOLD = 0, 1, 2, 3


def _load_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    add_flags(parser, skip=skip)
    parser.add_argument("--out", default="report/runs",
                        help="folder for run folders (default report/runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"{summary['name']}: {summary['answered']:,} answered in "
          f"{summary['measured_seconds']:.1f} s = {summary['throughput']:,.0f} req/s; "
          f"latency ms p50 {summary['p50_ms']:.3f}  p90 {summary['p90_ms']:.3f}  "
          f"p99 {summary['p99_ms']:.3f}  p99.9 {summary['p999_ms']:.3f}  "
          f"max {summary['max_ms']:.3f}; timeouts {summary['timeouts']}, errors "
          f"{summary['errors']}, violations {summary['violations']}")
    cost, load = summary.get("cost", {}), summary.get("load", {})
    if cost.get("server_restarted"):
        print("  cost: server CPU not measured (its processes were restarted during the run)")
    if cost.get("server_cpu_us_per_request") is not None:
        print(f"  cost: server {cost['server_cpu_us_per_request']:,.0f} µs CPU per request, "
              f"load generator {load.get('cpu_us_per_request', 0):,.0f} µs; machine "
              f"{cost.get('machine_busy', 0):.0%} busy ({cost.get('cpus')} CPUs)")
    for run in summary.get("engine_runs", []):
        print(f"  engine {run['engine']} on {run['host'] or '?'}: {run['clients']} clients, "
              f"{run['requests']:,} requests, {run['throughput']:,.0f} req/s; clock offset "
              f"{run['offset_ms']:+.3f} ms ± {run['uncertainty_ms']:.3f} ms"
              + ("" if run["status"] == "ok" else f"; MISSING: {run['reason']}"))
    if summary.get("verdict_skipped"):
        print(f"  verifier: {summary['verdict_skipped']}")
    feed = summary.get("feed")
    if feed:
        print(f"  feed: {feed['changes']:,} changes published (#{feed['first']} to "
              f"#{feed['last']}), {feed['acknowledged_in_feed']:,} acknowledged writes found in "
              f"it; {feed['violations']} finding(s)"
              + (f" {feed['kinds']}" if feed["kinds"] else ""))
    if summary.get("faults"):
        from libsrv_bench.faultcost import fault_lines  # matplotlib: only when there is any

        for line in fault_lines(summary):
            print(f"  {line}")
    for warning in summary_warnings(summary):
        print(f"WARNING: {warning}")


def summary_warnings(summary: dict[str, Any]) -> list[str]:
    """What a reader must know before quoting the run's figures."""
    from libsrv_bench.results import LATE_START
    out = []
    if summary.get("fell_behind"):
        lag = summary["behind_schedule_ms"]
        out.append(f"the server did not keep up with the offered {summary['offered_rate']:,.0f} "
                   f"req/s: it answered {summary['throughput']:,.0f} req/s, requests went out "
                   f"up to {lag['max'] / 1e3:.1f} s behind their schedule, and the run ended "
                   f"{summary.get('overrun_seconds', 0):.1f} s late; latency counts from the "
                   "schedule")
    load = summary.get("load", {})
    if load.get("saturated"):
        busy = ", ".join(f"{b:.0%}" for b in load["busy"])
        out.append(f"a load process was saturated (CPU busy {busy}, "
                   f"{load['cpu_us_per_request']} µs per request): the figures may measure "
                   "the load generator; add --processes")
    if load.get("loop_note"):
        out.append(f"{load['loop_note']}: the Python loop drove the clients, and it sets the "
                   "pace sooner (docs/bench.md, 'How load is made'); install a C compiler, or "
                   "set LIBSRV_LOAD_LOOP=python to say this is meant")
    if load.get("late_start_s", 0) >= LATE_START:
        out.append(f"a load process began {load['late_start_s']:.2f} s after the start (its "
                   "machine was too busy to be ready in time): fewer clients drove part of "
                   "the run")
    if summary.get("undecided_books"):
        out.append(f"{summary['undecided_books']} book(s) had too many overlapping operations "
                   "for the verifier to decide; they are listed in violations.json")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from libsrv_bench.runner import run_experiment
    outcome = run_experiment(config_from_args(args), args.out, timeline_png=True,
                             progress=not args.no_progress)
    summary = outcome.summary
    _print_summary(summary)
    print(f"results in {outcome.folder}")
    missing = [r for r in summary.get("engine_runs", []) if r["status"] != "ok"]
    if missing:
        print(f"the run is incomplete: {len(missing)} engine(s) did not return their results")
        return EXIT_FAILED
    if outcome.violations:
        for detail in outcome.verdict["details"][:10]:
            print(f"  VIOLATION {detail['kind']} on {detail['book']}: {detail['detail']}")
        for detail in summary.get("feed", {}).get("details", [])[:10]:
            print(f"  FEED {detail['kind']}: {detail['detail']}")
        print("NOT CLEAN (exit 1 = anomalies found): " + "; ".join(summary["not_clean"]))
        return EXIT_VIOLATIONS
    if summary.get("not_clean"):
        print("NOT CLEAN (exit 3): " + "; ".join(summary["not_clean"]))
        return EXIT_THRESHOLD
    if "clean" in summary:
        print(f"clean: no anomaly in {summary['requests']:,} requests "
              f"({summary.get('writes_acknowledged', 0):,} acknowledged writes checked)")
    missed = []
    if args.max_p99_ms is not None and not summary["p99_ms"] <= args.max_p99_ms:
        missed.append(f"p99 {summary['p99_ms']:.3f} ms > {args.max_p99_ms} ms")
    if args.min_throughput is not None and summary["throughput"] < args.min_throughput:
        missed.append(f"throughput {summary['throughput']:.0f}/s < {args.min_throughput}/s")
    if args.max_timeouts is not None and summary["timeouts"] > args.max_timeouts:
        missed.append(f"{summary['timeouts']} timeouts > {args.max_timeouts}")
    if missed:
        print("threshold missed: " + "; ".join(missed))
        return EXIT_THRESHOLD
    return EXIT_OK


def cmd_baseline(args: argparse.Namespace) -> int:
    from libsrv_bench.runner import run_experiment
    outcome = run_experiment(config_from_args(args, echo=args.via), args.out,
                             progress=not args.no_progress)
    _print_summary(outcome.summary)
    print(f"results in {outcome.folder}")
    return EXIT_OK


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def cmd_sweep(args: argparse.Namespace) -> int:
    from libsrv_bench.runner import sweep
    grid: dict[str, list[Any]] = {}
    if args.clients_list:
        grid["clients"] = _int_list(args.clients_list)
    if args.workers_list:
        grid["workers"] = _int_list(args.workers_list)
    if args.storage_list:
        grid["storage"] = args.storage_list.split(",")
    if args.workload_list:
        grid["workload"] = args.workload_list.split(",")
    table = sweep(config_from_args(args), args.out, progress=not args.no_progress, **grid)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    return EXIT_VIOLATIONS if table["violations"].sum() else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from libsrv_bench.report import write_report

    path = write_report([Path(p) for p in args.runs], Path(args.out), title=args.title,
                        lang=args.lang)
    print(f"report written to {path}")
    return EXIT_OK


def cmd_feed_cost(args: argparse.Namespace) -> int:
    from libsrv_bench.feedcost import feed_cost

    base = same_load(config_from_args(args))
    print(f"{base.workload}, {base.clients} clients, {base.workers} workers, "
          f"{base.duration or base.requests} per run, {args.rounds} interleaved rounds", flush=True)
    table = feed_cost(base, args.rounds, args.out)
    print(table.to_string(index=False))
    return EXIT_VIOLATIONS if table["violations"].sum() else EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from libsrv_bench.compare import (
        CALIBRATION,
        baseline_candidates,
        compare,
        describe,
        medians,
        transport_reference,
    )

    base = same_load(config_from_args(args))
    if args.reference == "server":
        reference, candidates = base, {}
    else:
        reference, candidates = transport_reference(base), baseline_candidates(base)
    servers = [replace(base, storage=storage) for storage in
               filter(None, args.storages.split(","))]
    servers += [replace(base, workers=workers) for workers in _int_list(args.workers_list or "")
                if workers != base.workers]
    servers += [replace(base, books=books) for books in _int_list(args.books_list or "")
                if books != base.books]
    for config in servers:
        if config != reference:
            candidates.setdefault(describe(config), config)
    if args.with_proxy:
        for config in [reference, *servers]:
            candidates[f"{describe(config)}, through the fault proxy"] = replace(config,
                                                                                 proxy=True)
    print(f"reference: {describe(reference)}; {args.rounds} interleaved rounds; every row "
          f"driven by {base.processes} load process(es)", flush=True)
    table = compare(reference, candidates, rounds=args.rounds, out=args.out,
                    progress=not args.no_progress)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"\nmedians over rounds (ratios are to {describe(reference)} in the same round):")
    summary = medians(table)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    lean = summary[summary["name"] == CALIBRATION]
    if not lean.empty:
        from libsrv_bench.lessons import calibration_sentence

        row = lean.iloc[0].to_dict()
        line = calibration_sentence(row, "en", cores=os.cpu_count() or 1)
        share = float(row["generator_ratio"])
        print(("WARNING: " if share < GENERATOR_FLOOR else "") + line)
    return EXIT_VIOLATIONS if table["violations"].sum() else EXIT_OK


def cmd_transports(args: argparse.Namespace) -> int:
    from libsrv_bench.lessons import round_progress
    from libsrv_bench.transports import (
        DAGGER_NOTE,
        compare_transports,
        summary_lines,
        table_for_print,
        verdicts,
    )

    base = config_from_args(args)
    counts = _int_list(args.clients_list)
    print(f"ZeroMQ, gRPC and HTTP, each beside its own echo and against the transport's limit: "
          f"{args.rounds} interleaved rounds at {', '.join(map(str, counts))} client(s)",
          flush=True)
    table = compare_transports(base, clients=counts, rounds=args.rounds, out=args.out,
                               on_run=None if args.no_progress else round_progress("en"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "transports.csv", index=False)
    shown = table_for_print(table)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if shown["p99_ms"].str.endswith("†").any():
        print(DAGGER_NOTE["en"])
    for line in summary_lines(table, base.workers):
        print(line)
    said = verdicts(table)
    for name, verdict in said.items():
        print(f"verdict, {name}: {verdict}")
    print(f"table in {Path(args.out) / 'transports.csv'}")
    if table["violations"].fillna(0).sum():
        return EXIT_VIOLATIONS
    return EXIT_OK if all(v == "clean" for v in said.values()) else EXIT_THRESHOLD


def cmd_grade(args: argparse.Namespace) -> int:
    from libsrv_bench.grade import GradeError, grade

    try:
        results = grade(args.groups, args.out, lang=args.lang)
    except GradeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    for result in results:
        failed = [c.name for c in result.checks if not c.passed]
        print(f"{result.group.name}: " + ("every check passed" if not failed else
                                          "FAILED " + ", ".join(failed)))
    print(f"report in {Path(args.out) / 'README.md'}")
    return EXIT_OK if all(r.passed for r in results) else EXIT_VIOLATIONS


def cmd_demo(args: argparse.Namespace) -> int:
    from libsrv_bench.demo import run_demo

    run_demo(Path(args.out), seconds=args.seconds, rounds=args.rounds, lang=args.lang)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m libsrv_bench",
                                     description="Load, measure and verify a libsrv server.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one experiment")
    _load_flags(run)
    run.add_argument("--max-p99-ms", type=float,
                     help="exit 3 if p99 is above this (default: no limit)")
    run.add_argument("--min-throughput", type=float,
                     help="exit 3 if req/s is below this (default: no limit)")
    run.add_argument("--max-timeouts", type=int,
                     help="exit 3 if more requests timed out (default: no limit)")
    run.set_defaults(func=cmd_run)
    base = sub.add_parser("baseline", help="an echo in the server's topology: the "
                          "transport's limit")
    _load_flags(base, skip=("echo",))
    base.add_argument("--via", choices=ECHO_VIA, default=ECHO_VIA[0],
                      help="libzmq's C proxy in front of the echo workers (the transport's "
                      "limit) or the kit's broker (its own cost) (default proxy)")
    base.set_defaults(func=cmd_baseline)
    grid = sub.add_parser("sweep", help="a grid of runs, printed as one table")
    _load_flags(grid, skip=("label",))
    for name, example in (("clients", "1,4,16,64"), ("workers", "0,1,2,4"),
                          ("storage", "journal,json"), ("workload", "read-mostly,hot-spot")):
        grid.add_argument(f"--{name}-list", help=f"the values of --{name} to run, e.g. "
                          f"{example} (default: only --{name})")
    grid.set_defaults(func=cmd_sweep)
    comp = sub.add_parser("compare", help="candidates against a reference (default: the "
                          "echo baseline), interleaved rounds, median ratios")
    _load_flags(comp, skip=("echo", "label"))
    comp.add_argument("--rounds", type=int, default=3,
                      help="interleaved rounds of every row (default 3)")
    comp.add_argument("--reference", choices=["echo", "server"], default="echo",
                      help="echo: the transport's limit for the base shape (libzmq's proxy in "
                      "front of the same number of echo workers; a bare REP echo for "
                      "--workers 0), with the bare echo and the kit's broker echo as rows; "
                      "server: the base configuration itself, e.g. to compare catalog sizes "
                      "(default echo)")
    comp.add_argument("--storages", default=DEFAULT_ENGINE,
                      help="storage engines to compare, comma-separated; empty for none "
                      f"(default {DEFAULT_ENGINE})")
    comp.add_argument("--workers-list", help="also servers with these workers, e.g. 0,1,4 "
                      "(default: none)")
    comp.add_argument("--with-proxy", action="store_true",
                      help="also the reference and the server through the fault-injecting "
                      "proxy with no fault on: what the proxy itself costs")
    comp.add_argument("--books-list", help="also compare catalog sizes, e.g. 10,1000000 "
                      "(default: none)")
    comp.set_defaults(func=cmd_compare)
    trans = sub.add_parser("transports", help="the kit's server over ZeroMQ, gRPC and HTTP, "
                           "each beside its own echo, against the transport's limit "
                           "(docs/transports.md)")
    _load_flags(trans, skip=("echo", "label", "transport", "clients", "endpoint", "dialect",
                             "catalog", "target", "engines", "cluster", "proxy"))
    trans.add_argument("--rounds", type=int, default=3,
                       help="interleaved rounds of every row (default 3)")
    trans.add_argument("--clients-list", default="1,16,64",
                       help="client counts, each a table (default 1,16,64: latency at one "
                       "client, throughput at more)")
    trans.set_defaults(func=cmd_transports, out="report/transports")
    cost = sub.add_parser("feed-cost", help="what publishing the live feed costs: the server "
                          "with and without it, interleaved rounds, median ratios")
    _load_flags(cost, skip=("echo", "label", "observe", "no_pub"))
    cost.add_argument("--rounds", type=int, default=5,
                      help="interleaved rounds of each variant (default 5)")
    cost.set_defaults(func=cmd_feed_cost)
    report = sub.add_parser("report", help="write report/ from run folders")
    report.add_argument("runs", nargs="+", help="run folders (or folders holding them)")
    report.add_argument("--out", default="report",
                        help="folder the report is written to (default: report)")
    report.add_argument("--title", default="libsrv experiment report",
                        help="the report's heading (default: libsrv experiment report)")
    report.add_argument("--lang", choices=LANGUAGES, default="en",
                        help="language of the report's words, tables and figures: en "
                        "(default) or es, the class's")
    report.set_defaults(func=cmd_report)
    marks = sub.add_parser("grade", help="grade many groups' servers in one report "
                           "(protocol check, verified fight, latency, crash)")
    marks.add_argument("groups", help="GROUPS.toml: one [[group]] per group (name, endpoint, "
                       "dialect, catalog, command, cwd)")
    marks.add_argument("--out", default="report/grade",
                       help="folder of the grading report (default report/grade)")
    marks.add_argument("--lang", choices=LANGUAGES, default="en",
                       help="language of the progress lines and the report: en (default) or "
                       "es, the class's")
    marks.set_defaults(func=cmd_grade)
    demo = sub.add_parser("demo", help="the default experiment and its report")
    demo.add_argument("--out", default="report",
                      help="folder of the report; runs go under OUT/runs (default: report)")
    demo.add_argument("--seconds", type=float, default=DEMO_SECONDS,
                      help=f"measured seconds per run (default: {DEMO_SECONDS:g})")
    demo.add_argument("--rounds", type=int, default=DEMO_ROUNDS,
                      help=f"interleaved rounds of every run (default: {DEMO_ROUNDS})")
    demo.add_argument("--lang", choices=LANGUAGES, default="en",
                      help="language of the report: en (default) or es, the class's")
    demo.set_defaults(func=cmd_demo)
    echo = sub.add_parser("echo", help="serve the echo baseline (used by `baseline`)",
                          add_help=False)
    echo.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "echo":
        from libsrv_bench.echo import main as echo_main

        return echo_main(argv[1:])
    args = build_parser().parse_args(argv)
    # SIGTERM (a closed terminal, `kill`, a notebook's stop) stops a run as Ctrl-C does: the
    # servers, proxies and load processes it started are stopped on the way out
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a failed run must exit 2, with the reason
        print(f"error: the run failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


