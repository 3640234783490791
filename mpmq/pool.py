"""The live source of events: long-lived worker processes, one duplex connection each.

    parent                                   worker i (worker.py)
    pending offsets --chunk of items-->      conn i --> run items
    receive() <--event batches--------------  conn i
    receive() <--exit-----------------------  sentinel i

``receive`` is the parent's one blocking point: a single ``multiprocessing.connection.wait``
over every worker's connection and process sentinel (as CPython's ProcessPoolExecutor waits
on its result reader and sentinels), with a timeout only when an item deadline is due.
A worker that dies is noticed through its sentinel at once: the item it was running fails
with ``WorkerDied`` (exit code and signal, pid, last log lines), the items it held but had
not started go back to the queue, and a replacement starts while work remains.

The pool knows which worker holds which items (transport bookkeeping); the run's state is
derived from the events it returns, by the reducer, elsewhere.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from .errors import ItemCancelled, ItemTimeout, WorkerDied, qualified_name
from .events import Done, Error, Log, Started, decode_batch
from .worker import worker_main

MAX_CHUNK = 512
READS_PER_WAKE = 64
TERMINATE_GRACE = 1.0
LAST_LOG_LINES = 5


class _Worker:
    """The parent's view of one worker process."""

    def __init__(self, process: Any, conn: Any, dedicated: bool) -> None:
        self.process = process
        self.conn = conn
        self.dedicated = dedicated
        self.held: deque[int] = deque()  # sent, not finished, in the order the worker runs them
        self.started_at: float | None = None  # parent clock when held[0] started
        self.sent = 0
        self.stopping = False
        self.killed_for_timeout = False
        self.last_logs: deque[str] = deque(maxlen=LAST_LOG_LINES)

    @property
    def pid(self) -> int:
        return self.process.pid


