"""Figures from run results, as matplotlib Figures: the report saves them, notebooks show them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from hdrh.histogram import HdrHistogram

PERCENTILE_TICKS = (0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99)


def _finish_latency_axes(ax: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Log latency axis, labels, grid and legend, shared by the latency figures."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def latency_percentiles(histograms: dict[str, HdrHistogram]) -> plt.Figure:
    """Latency by percentile, one line per run (log scales: the tail is what matters)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, hist in histograms.items():
        if hist.get_total_count() == 0:
            continue
        points = [(1 / (1 - p / 100), hist.get_value_at_percentile(p) / 1e6)
                  for p in PERCENTILE_TICKS]
        ax.plot([x for x, _ in points], [y for _, y in points], marker=".", label=name)
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 10, 100, 1000, 10000])
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    _finish_latency_axes(ax, "percentile", "latency (ms, from intended send)",
                         "Latency distribution per configuration")
    return fig


def latency_vs_clients(table: pd.DataFrame) -> plt.Figure:
    """p50 and p99 against clients, one pair of lines per target, workers and workload."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (target, workers, workload), group in table.groupby(["target", "workers", "workload"]):
        if group["clients"].nunique() < 2:
            continue  # a single point is no line; it is in the table
        group = group.sort_values("clients")
        label = f"{target}, {workers} workers, {workload}"
        ax.plot(group["clients"], group["p50_ms"], marker="o", label=f"p50 {label}")
        ax.plot(group["clients"], group["p99_ms"], marker="^", ls="--", label=f"p99 {label}")
    ax.set_xscale("log", base=2)
    _finish_latency_axes(ax, "concurrent clients", "latency (ms)",
                         "p50 and p99 latency against the number of clients")
    return fig


def bars(table: pd.DataFrame, column: str, title: str, ylabel: str) -> plt.Figure:
    """One bar per run (red for runs without the lock), labelled with its value."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    labels = table["name"].tolist()
    unsafe = table["unsafe"] if "unsafe" in table else [False] * len(table)
    ax.bar(range(len(labels)), table[column], color=["#c0392b" if u else "#2e86c1"
                                                     for u in unsafe])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    for i, value in enumerate(table[column]):
        ax.annotate(f"{value:,.2f}" if value < 100 else f"{value:,.0f}", (i, value),
                    ha="center", va="bottom", fontsize=7)
    return fig
