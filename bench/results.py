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

from bench.load import FIELDS, TIMEOUT, LoadResult, new_histogram

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
FAILURE_CODES = ("INTERNAL", "BAD_REQUEST", "BAD_REPLY")


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


def summarize(result: LoadResult, frame: pd.DataFrame) -> dict[str, Any]:
    measured = frame[~frame["warmup"]]
    answered = int(measured["recv_ms"].notna().sum())
    figures: dict[str, Any] = {
        "requests": len(measured),
        "answered": answered,
        "throughput": answered / result.elapsed_s if result.elapsed_s > 0 else 0.0,
        **histogram_figures(result.corrected),
        "timeouts": int(measured["timeout"].sum()),
        "errors": int(measured["code"].isin(FAILURE_CODES).sum()),
        "codes": {str(k): int(v) for k, v in measured["code"].value_counts().items()},
        "uncorrected": histogram_figures(result.uncorrected),
        "warmup_requests": int(frame["warmup"].sum()),
        "measured_seconds": result.elapsed_s,
        "load_processes": result.processes,
    }
    return figures


def write_run(folder: Path, summary: dict[str, Any], frame: pd.DataFrame, result: LoadResult,
              verdict: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "samples.csv.gz", index=False)
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
