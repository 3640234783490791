"""A worker's two ends of its one duplex connection to the parent.

    parent --(chunk of items or, under fork, of offsets | None = stop)--> Inbox --> the item thread
    the item thread and the flusher thread --(EventSender: encoded event batches)--> parent

The item thread reads its chunks itself, when it needs the next one and half-way through a
chunk (no reader thread: waking one for every chunk cost the parent a context switch, and
starting it cost the worker's start-up milliseconds). This cannot deadlock with the worker's
event sends: the parent sends a busy worker only chunks that fit the connection's buffer
(offsets under fork; ``pool.BUSY_SEND_LIMIT`` otherwise, at most two outstanding), and a
larger chunk only to a worker that has finished everything it held, which is waiting in
``Inbox.get``. When the parent dies the kernel kills the worker (``worker.die_with_parent``);
where it cannot be asked to, and under forkserver (where it is asked through the fork server),
a thread that only waits on the parent's sentinel exits the process too, so no orphan keeps
running.

Events leave in batches: when a batch is large, at most ``FLUSH_INTERVAL`` after the first
unsent event, so a live display still updates promptly, and at once when nothing was sent
for ``FLUSH_INTERVAL`` (a line from an idle worker arrives as fast as a ``QueueHandler``
would deliver it; while sends follow each other, lines batch: issue 18). ``worker.py`` adds
the flushes an item's end calls for. Items that only return a value wait in an open chunk,
sent as one ``Ran`` with the batch (``EventSender.ran``). Only the worker writes to its
connection: a process the item forks sends through a pipe the worker relays
(``fork_relay.py``).
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from multiprocessing import parent_process, util
from multiprocessing.connection import Connection, wait
from typing import Any

from ...events import Payload, Ran, Result, Started, encode_batch
from .fork_relay import ForkRelay

FLUSH_INTERVAL = 0.01
FLUSH_EVENTS = 2048
FLUSH_BYTES = 1 << 20
TAIL_FIELDS = 4  # an item in the open chunk: offset, started, ended, value, flat (see _new_chunk)
TAIL_FLUSH = FLUSH_EVENTS * TAIL_FIELDS  # the open chunk's length when it leaves at once


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
        self._new_chunk()
        self._last_send = 0.0  # time.monotonic() of the last send: the channel is idle after it
        self._first_since_send = True  # the next emit looks at the clock (once per send)
        self._relays: list[ForkRelay] = []  # one per process the item forked, still sending
        self._fork_pipe: tuple[int, int] | None = None  # made for the fork in progress
        # Not threading.Thread: its start() waits until the new thread runs, which on a
        # busy machine is milliseconds of a worker's start-up; this thread needs no waiting for.
        _thread.start_new_thread(self._flush_periodically, ())

    def follow_forks(self) -> None:
        """Keep this sender sound in a process the item forks, which inherits the worker's
        logging and so sends its records to the parent too (as under 0.7.0).

        The worker sends what it has before the fork, so the item's records keep their order
        around the child's; the child starts with an empty batch (the worker's events are the
        worker's to send: sent by both, they arrived twice) and a lock of its own (the
        worker's may have been held at the fork, for ever in the child). The child sends
        through a pipe of its own, which the worker relays (``fork_relay.py``), and gets a
        flusher thread of its own (threads do not survive a fork), so what it logs leaves as
        promptly as the worker's; what is left goes when it exits.
        """
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self._before_fork, after_in_parent=self._after_fork,
                                after_in_child=self._forked)
            util.register_after_fork(self, EventSender._flush_at_process_exit)

    def _before_fork(self) -> None:
        self._flush_quietly()
        try:
            self._fork_pipe = os.pipe()
        except OSError:  # out of descriptors: the child writes to our connection, as it can
            self._fork_pipe = None

    def _after_fork(self) -> None:
        pipe, self._fork_pipe = self._fork_pipe, None
        if pipe is None:
            return
        os.close(pipe[1])
        relay = ForkRelay(pipe[0])
        with self._send_lock:
            self._relays = [*self._relays, relay]  # a new list: a flush may be going through the old
        _thread.start_new_thread(self._relay_periodically, (relay,))

    def _forked(self) -> None:
        pipe, self._fork_pipe = self._fork_pipe, None
        for relay in self._relays:  # the worker's to read, not this process's
            relay.close()
        self._relays = []
        self._batch = []
        self._size = 0
        self._send_lock = threading.Lock()
        self._has_data = threading.Event()
        self._new_chunk()  # the worker's items are the worker's to report
        if pipe is not None:
            os.close(pipe[0])
            self._conn = Connection(pipe[1], readable=False)
        atexit.register(self._flush_quietly)  # a child that exits the usual way
        # Threads do not survive a fork: without a flusher of its own, what the child logs
        # would wait for a full batch or its exit, minutes later for a child that idles.
        _thread.start_new_thread(self._flush_periodically, ())

    def _relay_periodically(self, relay: ForkRelay) -> None:
        """Forward a forked child's frames as they come, until it (and its own forks) are gone."""
        while not relay.ended:
            wait([relay.fd])
            with relay.lock, self._send_lock:
                relay.forward(self._conn.send_bytes)
        with self._send_lock:
            self._relays = [other for other in self._relays if other is not relay]
        relay.close()

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        """The send lock, with what forked children sent so far forwarded first."""
        relays = self._relays
        if not relays:
            with self._send_lock:
                yield
            return
        with contextlib.ExitStack() as held:
            for relay in relays:  # always before the send lock (as their thread takes them)
                held.enter_context(relay.lock)
            with self._send_lock:
                for relay in relays:
                    relay.forward(self._conn.send_bytes)
                yield

    def _flush_at_process_exit(self) -> None:
        # A multiprocessing child ends with os._exit, after its finalizers (not atexit's),
        # and clears the finalizers it inherited just before calling this.
        util.Finalize(self, self._flush_quietly, exitpriority=0)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:  # the other end is gone (the parent, or a child's worker): nothing to fail
            pass

    def _new_chunk(self) -> None:
        # The open chunk (issue 18): items the item thread finished with nothing to report but
        # their value, not yet in the batch, flat: offset, started, ended, value (events.Ran),
        # then the next item's four. The item thread only extends it by an item's four (one
        # atomic step); whoever holds the send lock moves what is there into the batch as one
        # ``Ran`` (``_close_chunk``, four slices). No lock, and no tuple kept, per item.
        self._tail: list = []
        self._next_offset = -1  # the offset that continues the open chunk
        self._pid = os.getpid()
        # The running item's start, while no one has sent it: [(offset, pid, time)], appended
        # by the item thread as the item starts (``worker.ChunkRunner.run_chunk``), and empty
        # again by the item's end, whoever took it; one list for the process's life. Whoever
        # pops it (an atomic step) owns that start: the item thread, finishing the item
        # quietly, puts the item in the open chunk; anyone else (a log line, the flusher,
        # a failure) puts a ``Started`` in the batch, and the item's events follow it.
        self._ticket: list = []
        self._announcing = False  # a Started is being put in the batch (see ``emit``)
        self._flusher_idle = True

    def wake_flusher(self) -> None:
        """An item starts while the flusher sleeps: its start leaves within FLUSH_INTERVAL."""
        self._flusher_idle = False
        self._has_data.set()

    def close_chunk(self) -> None:
        """End the open chunk: the next item starts another (any thread)."""
        with self._send_lock:
            self._close_chunk()

    def ran(self, offset: int, started: float, ended: float, value: Payload, size: int = 0) -> bool:
        """The item thread finished ``offset`` quietly: add it to the open chunk, unless its
        start was already sent (then False: its result and end go as events of their own)."""
        try:
            self._ticket.pop()
        except IndexError:
            return False
        tail = self._tail
        if offset != self._next_offset and tail:
            self.close_chunk()  # a chunk holds consecutive offsets: the parent folds it in slices
        tail.extend((offset, started, ended, value))
        self._next_offset = offset + 1
        if size:
            self._size += size
        if len(tail) >= TAIL_FLUSH or self._size >= FLUSH_BYTES:
            self.flush()
        return True

    def _close_chunk(self) -> None:
        """Move the open chunk into the batch as one ``Ran`` (the send lock is held)."""
        tail = self._tail
        count = len(tail)
        if not count:
            return
        taken = tail[:count]  # whole items: the item thread extends it by one item at a time
        del tail[:count]  # what the item thread appends meanwhile stays, for the next chunk
        offsets, starts, ends, values = taken[0::4], taken[1::4], taken[2::4], taken[3::4]  # TAIL_FIELDS
        self._batch.append(Ran(offsets[0], self._pid, starts[0], offsets, starts, ends, values))

    def _announce(self) -> None:
        """The open chunk, then the running item's start if unsent, into the batch (lock held)."""
        self._close_chunk()
        if self._ticket:
            self._announcing = True
            try:
                offset, pid, started = self._ticket.pop()
            except IndexError:  # the item thread has just finished it quietly
                pass
            else:
                self._batch.append(Started(offset, pid, started))
            finally:
                self._announcing = False

    def emit(self, event: Any, size: int = 64) -> None:
        """Add ``event`` to the batch, after everything before it (any thread).

        A log line from a worker whose channel is idle (nothing sent for FLUSH_INTERVAL)
        leaves at once (issue 18: a live display gets it as fast as a QueueHandler would);
        while sends follow each other, lines wait for the flusher or a full batch.
        """
        # Read in this order: a start taken from the ticket is in the batch once
        # ``_announcing`` is False again, so nothing of the item can go ahead of it.
        if self._ticket or self._announcing or self._tail:
            with self._send_lock:
                self._announce()
        batch = self._batch
        batch.append(event)
        self._size += size
        if len(batch) >= FLUSH_EVENTS or self._size >= FLUSH_BYTES:
            self.flush()
        elif self._first_since_send:
            self._first_since_send = False
            if time.monotonic() - self._last_send >= FLUSH_INTERVAL:
                self.flush()
            else:
                self._has_data.set()

    def flush(self) -> None:
        """Send everything known: the batch, the open chunk, the running item's start."""
        with self._sending():
            self._announce()
            batch = self._batch
            count = len(batch)
            if count:
                data = encode_batch(batch[:count])
                del batch[:count]
                self._size = 0
                self._conn.send_bytes(data)
                self._last_send = time.monotonic()
                self._first_since_send = True

    def emit_large(self, event: Result) -> None:
        """A large result travels as a frame of its own after its event: no copy into a batch.

        Its event goes out with an empty payload (``Payload()``, which no other result has);
        the parent attaches the next frame from this worker as the pickle (pool.py, _read).
        """
        with self._sending():
            self._announce()
            batch = self._batch
            count = len(batch)
            marker = Result(event.offset, event.pid, event.time, Payload())
            data = encode_batch(batch[:count] + [marker])
            del batch[:count]
            self._size = 0
            self._conn.send_bytes(data)
            self._conn.send_bytes(event.value.pickle)
            self._last_send = time.monotonic()
            self._first_since_send = True

    def _flush_periodically(self) -> None:
        while True:
            self._flusher_idle = True
            self._has_data.wait()
            time.sleep(FLUSH_INTERVAL)  # let the batch grow; a live display still sees it promptly
            self._has_data.clear()
            self.flush()


class Inbox:
    """Chunks of items from the parent, read by the item thread itself (see module docstring)."""

    def __init__(self, conn: Connection, watch_parent: bool = True) -> None:
        self._conn = conn
        self._chunks: list = []
        parent = parent_process()
        if watch_parent and parent is not None:
            threading.Thread(target=self._watch_parent, args=(parent.sentinel,), name="mpmq-parent-watch",
                             daemon=True).start()

    def empty(self) -> bool:
        """No chunk waiting; one that has arrived is read now (a poll, no wait)."""
        if self._chunks:
            return False
        if self._conn.poll(0):
            self._chunks.append(self._recv())
            return False
        return True

    def get(self) -> Any:
        if self._chunks:
            return self._chunks.pop(0)
        return self._recv()

    def _recv(self) -> Any:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            os._exit(70)  # the parent closed our connection without a goodbye: it is gone

    @staticmethod
    def _watch_parent(sentinel: Any) -> None:
        wait([sentinel])
        os._exit(70)
