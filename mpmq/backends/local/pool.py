"""The live source of events: long-lived worker processes, one duplex connection each.

    parent                                   worker i (worker.py)
    pending offsets --chunk of items-->      conn i --> run items   (under fork: offsets only)
    receive() <--event batches--------------  conn i
    receive() <--exit-----------------------  sentinel i

``receive`` is the parent's one blocking point: a single poll over every worker's pipe and
process sentinel (as CPython's ProcessPoolExecutor waits on its result reader and sentinels,
here with one ``select.poll`` kept for the run rather than a selector built per wait), with a
timeout only when an item deadline is due. ``handle.py`` is the parent's end of one worker,
``chunks.py`` packs a chunk for a worker that did not inherit the items, ``failures.py`` says
what a death, a deadline or a cancellation means for an item;
on Linux its sentinel is a pidfd, so a process the item forked and left running (holding the
worker's pipe and multiprocessing's sentinel open) cannot hide the worker's exit.
A worker that dies is noticed through its sentinel at once: the item it was running fails
with ``WorkerDied`` (exit code and signal, pid, last log lines), the items it held but had
not started go back to the queue, and a replacement starts while work remains.

The pool knows which worker holds which items (transport bookkeeping); the run's state is
derived from the events it returns, by the reducer, elsewhere. What a failure means (run the
item again, stop the run) is the engine's to decide (issue 19, ``mpmq/retries.py``): it calls
``run_again`` and ``cancel_not_started``; under ``stop_on_error`` the pool hands out no more
work after reading a failure until the engine has had its say.
"""

from __future__ import annotations

import os
import select
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import util
from typing import Any

from ...events import Done, Error, Ran, Started, expand
from ..chunk_sizes import ChunkSizer
from . import chunks, failures
from .handle import WorkerHandle
from .pending import PendingOffsets

MAX_CHUNK = 512
QUICK_CHUNK_LIMIT = 16_384  # under fork, the most items a chunk holds to make CHUNK_SECONDS of work
MAX_LISTED = 2048  # under fork, the most offsets a chunk holds when they are not a range (~10 KB pickled)
CHUNK_SECONDS = 0.01  # the least work a chunk holds once item times are known
AHEAD_SECONDS = 0.02  # the most work in a chunk sent to a worker still holding a whole one
BUSY_SEND_LIMIT = 64 * 1024  # bytes: well inside a socket pair's buffer
TERMINATE_GRACE = 1.0