def exit_description(exitcode: int | None) -> str:
    """``SIGKILL (-9)`` for signals, ``code 3`` for exits."""
    if exitcode is None:
        return "an unknown status"
    if exitcode < 0:
        try:
            return f"{signal.Signals(-exitcode).name} ({exitcode})"
        except ValueError:
            return f"signal {-exitcode} ({exitcode})"
    return f"code {exitcode}"


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
    ) -> None:
        self.function = function
        self.items = items
        self.shared_data = shared_data
        self.max_workers = max(1, min(workers, len(items)))
        self.context = context
        self.style = style
        self.max_items = max_items_per_worker
        self.item_timeout = item_timeout
        self.stop_on_error = stop_on_error
        self.pending: deque[int] = deque(range(len(items)))
        self.inherit_only: deque[int] = deque()  # items that can only reach a process at its start
        self.unfinished = len(items)
        self.workers: dict[Any, _Worker] = {}  # by connection and by sentinel
        self.stopped = False
        self.processes_started = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._start_workers()

    @property
    def exhausted(self) -> bool:
        return self.unfinished == 0 and not self.workers

    def live_workers(self) -> list[_Worker]:
        return list({id(w): w for w in self.workers.values()}.values())

    def process_for(self, pid: int) -> Any:
        for worker in self.live_workers():
            if worker.pid == pid:
                return worker.process
        return None

    def close(self, terminate: bool = False) -> None:
        """Stop every worker and reap it; ``terminate`` does not wait for items to finish."""
        workers = self.live_workers()
        for worker in workers:
            if terminate:
                _terminate(worker.process)
            elif not worker.stopping:
                self._stop(worker)
        deadline = time.monotonic() + TERMINATE_GRACE
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers.clear()

    # -- the one blocking point ------------------------------------------------------------

    def receive(self, timeout: float | None) -> list:
        """Events that arrived within ``timeout`` seconds (``None``: until something happens)."""
        if self.exhausted:
            return []
        events: list = []
        deadline = self._next_deadline()
        if deadline is not None:
            due = max(0.0, deadline - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        ready = wait(list(self.workers), timeout)
        for handle in ready:
            worker = self.workers.get(handle)
            if worker is None:
                continue
            if handle is worker.conn:
                self._read(worker, events)
            else:
                self._reap(worker, events)
        if deadline is not None and time.monotonic() >= deadline:
            self._kill_overdue()
        self._start_workers()
        return events

    # -- reading events --------------------------------------------------------------------

    def _read(self, worker: _Worker, events: list) -> None:
        conn = worker.conn
        for _ in range(READS_PER_WAKE):
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return  # the worker is gone; its sentinel tells the rest
            batch = decode_batch(data)
            for event in batch:
                self._track(worker, event, events)
            events.extend(batch)
            if not conn.poll():
                break
        self._feed(worker)

    def _track(self, worker: _Worker, event: Any, events: list) -> None:
        if type(event) is Log:
            worker.last_logs.append(event.message)
        elif type(event) is Started:
            worker.started_at = time.monotonic()
            worker.last_logs.clear()
        elif type(event) is Done:
            if worker.held and worker.held[0] == event.offset:
                worker.held.popleft()
            else:
                worker.held.remove(event.offset)
            worker.started_at = None
            self.unfinished -= 1
        elif type(event) is Error and self.stop_on_error and not self.stopped:
            self.stopped = True
            self._cancel_pending(events)

    def _cancel_pending(self, events: list) -> None:
        """stop_on_error: every item that never ran still gets its own entry, a cancellation."""
        now = time.time()
        cancelled_type = qualified_name(ItemCancelled)
        for queue in (self.pending, self.inherit_only):
            while queue:
                offset = queue.popleft()
                message = "cancelled: an earlier item failed and stop_on_error is set"
                events.append(Error(offset, 0, now, cancelled_type, message))
                events.append(Done(offset, 0, now))
                self.unfinished -= 1

    # -- handing out work ------------------------------------------------------------------

    def _chunk_size(self) -> int:
        if self.stop_on_error:
            return 1  # never hold items another failure could have cancelled
        guided = len(self.pending) // (2 * self.max_workers)
        return max(1, min(MAX_CHUNK, guided))

    def _feed(self, worker: _Worker) -> None:
        if worker.stopping or worker.dedicated:
            return
        size = self._chunk_size()
        if len(worker.held) > size // 2 or (self.stop_on_error and worker.held):
            return
        if self.max_items is not None:
            size = min(size, self.max_items - worker.sent)
        offsets = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
        if offsets:
            self._send(worker, offsets)
        if not worker.held and (not self.pending or worker.sent == self.max_items):
            self._stop(worker)

    def _send(self, worker: _Worker, offsets: list[int]) -> None:
        items = [self.items[offset] for offset in offsets]
        try:
            blob = bytes(ForkingPickler.dumps(items))
        except Exception:
            # Some items (e.g. holding a multiprocessing.Queue) can only reach a process when
            # it starts: give those a process of their own, as 0.7.0 did for every item.
            blob, offsets = self._split_transportable(offsets)
            if not offsets:
                return
        worker.conn.send((offsets, blob))
        worker.held.extend(offsets)
        worker.sent += len(offsets)

    def _split_transportable(self, offsets: list[int]) -> tuple[bytes, list[int]]:
        ok = []
        for offset in offsets:
            try:
                ForkingPickler.dumps(self.items[offset])
                ok.append(offset)
            except Exception:
                self.inherit_only.append(offset)
        return bytes(ForkingPickler.dumps([self.items[o] for o in ok])), ok

    def _stop(self, worker: _Worker) -> None:
        worker.stopping = True
        try:
            worker.conn.send(None)
        except OSError:
            pass  # already gone; the sentinel will say so

    def _start_workers(self) -> None:
        while len(self.live_workers()) < self.max_workers:
            if self.inherit_only:
                offset = self.inherit_only.popleft()
                self._spawn(first=[(offset, self.items[offset])], dedicated=True)
            elif self.pending:
                if self.max_items == 1:
                    offset = self.pending.popleft()
                    self._spawn(first=[(offset, self.items[offset])], dedicated=True)
                else:
                    self._feed(self._spawn(first=None, dedicated=False))
            else:
                return

    def _spawn(self, first: list | None, dedicated: bool) -> _Worker:
        parent_end, child_end = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=worker_main,
            args=(child_end, self.function, self.shared_data, self.style, first,
                  1 if dedicated else self.max_items),
            name=f"mpmq-worker-{self.processes_started}",
            daemon=True,
        )
        process.start()
        child_end.close()  # only the worker holds it now, so its death reads as EOF here
        self.processes_started += 1
        worker = _Worker(process, parent_end, dedicated)
        if first:
            worker.held.extend(offset for offset, _ in first)
            worker.sent = len(first)
            worker.stopping = True
        self.workers[parent_end] = worker
        self.workers[process.sentinel] = worker
        return worker

    # -- deaths and deadlines --------------------------------------------------------------

    def _reap(self, worker: _Worker, events: list) -> None:
        while True:  # drain what the worker sent before it exited: never lose an event
            try:
                if not worker.conn.poll():
                    break
                batch = decode_batch(worker.conn.recv_bytes())
            except (EOFError, OSError):
                break
            for event in batch:
                self._track(worker, event, events)
            events.extend(batch)
        worker.process.join()
        if worker.held:
            self._fail_running(worker, events)
        del self.workers[worker.conn]
        del self.workers[worker.process.sentinel]
        worker.conn.close()

    def _fail_running(self, worker: _Worker, events: list) -> None:
        offset = worker.held.popleft()  # workers run their items in order: the first is running
        now = time.time()
        if worker.killed_for_timeout:
            kind = ItemTimeout
            message = f"item {offset} timed out after {self.item_timeout} s; its worker (pid {worker.pid}) was killed"
        else:
            kind = WorkerDied
            status = exit_description(worker.process.exitcode)
            message = f"worker (pid {worker.pid}) exited with {status} while running item {offset}"
        if worker.last_logs:
            message += "; last log lines:\n" + "\n".join(f"  {line}" for line in worker.last_logs)
        events.append(Error(offset, worker.pid, now, qualified_name(kind), message))
        events.append(Done(offset, worker.pid, now))
        self.unfinished -= 1
        # items it held but never started go back to the front of the queue, in order
        for requeued in reversed(worker.held):
            (self.inherit_only if worker.dedicated else self.pending).appendleft(requeued)
        worker.held.clear()

    def _next_deadline(self) -> float | None:
        if self.item_timeout is None:
            return None
        starts = [w.started_at for w in self.live_workers() if w.started_at is not None and not w.killed_for_timeout]
        return min(starts) + self.item_timeout if starts else None

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for worker in self.live_workers():
            if worker.started_at is not None and now - worker.started_at >= self.item_timeout:
                worker.killed_for_timeout = True
                worker.process.kill()


def _terminate(process: Any) -> None:
    if process.exitcode is None:
        try:
            process.terminate()
        except OSError:
            pass


def cpu_count() -> int:
    return os.cpu_count() or 1
