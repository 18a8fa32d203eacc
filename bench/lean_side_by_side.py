"""Servers measured side by side by the independent lean generator, outside `bench compare`.

``.venv/bin/python bench/lean_side_by_side.py --rounds 3 --seconds 3 --mix`` starts each target
(by default libzmq's proxy in front of 2 REP echo workers, then ``serve`` with 0, 1, 2 and 4
workers on a generated 10,000-book catalog, then 1, 2 and 4 workers with the broker's Python
data path), drives it from 16 processes with one REQ socket each (`libsrv_bench.lean`), and
prints, per round and as medians over the interleaved rounds, requests per second, the ratio
to the first target, and the CPU each of the target's processes spent per request (its own
process first: the broker, the proxy or the single server; then the others). ``--mix`` sends
the read-mostly shares (90% queries, 5% loans, 5% returns); without it, one query by ISBN over
and over.
The CPU is read around the whole lean run, its processes' start-up included (the target
idles then), so rounds shorter than about 3 s overstate it.

It shares no code with bench's load generator, so what it says about a server does not depend
on how bench drives it. The figures are in docs/broker.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from libsrv.client import wait_until_serving
from libsrv.generate import isbn_for, write_catalog
from libsrv.protocol import Action, encode_request
from libsrv_bench.lean import lean_throughput, read_mostly_frames
from libsrv_bench.procstat import cpu_seconds, process_tree

PY = sys.executable
TARGETS = {
    "proxy echo": [PY, "-m", "libsrv_bench", "echo", "--workers", "2", "--port", "{port}"],
    **{f"serve -w {n}": [PY, "-m", "libsrv", "serve", "--port", "{port}", "--workers", str(n),
                         "--db", "{db}", "--quiet", "--no-pub"] for n in (0, 1, 2, 4)},
    # the broker on its Python data path, beside the compiled one above (docs/broker.md)
    **{f"serve -w {n} py": [PY, "-m", "libsrv", "serve", "--port", "{port}", "--workers",
                            str(n), "--db", "{db}", "--quiet", "--no-pub", "--data-path",
                            "python"] for n in (1, 2, 4)},
}
READY_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_output(server: subprocess.Popen, output: Path) -> None:
    """Until the server has printed something (its ready line), with a deadline."""
    deadline = time.monotonic() + READY_SECONDS
    while not output.stat().st_size:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{output.name}: the target did not start: "
                               f"{output.read_text()[-500:]!r}")
        time.sleep(0.05)  # a poll with a deadline


def measure(command: list[str], db: Path, frames: list[bytes], clients: int,
            seconds: float) -> tuple[float, list[float]]:
    """One target's round: requests per second, and each of its processes' CPU µs per
    request: the target's own process first (the broker, the proxy, the single server), then
    the others (workers), largest first."""
    port = _free_port()
    argv = [part.format(port=port, db=db) for part in command]
    output = db.with_suffix(".log")
    with output.open("w") as log:  # a file, not a pipe: nothing has to drain it
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    endpoint = f"tcp://127.0.0.1:{port}"
    try:
        _wait_for_output(server, output)  # its ready line (the echo has no ping to wait on)
        if "serve" in argv:
            wait_until_serving(endpoint, timeout=READY_SECONDS)
        pids = process_tree(server.pid)
        before = cpu_seconds(pids)
        result = lean_throughput(endpoint, clients, seconds, frame=frames)
        after = cpu_seconds(pids)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    per = [(after.get(p, 0.0) - before.get(p, 0.0)) / max(1, result.replies) * 1e6
           for p in pids]  # the target's own process first (the broker, or the proxy)
    per = per[:1] + sorted(per[1:], reverse=True)
    return result.throughput, [round(us) for us in per if us >= 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--books", type=int, default=10_000)
    parser.add_argument("--mix", action="store_true", help="90/5/5 instead of one query")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated, the first is the reference ({', '.join(TARGETS)})")
    args = parser.parse_args()
    names = args.targets.split(",")
    folder = Path(tempfile.mkdtemp(prefix="lean-side-"))
    catalog = write_catalog(folder / "catalog.json", args.books)
    frames = read_mostly_frames(4000, args.books) if args.mix else \
        [encode_request(Action.QUERY_ISBN, isbn=isbn_for(args.books // 2))]
    rates: dict[str, list[float]] = {name: [] for name in names}
    costs: dict[str, list[float]] = {name: [] for name in names}
    fronts: dict[str, list[float]] = {name: [] for name in names}
    for number in range(args.rounds):
        line = f"round {number + 1}:"
        for name in names:
            db = folder / f"round{number}.json"
            shutil.copy(catalog, db)
            rate, per = measure(TARGETS[name], db, frames, args.clients, args.seconds)
            rates[name].append(rate)
            costs[name].append(sum(per))
            fronts[name].append(per[0] if per else 0.0)
            line += f" | {name} {rate:,.0f} req/s, µs/req {'+'.join(map(str, per))}"
        print(line, flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    reference = rates[names[0]]
    for name in names:
        ratios = [a / b for a, b in zip(rates[name], reference, strict=True)]
        print(f"{name:>12}: {statistics.median(rates[name]):8,.0f} req/s, "
              f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}), "
              f"server CPU {statistics.median(costs[name]):.0f} µs/req (its own process "
              f"{statistics.median(fronts[name]):.0f})")


if __name__ == "__main__":
    main()
