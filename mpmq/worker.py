"""The worker process: run items, turn what they do into events, send them in batches.

A worker owns one duplex connection to the parent:

    parent --(chunk of items or, under fork, of offsets | None = stop)--> reader thread
          --> local inbox --> main thread
    main thread (items) and flusher thread --(encoded event batches)--> parent

The reader thread drains the connection at once, so the parent never blocks handing out
work while this worker blocks sending events (the classic two-full-pipes deadlock); it also
watches the parent's sentinel and exits the process when the parent dies, so no orphan keeps
running. Events are batched: flushed when a batch is large, at most ``FLUSH_INTERVAL`` after
the first unsent event (a live display still updates promptly), at the end of each item
that logged or took a millisecond or more (so a crash in the next item cannot lose its
result; a trivial item whose events had not left is re-run by the parent instead), and
half-way through a chunk when no next chunk is waiting (so the parent sends one in time).
"""

from __future__ import annotations

import atexit
import ctypes  # imported here, in the parent, so forked workers start without the cost
import faulthandler
import logging
import mmap
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing import parent_process, util
from multiprocessing.connection import Connection, wait
from typing import Any

from . import payload
from .errors import UnpicklableResult, qualified_name
from .events import Done, Error, Log, Payload, Result, Started, encode_batch
from .lean_records import LeanRecords

FLUSH_INTERVAL = 0.01
FLUSH_EVENTS = 2048
FLUSH_BYTES = 1 << 20
TRIVIAL_ITEM = 0.001
LARGE_RESULT = 1 << 20  # bytes of pickle from which a result skips the batch

KWARGS = "kwargs"
POSITIONAL = "positional"


class EventSender:
    """Batches events and sends them in order.

    The item's thread only appends (a list append is atomic), so logging costs no lock; the
    flusher thread and size-based flushes take a batch and send it under one lock, so
    batches leave in order and no event is lost between a take and an append.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._batch: list = []
        self._size = 0
        self._send_lock = threading.Lock()
        self._has_data = threading.Event()
        threading.Thread(target=self._flush_periodically, name="mpmq-flusher", daemon=True).start()

    def follow_forks(self) -> None:
        """Keep this sender sound in a process the item forks, which inherits the worker's
        logging and so sends its records here too (as under 0.7.0 they reach the parent).

        The worker sends what it has before the fork, so the item's records keep their order
        around the child's; the child starts with an empty batch (the worker's events are the
        worker's to send: sent by both, they arrived twice). It gets a lock of its own (the
        worker's may have been held at the fork, for ever in the child) and sends what is
        left when it exits; it has no flusher thread, so until then its records leave only in
        full batches.
        """
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self._flush_quietly, after_in_child=self._forked)
            util.register_after_fork(self, EventSender._flush_at_process_exit)

    def _forked(self) -> None:
        self._batch = []
        self._size = 0
        self._send_lock = threading.Lock()
        self._has_data = threading.Event()  # nobody waits on it here: emit only sets it
        atexit.register(self._flush_quietly)  # a child that exits the usual way

    def _flush_at_process_exit(self) -> None:
        # A multiprocessing child ends with os._exit, after its finalizers (not atexit's),
        # and clears the finalizers it inherited just before calling this.
        util.Finalize(self, self._flush_quietly, exitpriority=0)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:  # the other end is gone (the parent, or a child's worker): nothing to fail
            pass

    def emit(self, event: Any, size: int = 64) -> None:
        batch = self._batch
        batch.append(event)
        self._size += size
        if len(batch) >= FLUSH_EVENTS or self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._has_data.is_set():
            self._has_data.set()

    def flush(self) -> None:
        with self._send_lock:
            batch = self._batch
            count = len(batch)
            if count:
                data = encode_batch(batch[:count])
                del batch[:count]
                self._size = 0
                self._conn.send_bytes(data)

    def emit_large(self, event: Result) -> None:
        """A large result travels as a frame of its own after its event: no copy into a batch.

        Its event goes out with an empty payload (``Payload()``, which no other result has);
        the parent attaches the next frame from this worker as the pickle (pool.py, _read).
        """
        with self._send_lock:
            batch = self._batch
            count = len(batch)
            marker = Result(event.offset, event.pid, event.time, Payload())
            data = encode_batch(batch[:count] + [marker])
            del batch[:count]
            self._size = 0
            self._conn.send_bytes(data)
            self._conn.send_bytes(event.value.pickle)

    def _flush_periodically(self) -> None:
        while True:
            self._has_data.wait()
            time.sleep(FLUSH_INTERVAL)  # let the batch grow; a live display still sees it promptly
            self._has_data.clear()
            self.flush()


class Inbox:
    """Reads chunks of items from the parent on a thread of its own (see module docstring)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._chunks: list = []
        self._ready = threading.Condition(threading.Lock())
        threading.Thread(target=self._read, name="mpmq-reader", daemon=True).start()

    def empty(self) -> bool:
        return not self._chunks

    def get(self) -> Any:
        with self._ready:
            while not self._chunks:
                self._ready.wait()
            return self._chunks.pop(0)

    def _read(self) -> None:
        parent = parent_process()
        watched = [self._conn] + ([parent.sentinel] if parent is not None else [])
        while True:
            ready = wait(watched)
            if self._conn not in ready:
                os._exit(70)  # the parent died: never outlive it (issue 3, parent death)
            try:
                chunk = self._conn.recv()
            except (EOFError, OSError):
                os._exit(70)  # the parent closed our connection without a goodbye
            with self._ready:
                self._chunks.append(chunk)
                self._ready.notify()
            if chunk is None:
                return


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


