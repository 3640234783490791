"""What a failure on a cluster says: the events the parent makes for an item it saw fail.

Each names the worker by its address (a pid means little across machines) and says what a
Dask client cannot know (the exit code of a worker that died, issue 17).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError
from typing import Any

from ...errors import ItemCancelled, ItemTimeout, WorkerDied, qualified_name
from ...events import Done, Error, Log, Started
from ..item_runner import error_event
from .tasks import Task


def worker_died(task: Task, offset: int, exc: BaseException) -> list:
    """The worker running ``offset`` died (``KilledWorker``, or the task cancelled: ``backend._failed``): its
    last log lines, if any arrived."""
    worker = task.worker or _address(getattr(exc, "last_worker", None))
    message = f"Dask worker {worker} died while running item {offset}; its exit code is unknown on a cluster"
    if isinstance(exc, CancelledError):  # backend._failed: not KilledWorker, the scheduler cancelled the task
        message += "; not run again: it held the last copy of shared_data, which the item needs"
    if task.last_logs and task.running == offset:
        message += "; last log lines:\n" + "\n".join(f"  {line}" for line in task.last_logs)
    now = time.time()
    return [Error(offset, task.pid, now, qualified_name(WorkerDied), message, worker=worker,
                  retryable=True),  # a dead worker says nothing of the next attempt (issue 19)
            Done(offset, task.pid, now, worker=worker)]


def timed_out(task: Task, offset: int, seconds: float) -> list:
    message = f"item {offset} timed out after {seconds} s; its Dask worker {task.worker} is being restarted"
    now = time.time()
    return [Error(offset, task.pid, now, qualified_name(ItemTimeout), message, worker=task.worker,
                  retryable=True),  # nor does a timeout: retryable whatever retry_on says
            Done(offset, task.pid, now, worker=task.worker)]


def rerun_announced(task: Task) -> Log:
    """The scheduler (``allowed-failures`` above 0) runs the task of a dead worker again."""
    offset = task.running
    message = (f"attempt {task.runs - 1} ended: Dask worker {task.worker} died while running item {offset} "
               f"(exit code unknown on a cluster); the scheduler runs the item again, as attempt {task.runs}")
    return Log(offset, task.pid, time.time(), logging.WARNING, "mpmq", message, worker=task.worker)  # type: ignore[arg-type]


def could_not_run(offset: int, exc: BaseException) -> list:
    """The task failed before running its items (e.g. the function could not be loaded there)."""
    now = time.time()
    return [Started(offset, 0, now), error_event(offset, 0, exc), Done(offset, 0, now)]


def cancelled(offset: int, now: float) -> list:
    message = "cancelled: an earlier item failed and stop_on_error is set"
    return [Error(offset, 0, now, qualified_name(ItemCancelled), message), Done(offset, 0, now)]


def _address(worker: Any) -> str:
    return getattr(worker, "address", None) or str(worker)
