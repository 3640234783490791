"""What a Dask worker runs: one task, a chunk of items run one after the other.

The items run through the same ``ItemRunner`` as in a local worker process
(``backends/item_runner.py``): the same calling convention, the same captured logging (root
logger at DEBUG while an item runs), the same events and failures. Its events leave through
``sender.TopicSender``, results included; the task's own return value (how many batches it
sent) is never fetched, so no result waits on a worker for the parent (a worker that dies
later would make the scheduler compute it again, issue 17).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..item_runner import ItemRunner
from .sender import TopicSender
from .tasks import task_key

# One runner per worker process, kept across tasks and runs: making one installs its log
# handler in the root logger, and a second would capture every record twice. Workers run one
# task at a time (one thread each, checked before a run starts), so one runner is enough.
_runner: ItemRunner | None = None


def run_chunk(
    function: Callable, style: str, shared_data: Mapping, topic: str, task_id: int,
    offsets: list[int], items: list[Any], announce_starts: bool, retry_on: tuple | None = None,
) -> int:
    """Run ``items`` (at ``offsets``) and send their events; the number of batches sent.

    ``retry_on`` (issue 19): the exception types the item runner marks retryable (None: the
    run has no retries)."""
    from distributed import get_worker

    worker = get_worker()
    sender = TopicSender(worker, topic, task_id, {"worker": worker.address})
    runner = _runner_for(sender, function, shared_data, style, announce_starts)
    runner.retry_on = retry_on  # type: ignore[attr-defined]
    index, last = 0, len(offsets) - 1
    key = task_key(topic, task_id)
    try:
        for index, (offset, item) in enumerate(zip(offsets, items)):
            if index and _cancelled(worker, key):
                break  # the rest is not run: run again elsewhere, or nobody's any more
            runner.run(offset, item, last=index == last)
    except BaseException as exc:  # e.g. the task was cancelled: never leave the parent guessing
        runner.fail_chunk(offsets[index:], exc)
    finally:
        runner.handler.offset = -1
    return sender.close()


def _cancelled(worker: Any, key: str) -> bool:
    """Whether the scheduler has let go of this task while it runs: its run was interrupted
    or closed, or its parent is gone. Dask cannot stop a running task, and a chunk of slow
    items went on running item after item for nobody, on a cluster others share; it stops
    between items instead. Read from the worker's own state: no message, ~0.1 us an item."""
    try:
        task = worker.state.tasks.get(key)
    except AttributeError:  # a distributed without the worker state machine: never known
        return False
    return task is None or task.state == "cancelled"


def _runner_for(sender: TopicSender, function: Callable, shared_data: Mapping, style: str,
                announce_starts: bool) -> ItemRunner:
    global _runner
    if _runner is None:
        _runner = ItemRunner(sender, function, shared_data, style, None, announce_starts)  # type: ignore[arg-type]
    runner = _runner
    runner.sender = runner.handler.sender = sender  # type: ignore[assignment]
    runner.function, runner.shared_data, runner.style = function, shared_data, style
    runner.announce_starts = announce_starts
    return runner


def hold(shared_data: Mapping) -> None:
    """Nothing: run where shared_data must be, it makes that worker fetch a copy and keep it
    (``link.ClusterLink.copy_to``), as the worker holds the dependencies of its tasks."""
