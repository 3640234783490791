"""Running one item in a worker, whatever the backend: its logging captured, its events emitted.

Backend-neutral: the local worker process (``local/worker.py``) and a Dask task
(``dask/task.py``) both run items through ``ItemRunner``, so an item logs, fails and returns
exactly the same way wherever it runs. ``sender`` is the backend's way out for events
(``emit``, ``emit_ran``, ``emit_large``, ``flush``).
"""

from __future__ import annotations

import copyreg
import io
import logging
import os
import pickle
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import payload
from ..calling import KWARGS
from ..errors import UnpicklableResult, qualified_name
from ..events import Done, Error, Log, Result, Started
from .local.lean_records import LeanRecords

if TYPE_CHECKING:  # any object with its methods will do: each backend has its own sender
    from .local.worker_channel import EventSender

TRIVIAL_ITEM = 0.001
LARGE_RESULT = 1 << 20  # bytes of pickle from which a result skips the batch


class _EventLogHandler(logging.Handler):
    """Turns the item's log records into ``log`` events (message fully formatted)."""

    def __init__(self, sender: EventSender, pid: int) -> None:
        super().__init__(logging.NOTSET)
        self.sender = sender
        self.pid = pid
        self.offset = -1  # the item being run; -1 between items
        self.count = 0
        self._formatter = logging.Formatter()
        self.lean = LeanRecords(self)

    def handle(self, record: logging.LogRecord) -> bool:  # no per-record lock: one item at a time
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self.offset < 0:
            return
        self.count += 1
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments: keep the raw text rather than lose the line
            message = str(record.msg)
        exc_text = None
        if record.exc_info:
            exc_text = self._formatter.formatException(record.exc_info)
        elif record.exc_text:
            exc_text = record.exc_text
        self.sender.emit(
            Log(self.offset, self.pid, record.created, record.levelno, record.name, message, exc_text),
            len(message) + 64,
        )


def error_event(offset: int, pid: int, exc: BaseException, from_item: bool = False, retryable: bool = False) -> Error:
    """Describe any exception, even one that cannot be pickled or rebuilt.

    ``from_item``: the traceback starts in the item's function, not in the runner calling it;
    ``retryable``: ``retry_on`` lets the engine run the item again (issue 19).
    """
    try:
        message = str(exc)
    except Exception as str_failed:
        message = f"<str() of the exception failed: {str_failed!r}>"
    tb = exc.__traceback__
    if from_item and tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        pickled = _dumps_exception(exc)
    except Exception:  # unpicklable exceptions still travel as type, message and traceback
        pickled = None
    return Error(offset, pid, time.time(), qualified_name(type(exc)), message, text, pickled,
                 retryable=retryable, args=payload.json_args(exc))


def _dumps_exception(exc: BaseException) -> bytes:
    """Pickle ``exc`` as Python does, even where tblib registered its own reducers for every
    exception class (Dask workers do, issue 17): they rebuild ``SystemExit(3)`` with no
    ``code``, and would make the parent need tblib to read the exception back."""
    table = copyreg.dispatch_table
    if not any(_from_tblib(reducer) for reducer in table.values()):
        return pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {kind: reducer for kind, reducer in table.items() if not _from_tblib(reducer)}
    pickler.dump(exc)
    return buffer.getvalue()


def _from_tblib(reducer: Any) -> bool:
    return (getattr(reducer, "__module__", None) or "").startswith("tblib")


class ItemRunner:
    """Runs one item at a time with its logging captured, emitting its events.

    ``running`` is a slot in shared memory holding the offset of the item being run, so when
    this process dies the parent knows exactly which item killed it, even if the last batch
    of events never left. ``retry_on`` (issue 19): the exception types whose failures the
    engine may retry (``None``: the run has no retries), judged here, where the exception is.
    """

    def __init__(self, sender: EventSender, function: Callable, shared_data: Mapping, style: str,
                 running: Any = None, announce_starts: bool = False,
                 retry_on: tuple[type[BaseException], ...] | None = None) -> None:
        self.retry_on = retry_on
        self.running = running
        self.announce_starts = announce_starts
        self.sender = sender
        self.function = function
        self.shared_data = shared_data
        self.style = style
        self.pid = os.getpid()
        self.handler = _EventLogHandler(sender, self.pid)
        self.root = logging.getLogger()
        self.root_handlers = [*self.root.handlers, self.handler]  # what the worker had, and ours

    def run(self, offset: int, item: Any, last: bool = True) -> None:
        emit, pid = self.sender.emit, self.pid
        if self.running is not None:
            self.running.value = offset
        logged = self.handler.count
        started = time.time()
        start = Started(offset, pid, started)
        emit(start)
        if self.announce_starts:
            # item_timeout counts from the parent hearing this: send it now, before the item
            # can hold the GIL in C code and keep the flusher thread from ever sending it
            self.sender.flush()
        root = self.root
        self.handler.offset = offset
        # Every item starts from the same logging set-up, whatever the previous one changed;
        # setLevel clears every logger's cache, so it is called only when something changed.
        if root.level != logging.DEBUG:
            root.setLevel(logging.DEBUG)
        if root.handlers != self.root_handlers:
            root.handlers[:] = self.root_handlers
        self.handler.lean.update()
        try:
            if self.style == KWARGS:
                value = self.function(**item, **self.shared_data)
            else:
                value = self.function(item, self.shared_data)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt in an item fail that item
            retryable = self.retry_on is not None and isinstance(exc, self.retry_on)
            event = error_event(offset, pid, exc, from_item=True, retryable=retryable)
        else:
            try:
                event = Result(offset, pid, time.time(), payload.for_transit(value))
            except Exception as exc:
                event = Error(
                    offset, pid, time.time(), qualified_name(UnpicklableResult),
                    f"the result of type {type(value).__qualname__} cannot be pickled: {exc}",
                )
        finally:
            self.handler.offset = -1  # a thread the item left logging speaks for no item
        large = type(event) is Result and event.value.pickle is not None and len(event.value.pickle) >= LARGE_RESULT
        if type(event) is Result and not large and self.sender.emit_ran(start, event):
            ended = event.time  # nothing came between its start and its result: one event for three
        else:
            if large:
                self.sender.emit_large(event)
            else:
                emit(event, 256)
            ended = time.time()
            emit(Done(offset, pid, ended))
        if self.running is not None:
            self.running.value = -1  # between items: a death now is no item's fault
        # Flush now unless the item was trivial (no logs, under a millisecond): then the
        # flusher sends it within FLUSH_INTERVAL, and if this process dies before that the
        # parent re-runs the item rather than lose its result (see pool.py, _fail_running).
        if last or self.handler.count != logged or ended - started > TRIVIAL_ITEM:
            self.sender.flush()

    def fail_chunk(self, offsets: list[int], exc: BaseException) -> None:
        """The chunk could not be unpickled here: fail each of its items, never lose one."""
        for offset in offsets:
            self.sender.emit(Started(offset, self.pid, time.time()))
            self.sender.emit(error_event(offset, self.pid, exc))
            self.sender.emit(Done(offset, self.pid, time.time()))
        self.sender.flush()
