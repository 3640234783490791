"""What a failure on this machine says: the events the parent makes for an item it saw fail.

A worker that died or was killed at its item's deadline fails the item it was running (its
exit code and signal, its pid, its last log lines); an item no worker started is cancelled
under ``stop_on_error``. The Dask backend has its own (``backends/dask/failures.py``): there a
worker is named by its address and its exit code is unknown.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ...errors import ItemCancelled, ItemTimeout, WorkerDied, qualified_name
from ...events import Done, Error
from .handle import WorkerHandle


def cancelled(offset: int, now: float) -> list:
    """``offset`` will not run: an earlier item failed and ``stop_on_error`` is set."""
    message = "cancelled: an earlier item failed and stop_on_error is set"
    return [Error(offset, 0, now, qualified_name(ItemCancelled), message), Done(offset, 0, now)]


def culprit(worker: WorkerHandle, held: list[int], strikes: dict[int, int]) -> int | None:
    """The item a dead worker's death fails: the one it was running.

    When no item was running (death between items), the first held item takes a strike and
    fails on its second, so an item that kills workers before starting cannot loop; until
    then, None.
    """
    running = worker.running.value
    if running in held:
        return running
    first = held[0]
    strikes[first] = strikes.get(first, 0) + 1
    return first if strikes[first] >= 2 else None


def died(worker: WorkerHandle, offset: int, item_timeout: float | None) -> list:
    """The ``error`` and ``done`` of ``offset``, failed by its worker's death or deadline."""
    if worker.killed_for_timeout:
        kind = ItemTimeout
        message = f"item {offset} timed out after {item_timeout} s; its worker (pid {worker.pid}) was killed"
    else:
        kind = WorkerDied
        message = f"worker (pid {worker.pid}) exited with {worker.exit_description()} while running item {offset}"
    last_logs = worker.last_logs(offset)
    if last_logs:
        message += "; last log lines:\n" + "\n".join(f"  {line}" for line in last_logs)
    now = time.time()
    # A dead worker or a timeout says nothing about the item's next attempt: retryable
    # whatever ``retry_on`` says (issue 19).
    return [Error(offset, worker.pid, now, qualified_name(kind), message, retryable=True),
            Done(offset, worker.pid, now)]


def next_deadline(workers: Iterable[WorkerHandle], item_timeout: float | None) -> float | None:
    """When the first running item is due (``time.monotonic``), if items have a timeout."""
    if item_timeout is None:
        return None
    starts = [w.started_at for w in workers if w.started_at is not None and not w.killed_for_timeout]
    return min(starts) + item_timeout if starts else None


def kill_overdue(workers: Iterable[WorkerHandle], item_timeout: float) -> None:
    """Kill each worker whose item is past its deadline; its death then fails the item."""
    now = time.monotonic()
    for worker in workers:
        if worker.started_at is not None and now - worker.started_at >= item_timeout:
            worker.killed_for_timeout = True
            worker.process.kill()