def call_style(function: Callable) -> str:
    """0.7.0's rule: keyword arguments when every parameter has a default or is ``**kwargs``."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return POSITIONAL
    uses_kwargs = all(p.default is not p.empty or p.kind is p.VAR_KEYWORD for p in parameters)
    return KWARGS if uses_kwargs else POSITIONAL


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
    return Error(offset, pid, time.time(), qualified_name(type(exc)), message, text, pickled)


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
        emit(Started(offset, pid, started))
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
        if isinstance(event, Result) and event.value.pickle is not None and len(event.value.pickle) >= LARGE_RESULT:
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
    if parent_pid is not None:
        die_with_parent(parent_pid)
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr
    sender = EventSender(conn)
    sender.follow_forks()
    inbox = Inbox(conn)
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


def die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this worker when the parent dies.

    The reader thread watches the parent too, but no thread of ours runs while an item is
    stuck in C code holding the GIL; a signal from the kernel still ends the process. Under
    forkserver the parent is the fork server, which the reader thread's watch covers.
    """
    if not sys.platform.startswith("linux") or os.getppid() != parent_pid:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl here: the reader thread's watch remains
        return
    if os.getppid() != parent_pid:
        os._exit(70)  # the parent died before the kernel was asked to tell us


class RunningSlot:
    """Eight bytes of memory shared with one worker: the offset it is running, or -1.

    Under fork an anonymous shared mapping costs microseconds; ``RawValue`` (needed under
    spawn and forkserver, where memory must be passed at process start) costs ~13 ms the
    first time, as much as a whole small run.
    """

    def __init__(self, context: Any) -> None:
        if context.get_start_method() == "fork":
            self._memory: Any = mmap.mmap(-1, 8)
            self._raw = None
        else:
            self._memory = None
            self._raw = context.RawValue("q", -1)
        self.value = -1

    @property
    def value(self) -> int:
        if self._raw is not None:
            return self._raw.value
        return int.from_bytes(self._memory[:8], "little", signed=True)

    @value.setter
    def value(self, offset: int) -> None:
        if self._raw is not None:
            self._raw.value = offset
        else:
            self._memory[:8] = offset.to_bytes(8, "little", signed=True)
