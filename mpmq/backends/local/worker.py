"""The worker process: run items one at a time, turning what they do into events.

The connection to the parent (chunks in, event batches out) is ``worker_channel.py``. Here:
each item runs with its logging captured, and its events are flushed at the end of any item
that logged or took a millisecond or more (so a crash in the next item cannot lose its
result; a trivial item whose events had not left is re-run by the parent instead), and
half-way through a chunk when no next chunk is waiting (so the parent sends one in time).
"""

from __future__ import annotations

import ctypes  # imported here, in the parent, so forked workers start without the cost
import faulthandler
import logging
import mmap
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from ... import payload
from ...calling import KWARGS
from ...errors import UnpicklableResult, qualified_name
from ...events import Done, Error, Log, Result, Started
from .lean_records import LeanRecords
from .worker_channel import EventSender, Inbox

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


def error_event(offset: int, pid: int, exc: BaseException, from_item: bool = False) -> Error:
    """Describe any exception, even one that cannot be pickled or rebuilt.

    ``from_item``: the traceback starts in the item's function, not in the runner calling it.
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
        pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # unpicklable exceptions still travel as type, message and traceback
        pickled = None
    return Error(offset, pid, time.time(), qualified_name(type(exc)), message, text, pickled,
                 args=payload.json_args(exc))


class ItemRunner:
    """Runs one item at a time with its logging captured, emitting its events.

    ``running`` is a slot in shared memory holding the offset of the item being run, so when
    this process dies the parent knows exactly which item killed it, even if the last batch
    of events never left.
    """

    def __init__(self, sender: EventSender, function: Callable, shared_data: Mapping, style: str,
                 running: Any = None, announce_starts: bool = False) -> None:
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
            event = error_event(offset, pid, exc, from_item=True)
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


def worker_main(
    conn: Connection,
    function: Callable,
    shared_data: Mapping,
    style: str,
    first_items: list | None = None,
    max_items: int | None = None,
    running: Any = None,
    announce_starts: bool = False,
    parent_pid: int | None = None,
    items: list | None = None,
) -> None:
    """Entry point of a worker process.

    ``first_items`` are items handed over at process start (items that can only reach a
    process that way, e.g. holding a ``multiprocessing.Queue``); after them the worker takes
    chunks from its connection until told to stop or until it has run ``max_items``. A chunk
    carries its items pickled, or only their offsets into ``items`` (inherited under fork).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # under fork, not the parent's shutdown handler
    killed_with_parent = parent_pid is not None and die_with_parent(parent_pid)
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr
    sender = EventSender(conn)
    sender.follow_forks()
    inbox = Inbox(conn, watch_parent=not killed_with_parent)
    runner = ItemRunner(sender, function, shared_data, style, running, announce_starts)
    done = 0
    for offset, item in first_items or ():
        runner.run(offset, item)
        done += 1
    while max_items is None or done < max_items:
        chunk = inbox.get()
        if chunk is None:
            break
        offsets, blob = chunk
        try:
            chunk_items = pickle.loads(blob) if blob is not None else [items[offset] for offset in offsets]
        except BaseException as exc:
            runner.fail_chunk(offsets, exc)
            continue
        last, half = len(chunk_items) - 1, len(chunk_items) // 2
        for index, (offset, item) in enumerate(zip(offsets, chunk_items)):
            runner.run(offset, item, last=index == last and inbox.empty())
            done += 1
            if index == half and half and inbox.empty():
                # Half the chunk is done: tell the parent now, so the next chunk arrives before
                # this one runs out (short items would otherwise wait for it, idle).
                sender.flush()
    sender.flush()


PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Linux: have the kernel kill this worker when its parent process dies.

    Unlike a thread watching the parent (``worker_channel.Inbox``, used where this returns
    False), the kernel's signal ends even an item stuck in C code holding the GIL. Under
    forkserver the worker's parent is the fork server, which exits when the engine's process
    does: the signal is asked for all the same, but False is returned, so that the thread
    watches the engine's process too. False on other systems.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl here: the inbox watches the parent instead
        return False
    if os.getppid() != parent:
        os._exit(70)  # the parent died before the kernel was asked to tell us
    if parent == parent_pid:
        return True
    _let_the_fork_server_go()
    return False


def _let_the_fork_server_go() -> None:
    """Close this worker's copy of the pipe that keeps the fork server running.

    multiprocessing hands it to every process the server starts (for them to start processes
    through it too), and the server runs until the last copy closes: so it outlived a killed
    engine for as long as a worker did, and the workers' signal, due when it exits, never came.
    A process this worker starts under forkserver gets a fork server of its own, as before.
    """
    server = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None or getattr(server, "_forkserver_pid", None) is not None:
        return  # nothing inherited, or a server this process started itself
    try:
        os.close(fd)
    except OSError:
        pass
    server._forkserver_alive_fd = None  # type: ignore[union-attr]


def running_slot(context: Any) -> Any:
    """Eight bytes of memory shared with one worker: the offset it is running, or -1.

    A ctypes integer, so setting ``.value`` twice per item costs ~50 ns, not a Python call.
    Under fork an anonymous shared mapping costs microseconds; ``RawValue`` (needed under
    spawn and forkserver, where memory must be passed at process start) costs ~13 ms the
    first time, as much as a whole small run.
    """
    if context.get_start_method() == "fork":
        slot = ctypes.c_int64.from_buffer(mmap.mmap(-1, 8))  # keeps the mapping alive
        slot.value = -1
        return slot
    return context.RawValue("q", -1)
