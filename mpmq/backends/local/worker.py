"""The worker process: run items one at a time, turning what they do into events.

The connection to the parent (chunks in, event batches out) is ``worker_channel.py``. Here:
each item runs with its logging captured, and its events are flushed at the end of any item
that logged or took a millisecond or more (so a crash in the next item cannot lose its
result; a trivial item whose events had not left is re-run by the parent instead), at the
end of every chunk, and half-way through a chunk when no next chunk is waiting (so the
parent sends one in time). An item that only returns a scalar, quickly and quietly, sends
no event of its own: it joins the sender's open chunk, one ``Ran`` for many (issue 18).
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
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from ... import payload
from ...calling import KWARGS
from ...errors import UnpicklableResult, qualified_name
from ...events import Done, Error, Payload, Result, consecutive
from .. import item_runner
from ..item_runner import error_event
from .lean_records import LIVE_HANDLERS
from .worker_channel import TAIL_FLUSH, EventSender, Inbox

TRIVIAL_ITEM = 0.001
LARGE_RESULT = 1 << 20  # bytes of pickle from which a result skips the batch
QUIET_RESULT = 1 << 16  # bytes of pickle up to which a result may travel in a Ran chunk


class _NoSlot:
    """Where no shared slot says which item runs (a runner driven in the tests)."""

    value = -1


_NO_SLOT = _NoSlot()


class ChunkRunner(item_runner.ItemRunner):
    """The shared item runner (``backends/item_runner.py``: logging captured, the same events
    and errors on every backend), with this backend's fast path: items run a chunk at a time,
    and quick, quiet items join the sender's open ``Ran`` chunk (issue 18)."""

    def run(self, offset: int, item: Any, last: bool = True) -> None:
        """Run one item; ``last``: send what is unsent once it ends (no more items follow)."""
        self.run_chunk([offset], [item], flush_at_end=last)

    def run_chunk(self, offsets: Sequence[int], items: list, waiting: Callable[[], bool] | None = None,
                  flush_at_end: bool = True) -> None:
        """Run items one after another; ``waiting()`` says whether the next chunk is already here.

        What is unsent leaves at the end of the chunk (the parent tops up a worker as it hears
        of its progress: issue 18), half-way through when no next chunk is waiting (so the
        parent sends one in time), and after any item that logged or took a millisecond or
        more (so a crash in the next item cannot lose it; a quick, quiet item whose events
        had not left is re-run by the parent instead). ``offsets``: a list, or a range.
        """
        sender = self.sender
        count = len(items)
        first = offsets[0]
        in_order = type(offsets) is range or consecutive(offsets)
        if sender._tail and first != sender._next_offset:
            sender.close_chunk()  # a chunk holds consecutive offsets: the parent folds it in slices
        half = count // 2 + 1 if waiting is not None and count > 1 else count
        self._run_items(offsets[:half], items[:half], in_order)
        if half < count:
            if not waiting():  # type: ignore[misc]
                sender._next_offset = offsets[half - 1] + 1
                sender.flush()
            self._run_items(offsets[half:], items[half:], in_order)
        sender._next_offset = offsets[-1] + 1
        if flush_at_end:
            sender.flush()

    def _run_items(self, offsets: Sequence[int], items: list, in_order: bool) -> None:
        """The loop of ``run_chunk``.

        The usual item (quick, quiet, a scalar result) costs no call of ours: it joins the
        sender's open chunk here, inlined (issue 18: a worker's own overhead per item is what
        a million items cost beyond the stdlib pools). Anything else goes through ``_end``.
        Such an item's end is also the next item's start: one clock read, not two, per item
        (what comes between is this loop's own bookkeeping, under a microsecond); after
        anything that may take longer (a send, ``_end``) the clock is read again.
        """
        sender, pid, handler, root, root_handlers = self.sender, self.pid, self.handler, self.root, self.root_handlers
        running = self.running if self.running is not None else _NO_SLOT
        function, shared, kwargs = self.function, self.shared_data, self.style == KWARGS
        bare = kwargs and not shared  # f(**item): no merge of an empty shared_data per item
        clock, lean, announce = time.time, handler.lean, self.announce_starts
        live = LIVE_HANDLERS if lean.usable else ()  # () != lean's count: logging is reset each time
        tail, ticket = sender._tail, sender._ticket
        join = tail.extend  # one item's four fields at a time (EventSender._new_chunk)
        debug, trivial, tail_flush = logging.DEBUG, TRIVIAL_ITEM, TAIL_FLUSH
        # A quick, quiet item cannot have logged: a log line takes its start's ticket (EventSender.emit)
        logged = handler.count
        started = clock()
        for offset, item in zip(offsets, items):
            running.value = offset
            ticket.append((offset, pid, started))  # its start, unsent: see EventSender._new_chunk
            if sender._flusher_idle:
                sender.wake_flusher()  # so a long item's start still leaves within FLUSH_INTERVAL
            if announce:
                # item_timeout counts from the parent hearing this: send it now, before the item
                # can hold the GIL in C code and keep the flusher thread from ever sending it
                sender.flush()
            handler.offset = offset
            # Every item starts from the same logging set-up, whatever the previous one changed;
            # setLevel clears every logger's cache, so it is called only when something changed.
            if root.level != debug or root.handlers != root_handlers or len(live) != lean.seen:
                self._reset_logging()
            try:
                if bare:
                    value = function(**item)
                elif kwargs:
                    value = function(**item, **shared)
                else:
                    value = function(item, shared)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt in an item fail that item
                handler.offset = -1  # a thread the item left logging speaks for no item
                retryable = self.retry_on is not None and isinstance(exc, self.retry_on)
                self._end(offset, started, None, error_event(offset, pid, exc, True, retryable), logged)
                logged, started = handler.count, clock()
            else:
                handler.offset = -1
                ended = clock()
                kind = type(value)
                if kind is int and -(1 << 63) <= value < (1 << 64) or value is None or kind is bool:
                    try:
                        ticket.pop()  # nobody sent its start: the item joins the open chunk
                    except IndexError:
                        self._end(offset, started, ended, Result(offset, pid, ended, Payload(json=value)), logged)
                        logged, ended = handler.count, clock()
                    else:
                        if not in_order and tail:
                            sender.close_chunk()
                        join((offset, started, ended, value))  # as itself: see events.Ran
                        if ended - started > trivial or len(tail) >= tail_flush:
                            sender._next_offset = offset + 1
                            sender.flush()
                            ended = clock()
                else:
                    self._end(offset, started, ended, value, logged)
                    logged, ended = handler.count, clock()
                started = ended
            running.value = -1  # between items: a death now is no item's fault

    def _reset_logging(self) -> None:
        root = self.root
        if root.level != logging.DEBUG:
            root.setLevel(logging.DEBUG)
        if root.handlers != self.root_handlers:
            root.handlers[:] = self.root_handlers
        self.handler.lean.update()

    def _end(self, offset: int, started: float, ended: float | None, outcome: Any, logged: int) -> None:
        """Report an item's end the general way: ``outcome`` is its ``Error`` or ``Result``, or
        the value it returned; its start goes ahead if unsent (``EventSender.emit``). What is
        unsent leaves now if the item logged (``logged``: the log count before it) or took a
        millisecond or more."""
        sender, pid = self.sender, self.pid
        ended = time.time() if ended is None else ended
        if type(outcome) is Error or type(outcome) is Result:
            event = outcome
        else:
            try:
                transit = payload.for_transit(outcome)
            except Exception as exc:
                event = Error(
                    offset, pid, ended, qualified_name(UnpicklableResult),
                    f"the result of type {type(outcome).__qualname__} cannot be pickled: {exc}",
                )
            else:
                size = len(transit.pickle) if transit.pickle is not None else 64
                if size < QUIET_RESULT and sender.ran(offset, started, ended, transit, size):
                    if ended - started > TRIVIAL_ITEM:
                        sender.flush()
                    return
                event = Result(offset, pid, ended, transit)
        if type(event) is Result and event.value.pickle is not None and len(event.value.pickle) >= LARGE_RESULT:
            sender.emit_large(event)
        else:
            sender.emit(event, 256)
        sender.emit(Done(offset, pid, time.time()))
        if self.handler.count != logged or time.time() - started > TRIVIAL_ITEM:
            sender.flush()


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
    retry_on: tuple[type[BaseException], ...] | None = None,
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
    runner = ChunkRunner(sender, function, shared_data, style, running, announce_starts, retry_on)

    def waiting() -> bool:
        return not inbox.empty()

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
        runner.run_chunk(offsets, chunk_items, waiting)
        done += len(chunk_items)
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