class WorkerPool:
    """Runs ``items`` on at most ``workers`` processes and yields their events."""

    def __init__(
        self,
        function: Callable,
        items: list[Mapping],
        shared_data: Mapping,
        *,
        workers: int,
        context: Any,
        style: str,
        max_items_per_worker: int | None = None,
        item_timeout: float | None = None,
        stop_on_error: bool = False,
        retry_on: tuple[type[BaseException], ...] | None = None,
        offsets: Sequence[int] | None = None,
    ) -> None:
        """``offsets``: the items to run (default: all); a resumed run runs only some (issue 19),
        and events keep naming items by their offset in ``items``."""
        self.function = function
        self.items = items
        self.shared_data = shared_data
        self.pending = PendingOffsets(range(len(items)) if offsets is None else offsets)
        self.max_workers = max(1, min(workers, len(self.pending)))
        self.context = context
        self.style = style
        self.max_items = max_items_per_worker
        self.item_timeout = item_timeout
        self.stop_on_error = stop_on_error  # one item per worker at a time: others may be cancelled
        self.retry_on = retry_on  # None: no retries; else what the item runner marks retryable
        self._awaiting_verdict = False  # a failure was read: no new work until the engine decides
        self.inherit_only: deque[int] = deque()  # items that can only reach a process at its start
        self.unfinished = len(self.pending)
        self.workers: list[WorkerHandle] = []
        self._by_fd: dict[int, tuple[WorkerHandle, bool]] = {}  # fd -> (worker, is its event pipe)
        self._poller = select.poll()
        self._processes: dict[int, Any] = {}  # pid -> process, for 0.7.0's processes table
        self._strikes: dict[int, int] = {}
        self._produced: list = []  # events the pool made between receives (cancellations)
        self.stopped = False
        self.closed = False
        self._inherit = context.get_start_method() == "fork"  # workers are born holding the items
        # Under fork a chunk is offsets alone, so quick items may come QUICK_CHUNK_LIMIT at a
        # time; pickled items, MAX_CHUNK at most, must fit what a busy worker may be sent.
        self._sizer = ChunkSizer(self.max_workers, CHUNK_SECONDS, MAX_CHUNK,
                                 QUICK_CHUNK_LIMIT if self._inherit else MAX_CHUNK)
        self._largest_chunk = max(self._sizer.limit, self._sizer.quick_limit)  # no chunk is larger
        self.compact = False  # hand out ``events.Ran`` chunks as they came (True) or expanded
        self.received = 0  # events handed out so far, a Ran chunk counted as the events it stands for
        # Workers are not daemonic, so at interpreter exit multiprocessing would join them:
        # end them first, should a caller exit without closing the run.
        self._at_exit = util.Finalize(self, WorkerPool._close_at_exit, args=(self.workers,), exitpriority=10)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._schedule()

    @property
    def exhausted(self) -> bool:
        """Nothing more will come: every item finished and every worker reaped, or closed."""
        return self.closed or (self.unfinished == 0 and not self.workers and not self._produced)

    def process_for(self, pid: int) -> Any:
        return self._processes.get(pid)

    @staticmethod
    def _close_at_exit(workers: list) -> None:
        for worker in list(workers):
            worker.terminate()
            worker.join(TERMINATE_GRACE)
            if worker.process.exitcode is None:
                worker.process.kill()

    def close(self, terminate: bool = False) -> None:
        """Stop every worker and reap it; ``terminate`` does not wait for items to finish."""
        self.closed = True
        workers = list(self.workers)
        for worker in workers:
            if terminate:
                worker.terminate()
            elif not worker.stopping:
                worker.stop()
        deadline = time.monotonic() + TERMINATE_GRACE
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            self._forget(worker)
        self._at_exit.cancel()

    # -- the one blocking point ------------------------------------------------------------

    def receive(self, timeout: float | None) -> list:
        """Events that arrived within ``timeout`` seconds (``None``: until something happens)."""
        if self.exhausted:
            return []
        events, self._produced = self._produced, []
        if events:
            timeout = 0.0  # hand these out now; only look for more
        if self._awaiting_verdict:  # the engine has seen the failure and said nothing: go on
            self._awaiting_verdict = False
            self._schedule()
        deadline = failures.next_deadline(self.workers, self.item_timeout)
        if deadline is not None:
            due = max(0.0, deadline - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        ready = self._poller.poll(None if timeout is None else timeout * 1000)
        exited = []
        for fd, _ in ready:
            worker, is_pipe = self._by_fd.get(fd, (None, False))
            if worker is None:
                continue
            if is_pipe:
                self._read(worker, events)
            else:
                exited.append(worker)
        for worker in exited:  # after reading every pipe, so a sibling's events come first
            self._reap(worker, events)
        self.received += len(events)
        if deadline is not None and time.monotonic() >= deadline:
            failures.kill_overdue(self.workers, self.item_timeout)
        if not self._awaiting_verdict:
            self._schedule()
        return events

    # -- the engine's verdicts on failures (issue 19) ---------------------------------------

    def run_again(self, offset: int, attempt: int) -> None:
        """Queue ``offset`` again, first in line, as attempt number ``attempt``.

        The item's earlier attempt ended without ``done`` (the engine dropped it), so it is
        unfinished again. The engine stamps ``attempt`` on the ``Started`` it receives. After
        ``cancel_not_started`` the item is cancelled instead, like every item not started.
        """
        self.unfinished += 1
        if self.stopped:
            self._cancel(offset, time.time())
            return
        self.pending.appendleft(offset)
        self._awaiting_verdict = False
        self._schedule()

    def cancel_not_started(self) -> None:
        """End every item no worker has started with ``ItemCancelled`` (``stop_on_error``):
        its ``error`` and ``done`` come with the next ``receive``."""
        self.stopped = True
        self._awaiting_verdict = False
        now = time.time()
        for queue in (self.pending, self.inherit_only):
            while queue:
                self._cancel(queue.popleft(), now)
        self._schedule()

    def _cancel(self, offset: int, now: float) -> None:
        self._produced += failures.cancelled(offset, now)
        self.unfinished -= 1

    # -- reading events --------------------------------------------------------------------

    def _read(self, worker: WorkerHandle, events: list) -> None:
        try:
            batches = worker.read_batches()
        except (EOFError, OSError):
            self._close_pipe(worker)  # the worker is gone; its sentinel tells the rest
            return
        heard = time.monotonic()  # when the parent heard of these starts (item_timeout counts from it)
        held = worker.held
        # The transport's bookkeeping (which items this worker still holds, how long items
        # take), in locals: written back once, not per event.
        running = worker.started_at is not None
        began = worker.item_began
        restarted = False  # an item started in these batches (and is still running, if ``running``)
        finished = 0
        seconds = 0.0
        chunked = 0  # events the Ran chunks stand for, beyond one each
        for batch in batches:
            before = chunked
            for event in batch:
                kind = type(event)
                if kind is Ran:
                    offsets = event.offsets
                    count = len(offsets)
                    # a worker runs its items in the order it got them: the chunk is the next held
                    if held[:count] == offsets:
                        del held[:count]
                    else:
                        for offset in offsets:
                            held.remove(offset)
                    running = False
                    finished += count
                    seconds += sum(event.ends) - sum(event.starts)  # on the worker's clock
                    chunked += 3 * count - 1
                elif kind is Done:
                    if held and held[0] == event.offset:
                        del held[0]
                    else:
                        held.remove(event.offset)
                    running = False
                    finished += 1
                    seconds += event.time - began  # on the worker's clock
                elif kind is Started:
                    running = restarted = True
                    began = event.time
                elif kind is Error and self.stop_on_error:
                    self._awaiting_verdict = True
            if chunked != before and not self.compact:
                batch = expand(batch)
            events.extend(batch)
        if self.compact:
            self.received += chunked
        if not running:
            worker.started_at = None
        elif restarted:
            worker.started_at = heard
        worker.item_began = began
        self.unfinished -= finished
        self._sizer.timed(finished, seconds)

    def _close_pipe(self, worker: WorkerHandle) -> None:
        if not worker.eof:
            worker.eof = True
            self._poller.unregister(worker.fd)
            del self._by_fd[worker.fd]

    # -- handing out work ------------------------------------------------------------------

    def _schedule(self) -> None:
        """Feed workers that have room, stop those with nothing left, start processes in free slots."""
        for worker in self.workers:
            if not worker.stopping and not worker.dedicated:
                self._feed(worker)
        while len(self.workers) < self.max_workers:
            if self.inherit_only:
                offset = self.inherit_only.popleft()
                self._spawn(first=[(offset, self.items[offset])])
            elif self.pending and self.max_items == 1:
                offset = self.pending.popleft()
                self._spawn(first=[(offset, self.items[offset])])
            elif self.pending and not self._inherit and not chunks.transportable(self.items[self.pending[0]]):
                self.inherit_only.append(self.pending.popleft())  # no regular worker for it
            elif self.pending:
                self._feed(self._spawn(first=None))
            else:
                return

    def _chunk_size(self) -> int:
        """Guided: a share of what is left, so workers finish together, at most MAX_CHUNK;
        but never so small that a chunk is over before the parent can answer with the next
        (CHUNK_SECONDS of work, judged from the items finished so far, up to
        QUICK_CHUNK_LIMIT items: issue 18, each chunk costs both sides a message, a batch
        and a wake-up, and 512 microsecond items are half a millisecond of work). Only
        under fork, where a chunk is offsets alone: pickled items, MAX_CHUNK of them, must
        stay within what a busy worker may be sent (BUSY_SEND_LIMIT).

        10 ms of work rather than 2, up to 16,384 items rather than 2,048: fewer chunks to hand
        out, and more slack for a worker while this loop waits for the GIL (a recorded run's
        writer thread holds it up to the 5 ms switch interval). A million trivial items:
        1.07 -> 1.00 s unrecorded, 1.66 -> 1.46 s recorded (issue 18)."""
        if self.stop_on_error:
            return 1  # never hold items another failure could have cancelled
        return self._sizer.size(len(self.pending))

    def _ahead(self, size: int) -> int:
        """How many items a worker may still hold when it is sent a chunk of ``size``.

        Half a chunk, so work stays balanced; a whole one when a chunk is known to be quick
        (under AHEAD_SECONDS of work): a worker then always has its next chunk at hand and
        never waits for a parent slowed by a busy machine (issue 18), and holding that much
        more costs the others little at the end of the run.
        """
        if self._sizer.quick(size, AHEAD_SECONDS):
            return size
        return size // 2

    def _feed(self, worker: WorkerHandle) -> None:
        held = len(worker.held)
        if held and (self.stop_on_error or held > self._largest_chunk):
            return  # it holds more than any chunk's worth: no need to size one (most receives)
        while self.pending:
            size = self._chunk_size()
            if worker.held and (self.stop_on_error or len(worker.held) > self._ahead(size)):
                return
            if self.max_items is not None:
                size = min(size, self.max_items - worker.sent)
            if size <= 0:
                break
            offsets = self.pending.take_range(size, MAX_LISTED) if self._inherit else self.pending.take(size)
            if not self._send(worker, offsets):
                return
        if not worker.held:
            worker.stop()  # nothing left for it: free its slot

    def _send(self, worker: WorkerHandle, offsets: Sequence[int]) -> bool:
        """Send a chunk, unless it is large and the worker busy: False, the items stay queued.

        A busy worker reads its next chunk only between items; an item stuck in C code would
        leave the parent blocked in a large send, unable to enforce ``item_timeout`` or read
        anyone else. A chunk that fits the pipe's buffer never blocks, and an idle worker
        always drains.

        Forked workers hold every item already, in the memory they inherited: they are sent
        only the offsets (nothing is pickled, and the parent never touches the items again,
        which after a fork would copy every page they sit on), as a ``range`` when they are
        consecutive (a few bytes to pickle, not thousands of ints: issue 18).
        """
        if self._inherit:
            worker.send(offsets, None)
            return True
        packed = chunks.pack(self.items, offsets)
        self.inherit_only.extend(packed.at_start_only)
        self.pending.extendleft(reversed(packed.later))
        if not packed.offsets:
            return True
        if worker.held and len(packed.blob) > BUSY_SEND_LIMIT:
            self.pending.extendleft(reversed(packed.offsets))
            return False
        worker.send(packed.offsets, packed.blob)
        return True

    def _spawn(self, first: list | None) -> WorkerHandle:
        worker = WorkerHandle.start(
            self.context, self.function, self.shared_data, self.style, first, self.max_items,
            name=f"mpmq-worker-{len(self._processes)}", announce_starts=self.item_timeout is not None,
            items=self.items if self._inherit else None, retry_on=self.retry_on,
        )
        self._processes[worker.pid] = worker.process
        self.workers.append(worker)
        self._by_fd[worker.fd] = (worker, True)
        self._by_fd[worker.sentinel] = (worker, False)
        self._poller.register(worker.fd, select.POLLIN)
        self._poller.register(worker.sentinel, select.POLLIN)
        return worker

    # -- deaths and deadlines --------------------------------------------------------------

    def _reap(self, worker: WorkerHandle, events: list) -> None:
        # Drain what the worker sent before it exited (never lose an event): all of it is in
        # the pipe by now. Read until the pipe is empty, not until it closes: a process the
        # item forked may hold the worker's end open for as long as it lives.
        if not worker.eof:
            os.set_blocking(worker.fd, False)  # an empty pipe ends _read (BlockingIOError)
        while not worker.eof:
            self._read(worker, events)
        worker.process.join()
        if worker.held:
            self._fail_running(worker, events)
        self._forget(worker)

    def _forget(self, worker: WorkerHandle) -> None:
        self._close_pipe(worker)
        if worker.sentinel in self._by_fd:
            self._poller.unregister(worker.sentinel)
            del self._by_fd[worker.sentinel]
        if worker in self.workers:
            self.workers.remove(worker)
        worker.close()

    def _fail_running(self, worker: WorkerHandle, events: list) -> None:
        """The worker died holding items: fail the one it was running, requeue the rest.

        Items before it whose events never left the worker are re-run rather than lost.
        """
        held = list(worker.held)
        worker.held.clear()
        culprit = failures.culprit(worker, held, self._strikes)
        if culprit is not None:
            held.remove(culprit)
            events += failures.died(worker, culprit, self.item_timeout)
            self.unfinished -= 1
            if self.stop_on_error:
                self._awaiting_verdict = True
        queue = self.inherit_only if worker.dedicated else self.pending
        queue.extendleft(reversed(held))  # back to the front of the queue, in order
