"""Does bench's load generator set the pace of what it measures, at any number of load processes?

``.venv/bin/python bench/generator_calibration.py --rounds 5 --processes 1,2,8`` runs, in each
round and interleaved: the reference (libzmq's proxy in front of 2 REP echo workers) driven by
the independent lean generator (`libsrv_bench.lean`: 16 processes, one REQ socket each); then,
for each load-process count, the reference and the default server (2 workers, 10,000 books,
read-mostly, 16 clients) driven by bench's own generator with that many processes. It prints,
per count, the medians over the rounds (with their spread) of:

- the calibration: bench's reference over the lean generator's, in the same round (the goal:
  within 10% at every count);
- the headline: the server over the reference, in the same round (the goal: moving by at most
  0.07 from one count to another);
- the CPU per request of the load processes and of the reference.

The lean generator's client and bench's clients run their compiled loops when they can be
built (LIBSRV_LOAD_LOOP=python measures the Python ones). The figures are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from libsrv_bench.compare import calibrate, transport_reference
from libsrv_bench.runner import run_experiment
from libsrv_bench.settings import RunConfig


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", default="1,2,8",
                        help="load-process counts, comma-separated (default 1,2,8)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--out", default="report/generator-calibration")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n]
    base = RunConfig(duration=args.seconds, warmup=args.warmup)
    out = Path(args.out)
    calibration: dict[int, list[float]] = {n: [] for n in counts}
    headline: dict[int, list[float]] = {n: [] for n in counts}
    load_cpu: dict[int, list[float]] = {n: [] for n in counts}
    reference_cpu: dict[int, list[float]] = {n: [] for n in counts}
    lean_loops = set()
    for number in range(args.rounds):
        lean = calibrate(transport_reference(base))
        lean_loops.add(lean.loop)
        said = [f"round {number}: lean {lean.throughput:,.0f}/s"]
        for count in counts:
            server = replace(base, processes=count, label=f"server-p{count}-r{number}")
            reference = replace(transport_reference(server), label=f"ref-p{count}-r{number}")
            ref = run_experiment(reference, out).summary
            got = run_experiment(server, out).summary
            if got["violations"]:
                raise SystemExit(f"the server had {got['violations']} violations: "
                                 f"{got.get('not_clean')}")
            calibration[count].append(ref["throughput"] / lean.throughput)
            headline[count].append(got["throughput"] / ref["throughput"])
            load_cpu[count].append(ref["load"]["cpu_us_per_request"])
            reference_cpu[count].append(ref["cost"]["server_cpu_us_per_request"])
            said.append(f"p{count}: ref {ref['throughput']:,.0f}/s ({ref['load']['loop']}), "
                        f"server {got['throughput']:,.0f}/s")
        print("; ".join(said), flush=True)
    print(f"\nlean generator: {', '.join(sorted(lean_loops))}; {args.rounds} rounds of "
          f"{args.seconds:g} s; medians (min-max)")
    print("| `--processes` | bench's reference / lean generator | server / reference | "
          "load CPU µs/req (reference) | reference's CPU µs/req |")
    print("|---|---|---|---|---|")
    for count in counts:
        print(f"| {count} | {_spread(calibration[count])} | {_spread(headline[count])} | "
              f"{statistics.median(load_cpu[count]):.0f} | "
              f"{statistics.median(reference_cpu[count]):.0f} |")
    middle = [statistics.median(headline[count]) for count in counts]
    print(f"\nthe headline moves by {max(middle) - min(middle):.2f} across the counts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
