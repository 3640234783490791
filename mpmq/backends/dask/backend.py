"""The Dask backend: items run as tasks on a Dask cluster, their events come back on a topic.

    parent (this module)                       Dask worker (task.py)
    pending offsets --client.submit(chunk)-->  run_chunk: ItemRunner per item
    receive() <--[task id, batch no, events, last]-- worker.log_event(topic)   (via the scheduler)
    receive() <--(task id)-- the task's future, when it ends

``receive`` is the parent's one blocking point: one queue that the topic's subscription and
the futures' callbacks both feed, waited on with a timeout only when an item deadline is due.
At most ``workers`` tasks are in flight, so ``processes_to_start`` still caps how many items
run at once; small items travel in chunks (one task per ~``CHUNK_SECONDS`` of work), since a
Dask task costs milliseconds (issue 17).

Which task runs which item, and which item each task is running, is known from the events
themselves. A task's batches are numbered and its last says so, so the task is retired only
once all of them arrived, whenever its future's end is heard of. A failed future means:

- ``KilledWorker`` (its worker died): the item it was running fails with ``WorkerDied``
  naming the worker's address and its last log lines; the items it had not started are run
  again elsewhere (an item killing workers before its start is seen fails at its second try);
- cancelled (the task's dependency, shared_data, was lost: every worker holding it died):
  its items run again, with shared_data sent again; but the item it was running, if that
  worker died running it, fails with ``WorkerDied``, at its second death if its start was
  never heard of (a scheduler that re-runs a dead worker's task cannot run this one, and as
  a new task the item's deaths would be counted from 0 again);
- any other exception (the task could not run at all): each of its items fails with it.

A scheduler that re-runs the task of a dead worker itself (``allowed-failures`` above 0) is
seen by the task's batches counting from 1 again: the re-run is announced on the item and
counted as a new attempt; on such a scheduler every item is a task of its own, so that no item
that already finished runs again with it.

shared_data goes to the workers once per run, not with each task, and a worker that joins
mid-run is given a copy too (``shared_data.py``).
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from typing import Any

import msgspec

from ...events import Done, Error, Log, Started, decode_batch
from ..chunk_sizes import ChunkSizer
from . import failures
from .link import ClusterLink
from .shared_data import SharedCopies
from .task import run_chunk
from .tasks import Task, task_id_of, task_key

MAX_CHUNK = 500
CHUNK_SECONDS = 0.05  # the least work a task holds once item times are known: a task costs ms
MESSAGES_PER_RECEIVE = 64
LAST_BATCH_WAIT = 2.0  # seconds a run's end waits for tasks' last batches, right behind their items' ends
FORGET_EVERY = 256  # batches received between two requests to the scheduler to drop them (link.py)
_ATTEMPT = "attempt" in Started.__struct_fields__  # retries (issue 19) number an item's runs


class DaskBackend:
    """Runs ``items`` on a Dask cluster, at most ``workers`` at a time, and yields their events."""

    def __init__(
        self,
        function: Callable,
        items: list[Mapping],
        shared_data: Mapping,
        *,
        workers: int,
        style: str,
        link: ClusterLink,
        item_timeout: float | None = None,
        stop_on_error: bool = False,
        offsets: list[int] | None = None,
        retry_on: tuple | None = None,
        engine_decides: bool = False,
    ) -> None:
        self.function = function
        self.items = items
        self.shared_data = shared_data
        self.style = style
        self.link = link
        self.client = link.client
        self.item_timeout = item_timeout
        self.stop_on_error = stop_on_error
        self.retry_on = retry_on
        # Whether the engine decides what a failure means (issue 19's FailurePolicy: it calls
        # run_again or cancel_not_started); if not, the first failure stops the run here.
        self.engine_decides = engine_decides
        self._awaiting_verdict = False  # a failure was read: no new work until the engine decides
        self._produced: list = []  # events made between receives (cancellations)
        self.pending: deque[int] = deque(range(len(items)) if offsets is None else offsets)
        self.unfinished = len(self.pending)
        self.max_tasks = max(1, min(workers, len(self.pending)))
        self.topic = f"mpmq-{uuid.uuid4().hex}"
        self.compact = False  # never coalesced here: accepted for the engine's sake
        self.stopped = False
        self.closed = False
        self.one_item_per_task = item_timeout is not None or stop_on_error
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._tasks: dict[int, Task] = {}
        self._owner: dict[int, int] = {}  # offset -> the task now running it
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._deadlines: dict[int, float] = {}  # task id -> monotonic deadline of its item
        self._strikes: dict[int, int] = {}
        self._shared = SharedCopies(link, shared_data)
        self._subscribed = False
        self._sizer = ChunkSizer(self.max_tasks, CHUNK_SECONDS, MAX_CHUNK)
        self._batches = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.link.check_workers()
        if not self.link.owned and self.link.reruns_tasks():
            self.one_item_per_task = True  # a re-run task takes only the item that was running
        self.client.subscribe_topic(self.topic, self._on_batch)
        self._subscribed = True
        self._shared.send()
        self._submit()
        self._shared.watch()

    @property
    def exhausted(self) -> bool:
        return self.closed or (self.unfinished == 0 and not self._produced)

    def process_for(self, pid: int) -> Any:
        return None  # no process object of ours: the worker lives in the cluster

    def close(self, terminate: bool = False) -> None:
        """Cancel what is left (``terminate``: what runs too), let go of the cluster."""
        if self.closed:
            return
        if not terminate:
            self._await_last_batches()
        self.closed = True
        self._shared.stop_watching()
        try:
            futures = [task.future for task in self._tasks.values() if not task.ended]
            if futures:
                self.client.cancel(futures, force=terminate)
            if self._subscribed:
                self.client.unsubscribe_topic(self.topic)
                self.link.forget_topic(self.topic)
            self._shared.release()
        except Exception:  # the cluster is already gone: nothing of ours left on it
            logging.getLogger(__name__).debug("closing a run on a cluster that is gone", exc_info=True)
        finally:
            self._tasks.clear()
            self._shared.future = None
            self.link.close(wait_for_restarts=not terminate)

    def _await_last_batches(self) -> None:
        """Every item has ended, but a task's last (empty) batch may still be on its way: take
        it (a few ms at most), so that the scheduler's copy is dropped after it arrived."""
        deadline = time.monotonic() + LAST_BATCH_WAIT
        ignored: list = []
        while self._tasks and time.monotonic() < deadline:
            try:
                message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if message[0] == "batch":
                self._read(message[1], ignored)
            else:
                self._ended(message[1], ignored)

    # -- the engine's requests (issue 19's seam) --------------------------------------------

    def run_again(self, offset: int, attempt: int) -> None:
        """Queue ``offset`` again, first in line, as attempt ``attempt`` (the engine stamps
        the number on its ``Started``); after ``cancel_not_started``, cancel it instead."""
        self.unfinished += 1
        self._awaiting_verdict = False
        if self.stopped:
            self._produced += failures.cancelled(offset, time.time())
            self.unfinished -= 1
            return
        self.pending.appendleft(offset)

    def cancel_not_started(self) -> None:
        """End every item not yet submitted with ``ItemCancelled`` (``stop_on_error``): its
        ``error`` and ``done`` come with the next ``receive``. Submitted items finish."""
        self.stopped = True
        self._awaiting_verdict = False
        now = time.time()
        while self.pending:
            self._produced += failures.cancelled(self.pending.popleft(), now)
            self.unfinished -= 1

    # -- the one blocking point ------------------------------------------------------------

    def receive(self, timeout: float | None) -> list:
        """Events that arrived within ``timeout`` seconds (``None``: until something happens)."""
        if self.exhausted:
            return []
        events, self._produced = self._produced, []
        if events:
            timeout = 0  # hand these over now, with whatever else has come
        if self._deadlines:
            due = max(0.0, min(self._deadlines.values()) - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        try:
            message = self._inbox.get(timeout=timeout) if timeout is None or timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            message = None
        taken = 0
        while message is not None:
            if message[0] == "batch":
                self._read(message[1], events)
            else:
                self._ended(message[1], events)
            taken += 1
            if taken == MESSAGES_PER_RECEIVE:  # handlers see the first events while more arrive
                break
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                message = None
        if self._deadlines and min(self._deadlines.values()) <= time.monotonic():
            self._time_out(events)
        if self.stopped and self.pending:  # put back after the stop: never started, so cancelled
            self.cancel_not_started()
        self._submit()
        events += self._produced
        self._produced = []
        return events

    def _on_batch(self, event: tuple) -> None:
        """The topic's handler, in the client's event loop: hand the message over, nothing more."""
        self._inbox.put(("batch", event[1]))

    # -- reading events --------------------------------------------------------------------

    def _read(self, message: list, events: list) -> None:
        task_id, number, data, last = message
        task = self._tasks.get(task_id)
        if task is None:
            return  # a task given up (timed out, failed over): what it still says is no item's
        if number <= task.last_batch:
            self._rerun_by_scheduler(task, events)
        task.last_batch = number
        task.received += 1
        self._batches += 1
        if self._batches % FORGET_EVERY == 0:
            self.link.forget_topic(self.topic)
        if last:
            task.expected = number
        owner = self._owner
        kept = []
        for event in decode_batch(data):
            offset = event.offset
            if owner.get(offset) != task_id:
                continue
            kind = type(event)
            if kind is Log:
                task.last_logs.append(event.message)
            elif kind is Started:
                task.running, task.began = offset, event.time
                task.worker, task.pid = event.worker, event.pid
                task.last_logs.clear()
                if _ATTEMPT and task.runs > 1:  # the scheduler's re-run (the engine's retries stamp their own)
                    event = msgspec.structs.replace(event, attempt=task.runs)
                if self.item_timeout is not None:
                    self._deadlines[task_id] = time.monotonic() + self.item_timeout
            elif kind is Done:
                del owner[offset]
                task.running = None
                self._deadlines.pop(task_id, None)
                self.unfinished -= 1
                self._sizer.timed(1, event.time - task.began)
            elif kind is Error:
                self._on_failure()
            kept.append(event)
        events += kept
        if task.expected is not None and task.received >= task.expected:
            self._retire(task, events)

    def _rerun_by_scheduler(self, task: Task, events: list) -> None:
        """The task's batches count from 1 again: its worker died and the scheduler
        (``allowed-failures`` above 0) runs it again. Say so on the item it was running."""
        task.runs += 1
        task.received = 0
        task.expected = None
        if task.running is not None:
            events.append(failures.rerun_announced(task))
            task.running = None

    def _ended(self, task_id: int, events: list) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.ended:
            return
        task.ended = True
        future, task.future = task.future, None  # released: a result held on a worker that dies is not recomputed
        self._in_flight -= 1
        if future.status == "error":
            self._failed(task, future.exception(), events)
        elif future.status == "cancelled":
            self._failed(task, CancelledError(), events)

    def _retire(self, task: Task, events: list) -> None:
        """Every batch of the task arrived: it is over (its slot is freed now, should the
        future's end be heard of later). An item it never ended (impossible unless events
        were lost) is run again rather than lost."""
        del self._tasks[task.id]
        task.future = None  # released (see _ended)
        if not task.ended:
            task.ended = True
            self._in_flight -= 1
        lost = [offset for offset in task.offsets if self._owner.get(offset) == task.id]
        self._requeue(lost)

    def _failed(self, task: Task, exc: BaseException, events: list) -> None:
        del self._tasks[task.id]
        self._deadlines.pop(task.id, None)
        left = [offset for offset in task.offsets if self._owner.get(offset) == task.id]
        if not left or isinstance(exc, CancelledError):  # not by us: shared_data was lost
            # Asked first: the scatter below waits for a running worker, maybe a restarted one.
            culprit = self._blame(task, left) if left and self._died_running(task) else None
            if left and self._shared.lost:
                self._shared.send()
        elif type(exc).__name__ != "KilledWorker":  # the task could not run at all
            for offset in left:
                del self._owner[offset]
                events += failures.could_not_run(offset, exc)
                self.unfinished -= 1
            self._on_failure()
            return
        else:
            culprit = self._blame(task, left)
        if culprit is not None:
            left.remove(culprit)
            del self._owner[culprit]
            events += failures.worker_died(task, culprit, exc)
            self.unfinished -= 1
        self._requeue(left)
        if culprit is not None:
            self._on_failure()

    def _blame(self, task: Task, left: list[int]) -> int | None:
        """The item a task's dead worker was running: the one it said it started, else, at its
        second death, the first it had not ended (its start may have died with the worker)."""
        if task.running in left:
            return task.running
        first = left[0]
        self._strikes[first] = self._strikes.get(first, 0) + 1
        return first if self._strikes[first] >= 2 else None

    def _died_running(self, task: Task) -> bool:
        """Whether a cancelled task's worker died running it, and with it the last copy of
        shared_data, so the scheduler cancelled the task. A scheduler with ``allowed-failures``
        above 0 runs such a task no more; run again as a new task, the item's deaths would be
        counted from 0 each time, without end. The worker is the one its events named, else
        the one the scheduler removed while the task was assigned to it (killed before it said
        anything), if it was this run's only task there: which of several ran and which waited
        (more tasks in flight than the cluster has threads, ``worker-saturation`` above 1) the
        scheduler does not know, and blaming the first was wrong one time in five."""
        try:
            if task.worker is not None:
                return task.worker not in self.link.workers()
            removal = self.link.removed_while_assigned(task_key(self.topic, task.id))
            if removal is None:
                return False
            worker, assigned = removal
            ours = [task_id for key in assigned if (task_id := task_id_of(self.topic, key)) is not None]
            if ours != [task.id]:
                return False
            task.worker = worker
            return True
        except Exception:  # the cluster is gone: the run ends anyway
            return False

    def _on_failure(self) -> None:
        """An item failed. Under ``stop_on_error`` nothing new is submitted until it is known
        whether that was the item's final failure: the engine says so when it decides
        (``run_again`` or ``cancel_not_started``), else it is, and the run stops here."""
        if not self.stop_on_error or self.stopped:
            return
        if self.engine_decides:
            self._awaiting_verdict = True
        else:
            self.cancel_not_started()

    def _requeue(self, offsets: list[int]) -> None:
        """Back to the front of the queue, in order (under a stop, cancelled with the rest)."""
        for offset in offsets:
            self._owner.pop(offset, None)
        self.pending.extendleft(reversed(offsets))

    # -- deadlines -------------------------------------------------------------------------

    def _time_out(self, events: list) -> None:
        """Fail each overdue item now, and restart its worker in the background: a Dask task
        cannot be stopped, and a restart takes seconds (the nanny waits for a clean stop)."""
        now = time.monotonic()
        for task_id, deadline in list(self._deadlines.items()):
            if deadline > now:
                continue
            del self._deadlines[task_id]
            task = self._tasks.pop(task_id)
            offset = task.running
            if not task.ended:
                self._in_flight -= 1
                future, task.future = task.future, None
                future.release()  # first: or the scheduler runs the hung task again elsewhere
            events += failures.timed_out(task, offset, self.item_timeout)
            del self._owner[offset]
            self.unfinished -= 1
            self._requeue([o for o in task.offsets if self._owner.get(o) == task_id])
            if task.worker is not None:
                self.link.restart_in_background(task.worker)
            self._on_failure()

    # -- handing out work ------------------------------------------------------------------

    def _chunk_size(self) -> int:
        """Guided, as locally: a share of what is left, so workers finish together, but at
        least ``CHUNK_SECONDS`` of work once item times are known, at most ``MAX_CHUNK``."""
        if self.one_item_per_task:
            return 1
        return self._sizer.size(len(self.pending))

    def _submit(self) -> None:
        while (self._in_flight < self.max_tasks and self.pending and not self.closed and not self.stopped
               and not self._awaiting_verdict):
            size = min(self._chunk_size(), len(self.pending))
            offsets = [self.pending.popleft() for _ in range(size)]
            task_id = next(self._ids)
            future = self.client.submit(
                run_chunk, self.function, self.style, self._shared.future, self.topic, task_id, offsets,
                [self.items[offset] for offset in offsets], self.item_timeout is not None, self.retry_on,
                key=task_key(self.topic, task_id), retries=0,
            )
            task = Task(task_id, offsets, future)
            self._tasks[task_id] = task
            for offset in offsets:
                self._owner[offset] = task_id
            self._in_flight += 1
            future.add_done_callback(self._callback_for(task_id))

    def _callback_for(self, task_id: int) -> Callable[[Any], None]:
        inbox = self._inbox

        def ended(future: Any) -> None:
            # In Dask's one callback thread, shared by every client of this process: only
            # say which task it was (a wait here would hold up every other run's callbacks;
            # the future itself stays with its task, released as soon as it is not needed).
            inbox.put(("ended", task_id))

        return ended
