"""The scale and latency targets of issue 18, checked against one run's medians.

Kept apart from ``targets.py`` (issues 6 and 4, and the recording rows of issue 18) so each
set of targets reads on its own; ``targets.evaluate`` prints them all in one table.
"""

from __future__ import annotations

from .report import Medians
from .scenarios import BY_KEY, MPMQ, POOL, PPE, RECORD
from .targets import Verdict


def scale_targets(meds: Medians, quick: bool) -> list[Verdict]:
    """A million items at the stdlib pools' cost, and live logs as fast as a forwarder's."""

    def get(key: str, impl: str, metric: str = "wall_s") -> float | None:
        return meds.get((key, impl), {}).get(metric)

    def ratio(key: str, target: str, top: float | None, bottom: float | None, limit: float, what: str) -> Verdict:
        name = BY_KEY[key].name(quick)
        if not top or not bottom:
            return Verdict(f"{name}: {target}", "n/a", None, key)
        value = top / bottom
        return Verdict(f"{name}: {target}", f"{value:.2f}x {what}", value <= limit, key)

    scale = "scale1m"
    return [
        ratio(scale, "within 2x Pool.map", get(scale, MPMQ), get(scale, POOL), 2.0, "Pool.map"),
        ratio(scale, "parent peak RSS within 1.3x Pool.map's", get(scale, MPMQ, "parent_rss_mb"),
              get(scale, POOL, "parent_rss_mb"), 1.3, "Pool.map's"),
        ratio(scale, "with record= within 1.5x unrecorded", get(scale, RECORD), get(scale, MPMQ), 1.5, "mpmq"),
        ratio("latency", "within 2x PPE's", get("latency", MPMQ, "latency_ms"), get("latency", PPE, "latency_ms"),
              2.0, "PPE"),
        ratio("latency", "with record= within 2x PPE's", get("latency", RECORD, "latency_ms"),
              get("latency", PPE, "latency_ms"), 2.0, "PPE"),
    ]
