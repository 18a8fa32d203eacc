"""A run's results: the per-request DataFrame, the summary, and the run folder on disk.

A run folder holds ``summary.json`` (figures, the whole configuration, the machine),
``samples.csv.gz`` (one row per request), ``latency.hdr`` (the merged HdrHistograms, encoded)
and ``violations.json`` (the verifier's findings).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import zmq
from hdrh.histogram import HdrHistogram

from libsrv.protocol import Code
from libsrv_bench.history import FAILURE_CODES, FIELDS, TIMEOUT
from libsrv_bench.load import LoadResult, new_histogram
from libsrv_bench.workloads import WRITES

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
KEEPING_UP = 0.95  # an open-loop run that achieves less than this share of its rate fell behind
SATURATED = 0.90  # a load process busier than this (CPU / wall time) may be the bottleneck
LATE_START = 0.05  # s: a load process that began this long after the others missed part of the run


def records_frame(result: LoadResult) -> pd.DataFrame:
    """One row per request; times in ms from the run's start; `latency_ms` from the intended
    send (corrected), `service_ms` from the actual send (uncorrected); NaN when timed out."""
    frame = pd.DataFrame.from_records(result.records, columns=list(FIELDS))
    for column in ("t_intended", "t_send", "t_recv"):
        frame[column] = (frame[column].astype("float64") - result.t0) / 1e6
    frame = frame.rename(columns={"t_intended": "intended_ms", "t_send": "send_ms",
                                  "t_recv": "recv_ms"})
    frame["latency_ms"] = frame["recv_ms"] - frame["intended_ms"]
    frame["service_ms"] = frame["recv_ms"] - frame["send_ms"]
    frame["timeout"] = frame["code"] == TIMEOUT
    frame["warmup"] = frame["intended_ms"] < (result.measure_from - result.t0) / 1e6
    return frame


def histogram_figures(hist: HdrHistogram) -> dict[str, float]:
    if hist.get_total_count() == 0:
        return {name: float("nan") for name in [*PERCENTILES, "max_ms"]}
    out = {name: hist.get_value_at_percentile(p) / 1e6 for name, p in PERCENTILES.items()}
    out["max_ms"] = hist.get_max_value() / 1e6
    return out


def machine_info() -> dict[str, Any]:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": _cpu_model(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def throughput_figures(result: LoadResult, frame: pd.DataFrame,
                       offered: float | None) -> dict[str, Any]:
    """Throughput as answers per second of wall time: every reply received from the end of the
    warm-up to the last reply of the run, over that time. An open-loop run also says what it
    offered and how far behind its schedule it fell."""
    start_ms = (result.measure_from - result.t0) / 1e6
    answers = frame["recv_ms"].dropna()
    answers = answers[answers >= start_ms]
    last_ms = float(answers.max()) if len(answers) else start_ms
    seconds = (last_ms - start_ms) / 1e3
    figures: dict[str, Any] = {
        "answered": len(answers),
        "measured_seconds": round(seconds, 3),
        "throughput": len(answers) / seconds if seconds > 0 else 0.0,
    }
    if result.end is not None and len(answers):
        figures["overrun_seconds"] = round(
            max(0.0, last_ms / 1e3 - (result.end - result.t0) / 1e9), 3)
    if offered:
        measured = frame[~frame["warmup"]]
        lag = (measured["send_ms"] - measured["intended_ms"]).dropna()
        figures.update(
            offered_rate=offered,
            behind_schedule_ms={"p50": float(lag.median()) if len(lag) else 0.0,
                                "max": float(lag.max()) if len(lag) else 0.0},
            fell_behind=bool(figures["throughput"] < KEEPING_UP * offered))
    return figures


def load_figures(result: LoadResult, requests: int) -> dict[str, Any]:
    """The load processes' own cost: CPU seconds, busy share of their wall time, CPU per
    request, and whether any was saturated (then the figures may measure the generator)."""
    busy = [c / w if w > 0 else 0.0 for c, w in
            zip(result.cpu_seconds, result.wall_seconds, strict=True)]
    cpu = sum(result.cpu_seconds)
    return {"processes": result.processes,
            "cpu_seconds": [round(c, 3) for c in result.cpu_seconds],
            "busy": [round(b, 3) for b in busy],
            "cpu_us_per_request": round(cpu / requests * 1e6, 1) if requests else None,
            "saturated": any(b >= SATURATED for b in busy),
            "late_start_s": round(max(result.late_seconds, default=0.0), 3),
            # which loop drove the clients (libsrv_bench.client_loop): "compiled", "python",
            # or both when processes differed
            "loop": "+".join(sorted(set(result.loops))) or "python",
            # why the Python loop drove ZeroMQ clients when it was not asked for
            "loop_note": next((note for note in result.loop_notes if note), "")}


def summarize(result: LoadResult, frame: pd.DataFrame,
              offered: float | None = None) -> dict[str, Any]:
    measured = frame[~frame["warmup"]]
    figures: dict[str, Any] = {
        "requests": len(measured),
        **throughput_figures(result, frame, offered),
        **histogram_figures(result.corrected),
        "timeouts": int(measured["timeout"].sum()),
        "errors": int(measured["code"].isin(FAILURE_CODES).sum()),
        "codes": {str(k): int(v) for k, v in measured["code"].value_counts().items()},
        "writes_acknowledged": int((frame["action"].isin([str(a) for a in WRITES])
                                    & (frame["code"] == Code.OK)).sum()),
        "uncorrected": histogram_figures(result.uncorrected),
        "warmup_requests": int(frame["warmup"].sum()),
        "load_processes": result.processes,
        "load": load_figures(result, len(frame)),
    }
    return figures


def new_run_folder(root: Path, name: str) -> Path:
    """A new folder `root/name`, or `root/name-2`, `-3`, ... : an earlier run is never
    replaced."""
    root.mkdir(parents=True, exist_ok=True)
    for number in range(1, 10_000):
        folder = root / (name if number == 1 else f"{name}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"too many runs named {name} in {root}")


def write_run(folder: Path, summary: dict[str, Any], frame: pd.DataFrame, result: LoadResult,
              verdict: dict[str, Any]) -> None:
    # gzip's fastest level: half the time of its default for a quarter more bytes (every
    # request is a row: seconds for a long run)
    frame.to_csv(folder / "samples.csv.gz", index=False,
                 compression={"method": "gzip", "compresslevel": 1})
    (folder / "latency.hdr").write_text(json.dumps({
        "corrected": result.corrected.encode().decode(),
        "uncorrected": result.uncorrected.encode().decode()}))
    (folder / "violations.json").write_text(json.dumps(verdict, indent=2, default=str))
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def read_summary(folder: Path | str) -> dict[str, Any]:
    return json.loads((Path(folder) / "summary.json").read_text())


def read_samples(folder: Path | str) -> pd.DataFrame:
    return pd.read_csv(Path(folder) / "samples.csv.gz")


def read_histogram(folder: Path | str, which: str = "corrected") -> HdrHistogram:
    hist = new_histogram()
    hist.decode_and_add(json.loads((Path(folder) / "latency.hdr").read_text())[which].encode())
    return hist
