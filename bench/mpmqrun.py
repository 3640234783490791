"""mpmq used the way its README shows: subclass ``MPmq``, override ``process_message``.

Imported only by ``bench.one`` for the mpmq columns, so a missing or broken engine turns
those cells into "n/a" (with the error as a footnote) instead of stopping the benchmark.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from contextlib import closing
from typing import Any

from mpmq import MPmq

from .measure import Sink
from .workloads import MARKER


class Counter(MPmq):
    """Counts marked messages inline: the cheapest handler a user could write."""

    count = 0

    def process_message(self, offset: int, message: str) -> None:
        if MARKER in message:
            self.count += 1


class LatencyCounter(MPmq):
    """Hands every message to a ``Sink`` that measures its delivery latency."""

    sink: Sink

    def process_message(self, offset: int, message: str) -> None:
        self.sink(message)


def start_method_option() -> str | None:
    """The constructor keyword that picks the start method, if there is one.

    ``MPmq.__init__`` may pass ``**options`` on to a base class, so every ``__init__`` along
    the MRO is asked; ``start_method`` wins over ``context`` (which also takes a name).
    """
    names: set[str] = set()
    for cls in MPmq.__mro__:
        if "__init__" in vars(cls):
            try:
                names.update(inspect.signature(cls.__init__).parameters)
            except (TypeError, ValueError):
                continue
    return next((name for name in ("start_method", "context") if name in names), None)


# Asked once, as this module is imported, before any measurement: inspect.signature of a
# builtin ``__init__`` compiles tokenize's regular expressions, 1.5 ms that were timed as
# part of every mpmq run (and none of the peers').
START_METHOD_OPTION = start_method_option()


def run_mpmq(
    function: Callable[..., Any],
    items: list[dict[str, Any]],
    workers: int,
    start_method: str,
    record: str | None = None,
    sink: Sink | None = None,
) -> list[Any]:
    """One ``execute()``, end to end; messages go to ``sink`` (counted into ``sink.count``)."""
    kwargs: dict[str, Any] = {
        "function": function,
        "process_data": items,
        "shared_data": {},
        "processes_to_start": workers,
    }
    if START_METHOD_OPTION:
        kwargs[START_METHOD_OPTION] = start_method
    latency = sink is not None and sink.track_latency
    runner = LatencyCounter(**kwargs) if latency else Counter(**kwargs)
    if latency:
        runner.sink = sink
    results = runner.execute(record=record) if record else runner.execute()
    if sink is not None and not latency:
        sink.count = runner.count
    return results


def raise_on_failed(results: list[Any]) -> None:
    """Raise if any item failed; called after the measurement: Pool.map's column pays no such
    scan (at 200,000 items it was 18 % of mpmq's time)."""
    failed = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if failed:
        offset, error = failed[0]
        raise RuntimeError(f"{len(failed)} item(s) failed; item {offset}: {error!r}")


def count_recorded_events(path: str) -> int | None:
    """Events in the recording: its batches' counts (format 2), else the rows of its event
    table (the table whose name has "event" in it).

    The schema belongs to the engine; this only guesses the table, and says None if it can't.
    """
    if not os.path.exists(path):
        return None
    import sqlite3  # here, after the measurement: a recorded run's own import of it is its cost

    with closing(sqlite3.connect(path)) as db:
        names = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
        if "batches" in names:  # format 2 (issue 18): one row per received batch
            return db.execute("select coalesce(sum(count), 0) from batches").fetchone()[0]
        tables = sorted((n for n in names if "event" in n.lower()), key=len)
        if not tables:
            return None
        return db.execute(f'select count(*) from "{tables[0]}"').fetchone()[0]
