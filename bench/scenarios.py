"""The scenarios of issue 6 (and the memory figure of issue 3): what runs, on which
implementations, and which figures make the table's rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import recorder, workloads

MPMQ, RECORD, PPE, PPE_CHUNKED, POOL = "mpmq", "mpmq+record", "ppe", "ppe-chunked", "pool"
IMPLS = (MPMQ, RECORD, PPE, PPE_CHUNKED, POOL)
COLUMN = {MPMQ: "mpmq", RECORD: "mpmq+record", PPE: "PPE cs=1", PPE_CHUNKED: "PPE chunked",
          POOL: "Pool.map"}
BASELINE = PPE  # ratios in the table are against ProcessPoolExecutor with its default chunksize
WORKERS = 2  # the machine of issue 6 has 2 cores


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure taken from every run of a scenario."""

    label: str  # appended to the scenario's title; "" for its main figure
    metric: str  # a field of measure.Measurement
    unit: str


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str  # may hold {n} (the item or message count), filled from the size in use
    function: Callable[..., Any]
    make_items: Callable[[bool], list[dict[str, Any]]]  # quick -> items
    impls: tuple[str, ...] = IMPLS
    rows: tuple[Row, ...] = (Row("", "wall_s", "s"),)
    forwards_logs: bool = False  # peers need the QueueHandler forwarder; messages are counted
    track_latency: bool = False
    max_repeat: int | None = None  # cap for scenarios whose single run is long
    check: Callable[[list[dict[str, Any]], list[Any]], str | None] | None = None
    pool_task: Callable[[Any], Any] | None = None  # what Pool.map maps, if not the function itself
    result_metric: str | None = None  # the figure the (one) item measures itself and returns

    def items(self, quick: bool) -> list[dict[str, Any]]:
        return self.make_items(quick)

    def expected_messages(self, items: list[dict[str, Any]]) -> int:
        if self.track_latency:
            return len(items)
        return sum(item.get("n", 0) for item in items) if self.forwards_logs else 0

    def name(self, quick: bool) -> str:
        items = self.items(quick)
        n = self.expected_messages(items) if self.forwards_logs else len(items)
        n = items[0]["n"] if self.result_metric else n
        size = items[0].get("size", 0) // MB if items else 0
        return self.title.format(n=f"{n:,}", size=size)


def _check_in_order(items: list[dict[str, Any]], results: list[Any]) -> str | None:
    if results != [item["i"] for item in items]:
        return "results missing or out of item order"
    return None


def _check_incremented(items: list[dict[str, Any]], results: list[Any]) -> str | None:
    if results != [item["i"] + 1 for item in items]:
        return "results missing or out of item order"
    return None


def _check_sizes(items: list[dict[str, Any]], results: list[Any]) -> str | None:
    sizes = [len(r) if isinstance(r, bytes) else None for r in results]
    if sizes != [item["size"] for item in items]:
        return f"result sizes {sizes[:4]} != {[item['size'] for item in items][:4]}"
    return None


def _check_count(items: list[dict[str, Any]], results: list[Any]) -> str | None:
    if len(results) != len(items):
        return f"{len(results)} results for {len(items)} items"
    return None


def _trivial(n: int) -> Callable[[bool], list[dict[str, Any]]]:
    return lambda quick: [{"i": i} for i in range(n)]


MB = 1024 * 1024
RSS_ROWS = (
    Row(": parent peak RSS", "parent_rss_mb", "MB"),
    Row(": workers peak RSS", "workers_rss_mb", "MB"),
    Row(": wall time", "wall_s", "s"),
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("trivial3", "{n} trivial items, end to end", workloads.trivial, _trivial(3),
             check=_check_in_order),
    Scenario("trivial2k", "{n} trivial items, 2 processes", workloads.trivial, _trivial(2000),
             check=_check_in_order),
    Scenario("trivial10k", "{n} trivial items, 2 processes", workloads.trivial, _trivial(10_000),
             check=_check_in_order),
    Scenario("log100k", "{n} log messages delivered (4 items)", workloads.log_lines,
             lambda quick: [{"n": 25_000} for _ in range(4)],
             forwards_logs=True, check=_check_count),
    Scenario("result20mb", "4 items x {size} MB results", workloads.big_result,
             lambda quick: [{"size": (5 if quick else 20) * MB} for _ in range(4)],
             check=_check_sizes),
    Scenario("sleepcpu", "parent CPU while 2 items sleep 2 s", workloads.sleep,
             lambda quick: [{"seconds": 2.0} for _ in range(2)],
             impls=(MPMQ, RECORD, PPE), rows=(Row("", "parent_cpu_s", "s"),), max_repeat=3,
             check=_check_count),
    Scenario("latency", "log latency, then 1 s idle", workloads.log_then_idle,
             lambda quick: [{"idle": 1.0} for _ in range(2)],
             impls=(MPMQ, RECORD, PPE), rows=(Row("", "latency_ms", "ms"),), forwards_logs=True,
             track_latency=True, max_repeat=3, check=_check_count),
    Scenario("log1m", "{n} log messages (4 items)", workloads.log_lines,
             lambda quick: [{"n": 50_000 if quick else 250_000} for _ in range(4)],
             impls=(MPMQ, RECORD, PPE), rows=RSS_ROWS, forwards_logs=True, max_repeat=2,
             check=_check_count),
    Scenario("recorder", "the recorder alone: {n} events written (per CPU-second)", recorder.recorder_throughput,
             lambda quick: [{"n": 200_000 if quick else 1_000_000}], impls=(MPMQ,),
             rows=(Row("", "events_per_s", "events/s"),), max_repeat=3, result_metric="events_per_s"),
)

# Issue 18's scale rows: a million trivial items at the stdlib pools' cost, in time and memory.
SCALE_ROWS = (Row("", "wall_s", "s"), Row(": parent peak RSS", "parent_rss_mb", "MB"))
SCALE = (
    Scenario("scale100k", "{n} trivial items, 2 processes, inc(**item)", workloads.inc, _trivial(100_000),
             impls=(MPMQ, RECORD, POOL), rows=SCALE_ROWS, check=_check_incremented,
             pool_task=workloads.inc_item),
    Scenario("scale1m", "{n} trivial items, 2 processes, inc(**item)", workloads.inc,
             lambda quick: [{"i": i} for i in range(200_000 if quick else 1_000_000)],
             impls=(MPMQ, RECORD, POOL), rows=SCALE_ROWS, max_repeat=3, check=_check_incremented,
             pool_task=workloads.inc_item),
)
SCENARIOS += SCALE

BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}


def select(only: str | None) -> list[Scenario]:
    """Scenarios whose key or title contains ``only`` (case-insensitive); all when None."""
    if not only:
        return list(SCENARIOS)
    needle = only.lower()
    return [s for s in SCENARIOS if needle in s.key.lower() or needle in s.title.lower()
            or needle in s.name(False).lower() or needle in s.name(True).lower()]
