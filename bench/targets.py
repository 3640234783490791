"""The targets of issues 6, 4 and 18, checked against one run's medians."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from tabulate import tabulate

from .report import Medians
from .scenarios import BY_KEY, MPMQ, POOL, PPE, PPE_CHUNKED, RECORD


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run
    scenario: str = ""  # the key of the scenario it is measured on

    @property
    def status(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def evaluate(meds: Medians, quick: bool, keys: set[str] | None = None) -> list[Verdict]:
    """The targets of the scenarios in ``keys`` (default all), in issue order."""
    from .targets_scale import scale_targets

    verdicts = _all(meds, quick) + scale_targets(meds, quick)
    return [v for v in verdicts if keys is None or v.scenario in keys]


def _all(meds: Medians, quick: bool) -> list[Verdict]:

    def get(key: str, impl: str, metric: str = "wall_s") -> float | None:
        return meds.get((key, impl), {}).get(metric)

    def name(key: str) -> str:
        return BY_KEY[key].name(quick)

    def ratio(target: str, top: float | None, bottom: float | None, test: Callable[[float], bool],
              what: str) -> Verdict:
        if not top or not bottom:
            return Verdict(target, "n/a", None)
        value = top / bottom
        return Verdict(target, f"{value:.2f}x {what}", test(value))

    def added_ms(target: str, top: float | None, bottom: float | None, test: Callable[[float], bool]) -> Verdict:
        if top is None or bottom is None:
            return Verdict(target, "n/a", None)
        added = (top - bottom) * 1000
        return Verdict(target, f"{added:+.1f} ms ({top * 1000:.1f} ms vs {bottom * 1000:.1f} ms)", test(added))

    def absolute(target: str, value: float | None, test: Callable[[float], bool], unit: str) -> Verdict:
        if value is None:
            return Verdict(target, "n/a", None)
        shown = f"{value:,.0f}" if unit == "events/s" else f"{value:.3g}"
        return Verdict(target, f"{shown} {unit}", test(value))

    t10k = get("trivial10k", MPMQ)
    forwarders = {impl: get("log100k", impl) for impl in (PPE, PPE_CHUNKED, POOL)}
    fastest = min((v, k) for k, v in forwarders.items() if v) if any(forwarders.values()) else (None, "")
    checks = [
        ratio(f"{name('trivial3')}: within 1.5x PPE", get("trivial3", MPMQ), get("trivial3", PPE),
              lambda r: r <= 1.5, "PPE"),
        absolute(f"{name('trivial10k')}: <= 0.15 s", t10k, lambda v: v <= 0.15, "s"),
        ratio(f"{name('trivial10k')}: > 6x faster than PPE cs=1", get("trivial10k", PPE), t10k,
              lambda r: r > 6, "faster"),
        ratio(f"{name('trivial10k')}: within 3x Pool.map", t10k, get("trivial10k", POOL),
              lambda r: r <= 3, "Pool.map"),
        absolute(f"{name('trivial10k')} with record=: <= 0.30 s (2x the 0.15 s target)",
                 get("trivial10k", RECORD), lambda v: v <= 0.30, "s"),
        ratio(f"{name('log100k')}: >= 5x faster than the fastest QueueHandler forwarder",
              fastest[0], get("log100k", MPMQ), lambda r: r >= 5, f"faster (vs {fastest[1]})"),
        ratio(f"{name('log100k')}: record= overhead <= 1.10x", get("log100k", RECORD),
              get("log100k", MPMQ), lambda r: r <= 1.10,
              "mpmq" + cpu_note(get("log100k", RECORD, "all_cpu_s"), get("log100k", MPMQ, "all_cpu_s"))),
        ratio(f"{name('result20mb')}: within 1.2x PPE", get("result20mb", MPMQ), get("result20mb", PPE),
              lambda r: r <= 1.2, "PPE"),
        absolute(f"{name('sleepcpu')}: < 0.05 s", get("sleepcpu", MPMQ, "parent_cpu_s"),
                 lambda v: v < 0.05, "s"),
        absolute(f"{name('latency')}: every message <= 50 ms", get("latency", MPMQ, "latency_ms"),
                 lambda v: v <= 50, "ms (worst)"),
        absolute(f"{name('log1m')}: parent peak RSS < 150 MB", get("log1m", MPMQ, "parent_rss_mb"),
                 lambda v: v < 150, "MB"),
        absolute(f"recording ({name('log100k')}) >= 200,000 events/s",
                 get("log100k", RECORD, "events_per_s"), lambda v: v >= 200_000, "events/s"),
        # issue 18: record= costs next to nothing, and the recorder keeps up with anything
        ratio(f"{name('trivial10k')}: record= overhead <= 1.5x", get("trivial10k", RECORD),
              get("trivial10k", MPMQ), lambda r: r <= 1.5,
              "mpmq" + cpu_note(get("trivial10k", RECORD, "all_cpu_s"), get("trivial10k", MPMQ, "all_cpu_s"))),
        added_ms(f"{name('trivial3')}: record= adds <= 3 ms", get("trivial3", RECORD), get("trivial3", MPMQ),
                 lambda ms: ms <= 3),
        absolute(f"{name('sleepcpu')} with record=: <= 0.015 s", get("sleepcpu", RECORD, "parent_cpu_s"),
                 lambda v: v <= 0.015, "s"),
        absolute(f"{name('recorder')}: >= 1,000,000 events/s", get("recorder", MPMQ, "events_per_s"),
                 lambda v: v >= 1_000_000, "events/s"),
    ]
    keys = ["trivial3", *["trivial10k"] * 4, "log100k", "log100k", "result20mb", "sleepcpu",
            "latency", "log1m", "log100k", "trivial10k", "trivial3", "sleepcpu", "recorder"]
    return [dataclasses.replace(v, scenario=key) for v, key in zip(checks, keys, strict=True)]


def cpu_note(top: float | None, bottom: float | None) -> str:
    """The CPU ratio beside a wall-time ratio: when the cores are already busy, work a run adds
    can only run in their spare time, so the CPU ratio bounds what its wall time can reach."""
    return f" (CPU, all processes: {top / bottom:.2f}x)" if top and bottom else ""


def targets_table(verdicts: list[Verdict]) -> str:
    rows = [(v.target, v.measured, v.status) for v in verdicts]
    return tabulate(rows, headers=["target", "measured", "result"], tablefmt="github",
                    disable_numparse=True)
