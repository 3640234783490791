"""The stdlib pools, used the way a careful user would use them without mpmq.

Logs travel the logging cookbook's way: the pool's initializer puts a
``logging.handlers.QueueHandler`` on the worker's root logger, writing to a
``multiprocessing.Queue`` handed over through ``initargs`` (a queue cannot be passed as a task
argument); a ``QueueListener`` thread in the parent calls the user's handler per record.

The listener is stopped only after the pool has joined its workers: a worker's queue feeder
thread is flushed when the worker exits, so every record is in the pipe before the listener's
sentinel and none is lost.
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import Any

from .measure import Sink


def install_queue_handler(queue: Any) -> None:
    """Pool initializer: send every record of this worker to ``queue``."""
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.DEBUG)


class _SinkHandler(logging.Handler):
    """Hands each forwarded record's message to the user's handler."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink(record.getMessage())


@contextmanager
def forwarder(ctx: BaseContext, sink: Sink | None) -> Iterator[dict[str, Any]]:
    """Pool keyword arguments that forward worker logs to ``sink``; ``{}`` when sink is None.

    Exit this context only after the pool has joined its workers (see the module docstring).
    """
    if sink is None:
        yield {}
        return
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _SinkHandler(sink))
    listener.start()
    try:
        yield {"initializer": install_queue_handler, "initargs": (queue,)}
    finally:
        listener.stop()
        queue.close()
        queue.join_thread()


def run_ppe(
    function: Callable[..., Any],
    items: list[dict[str, Any]],
    workers: int,
    start_method: str,
    chunksize: int = 1,
    sink: Sink | None = None,
) -> list[Any]:
    """``ProcessPoolExecutor.map`` end to end: start, map, shut down (joins the workers)."""
    ctx = multiprocessing.get_context(start_method)
    task = functools.partial(function, shared_data={})
    with forwarder(ctx, sink) as logs:
        with ProcessPoolExecutor(workers, mp_context=ctx, **logs) as executor:
            return list(executor.map(task, items, chunksize=chunksize))


def run_pool(
    function: Callable[..., Any],
    items: list[dict[str, Any]],
    workers: int,
    start_method: str,
    sink: Sink | None = None,
    task: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """``multiprocessing.Pool.map`` (its default chunksize) end to end.

    ``task`` is what the pool maps (default: ``function`` with ``shared_data={}``).
    ``close()`` + ``join()`` rather than the ``with`` block, whose exit terminates the workers
    and could drop records still in their feeder threads.
    """
    ctx = multiprocessing.get_context(start_method)
    task = task or functools.partial(function, shared_data={})
    with forwarder(ctx, sink) as logs:
        pool = ctx.Pool(workers, **logs)
        try:
            results = pool.map(task, items)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    return results
