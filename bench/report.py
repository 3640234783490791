"""The tables: medians per scenario and implementation, ratios against PPE, footnotes."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from .scenarios import BASELINE, COLUMN, IMPLS, MPMQ, Scenario

Runs = dict[tuple[str, str], list[dict[str, Any]]]  # (scenario key, impl) -> measurements
Medians = dict[tuple[str, str], dict[str, float]]
METRICS = ("wall_s", "parent_cpu_s", "all_cpu_s", "parent_rss_mb", "workers_rss_mb", "latency_ms",
           "events_per_s", "recorded_events", "messages")


def medians(runs: Runs) -> Medians:
    """Median of every metric over the successful runs of each (scenario, impl)."""
    out: Medians = {}
    for cell, measurements in runs.items():
        good = [m for m in measurements if not m.get("error")]
        figures = {}
        for metric in METRICS:
            values = [m[metric] for m in good if m.get(metric) is not None]
            if values:
                figures[metric] = statistics.median(values)
        out[cell] = figures
    return out


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, three significant digits (events/s as a whole number)."""
    if value is None:
        return "n/a"
    if unit in ("events/s", "messages"):
        return f"{value:,.0f} {unit}"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}"


class Footnotes:
    """Numbered errors, each shown once whatever the number of cells it explains."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def mark(self, error: str) -> str:
        if error not in self.notes:
            self.notes.append(error)
        return f"[{self.notes.index(error) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] {note}" for i, note in enumerate(self.notes, 1)]


def results_table(scenarios: Iterable[Scenario], runs: Runs, quick: bool, notes: Footnotes) -> str:
    """The main table: one line per scenario row, a column per implementation."""
    meds = medians(runs)
    headers = ["scenario", *(COLUMN[i] for i in IMPLS), "mpmq parent RSS", "mpmq parent CPU",
               "mpmq workers RSS"]
    lines = []
    for scenario in scenarios:
        for n, row in enumerate(scenario.rows):
            line = [scenario.name(quick) + row.label]
            base = meds.get((scenario.key, BASELINE), {}).get(row.metric)
            for impl in IMPLS:
                line.append(_cell(scenario, impl, row.metric, row.unit, base, runs, meds, notes))
            mine = meds.get((scenario.key, MPMQ), {})
            if n == 0:
                line += [fmt(mine.get("parent_rss_mb"), "MB"), fmt(mine.get("parent_cpu_s"), "s"),
                         fmt(mine.get("workers_rss_mb"), "MB")]
            else:
                line += ["", "", ""]
            lines.append(line)
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def _cell(scenario: Scenario, impl: str, metric: str, unit: str, base: float | None,
          runs: Runs, meds: Medians, notes: Footnotes) -> str:
    if impl not in scenario.impls:
        return ""
    measurements = runs.get((scenario.key, impl), [])
    value = meds.get((scenario.key, impl), {}).get(metric)
    errors = [m["error"] for m in measurements if m.get("error")]
    if value is None:
        return "n/a " + notes.mark(errors[0] if errors else f"{metric} not measured")
    text = fmt(value, unit)
    if base and impl != BASELINE:
        text += f" ({value / base:.2f}x)"
    if errors:  # some repetitions failed: the median is of the others
        text += " " + notes.mark(f"{len(errors)} of {len(measurements)} runs failed: {errors[0]}")
    return text
