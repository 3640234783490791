"""The engine: one loop from a source of events to the handlers.

    worker processes --event batches--> WorkerPool.receive()   (backends/local/pool.py: one wait)
        or a recording -----------------> RecordedSource        (sources.py)
    -> FailurePolicy.review: attempts, retries, stop_on_error  (retries.py, live runs)
    -> stamp (seq, received_at) -> Recorder.append             (recording/writer.py, if asked)
    -> reduce(state, event)                                     (state.py: the only state change)
    -> process_event(event)                                     (handlers; compat.py turns events
                                                                 into 0.7.0 messages and hooks)

Events are reduced and handed to the handlers one at a time, in receive order, as the
consumer asks for them (a ``Ran`` chunk of items that only returned a value is folded in one
step when no handler looks at those items one by one, and handed out as its per-item events
when one does: issue 18): whichever loop drives the run (``run()``, a client's own loop over
``message_queue.get``, or a replay), the state a handler sees is exactly the state after the
event it is handling. Results and failures are read from that state and nowhere else.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from . import outcomes, validate
from .backends.local.pool import WorkerPool
from .calling import call_style
from .errors import RunFailed
from .events import EVENT_TYPES, AnyEvent, Done, Ran, Result, Started, expand
from .retries import FailurePolicy
from .sources import EventSource, LiveSource, RecordedSource
from .state import FOLDS, RunState, reduce


class _Terminated(BaseException):
    """SIGTERM arrived in the parent: shut down exactly as for Ctrl-C."""


class Engine:
    """Runs ``function`` over ``process_data`` and hands every event to ``process_event``."""

    def __init__(
        self,
        function: Callable,
        *,
        process_data: list[Mapping] | None = None,
        shared_data: Mapping | None = None,
        processes_to_start: int | None = None,
        timeout: float | None = None,
        context: str | Any | None = None,
        item_timeout: float | None = None,
        stop_on_error: bool = False,
        max_items_per_worker: int | None = None,
        retries: int = 0,
        retry_delay: float = 0,
        retry_on: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        validate.check_function(function)
        validate.check_retries(retries, retry_delay, retry_on)
        validate.check_positive("item_timeout", item_timeout)
        validate.check_positive("max_items_per_worker", max_items_per_worker, int)
        self.function = function
        self.process_data = [{}] if process_data is None else process_data
        self.shared_data = {} if shared_data is None else shared_data
        # 0.7.0 applied the default here, and clients read it before the run (mpcurses)
        self.processes_to_start = processes_to_start or _default_workers(self.process_data, processes_to_start)
        self.timeout = timeout  # 0.7.0's join wait; accepted, never kills an item
        self.context = _context(context)
        self.item_timeout = item_timeout
        self.stop_on_error = stop_on_error
        self.max_items_per_worker = max_items_per_worker
        self.retries = retries  # issue 19: attempts after the first, for what retry_on allows
        self.retry_delay = retry_delay
        self.retry_on = retry_on
        self._policy: FailurePolicy | None = None
        self.resumed_from: int | None = None  # issue 19: the recorded run a resume=True run resumed
        self.resumed_items: list[int] = []  # issue 19: the offsets it took from that run
        self._source: EventSource | None = None
        self._ended_source: EventSource | None = None
        self._state = RunState.new(0)
        self._batches: deque = deque()  # (first seq, received_at, events) not yet handed out
        self._events: list = []  # the batch being handed out, event by event
        self._index = 0
        self._seq0 = 0
        self._received_at = 0.0
        self._recorder: Any = None
        self._folds = FOLDS
        self._record_options: dict = {}
        self._replay: Any = None
        self._allow_pickle = True
        self.recording_error: str | None = None

    # -- the typed-event handler -------------------------------------------------------------

    def process_event(self, event: AnyEvent) -> None:
        """Receives every event of the run, in order. Override it to watch typed events."""

    # -- driving a run -----------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The run's state after the last event handed to the handlers."""
        return self._state

    def execute_run(self) -> None:
        """Start the run and hand every event to ``process_event`` until the end."""
        self._begin()
        handlers = self._own_loop_handlers()
        while self._hand_out_received(None, handlers) or not self._over:
            pass

    def _event_handlers(self) -> dict[type, Callable[[Any], None] | None]:
        """What our own loop calls for each kind of event; ``None`` where nothing would happen.

        A run of 10,000 trivial items carries 30,000 events: calling a handler that does
        nothing for each is most of the parent's work, so hooks nobody overrode are skipped.
        """
        handler = self.process_event if type(self).process_event is not Engine.process_event else None
        return dict.fromkeys(EVENT_TYPES, handler)

    def _own_loop_handlers(self) -> dict[type, Callable[[Any], None] | None]:
        """``_event_handlers`` for ``_hand_out_received``, with what it does with an ``events.Ran``.

        A chunk of items that started, returned and ended is folded in one step when nobody
        looks at those events one by one (issue 18: a million trivial items). When a handler
        does (``on_start_process``, ``on_complete_process``, ``process_event``...), or a replay
        checks every event, the chunk is handed out as the events it stands for, each folded
        before its handler runs: the state a handler sees is exact either way.
        """
        handlers = self._event_handlers()
        folds = dict(FOLDS)
        if self._replay is not None or any(handlers[kind] is not None for kind in (Started, Result, Done)):
            handlers[Ran] = self._expand_chunks
            folds[Ran] = _fold_later
        else:
            handlers[Ran] = None
        self._folds = folds
        return handlers

    def _expand_chunks(self, event: Ran) -> None:
        """Put the per-item events of every chunk left in the batch in their place (``event``
        first), to be folded and handed out one by one."""
        index = self._index - 1
        events = self._events
        self._events = events[:index] + expand(events[index:])
        self._index = index

    def final(self) -> None:
        """Called at the end of ``execute`` and ``replay``, whatever happened."""

    def execute(
        self,
        raise_if_error: bool = False,
        *,
        record: str | os.PathLike | None = None,
        record_pickle: bool = False,
        redact: bool | Collection[str] = True,
        parent_run: int | None = None,
        resume: bool = False,
    ) -> list:
        """Run every item; return one result per item, in item order (an exception for a failure).

        ``record`` writes the run's events to a SQLite file (see README, Recording);
        ``record_pickle`` also keeps pickles of values JSON cannot hold; ``redact`` (default on)
        hides values under secret-looking keys, and may list extra key patterns; ``parent_run``
        records this run as a re-run of that run of the same file (``mpmq-replay rerun``);
        ``resume`` takes the items that succeeded in the file's latest run of this function and
        ``shared_data`` from the recording and runs only the rest (see README, Resume).
        """
        if record is not None and not isinstance(record, (str, bytes, os.PathLike)):
            raise TypeError(f"record= must be a file path (str or os.PathLike), not {type(record).__name__}")
        if resume and record is None:
            raise ValueError("resume=True resumes from a recording: give its path as record=")
        self._record_options = {
            "path": record, "keep_pickle": record_pickle, "redact": redact, "parent_run": parent_run,
            "resume": bool(resume),
        }
        self._replay = None
        self._allow_pickle = True
        results = self._drive()
        if raise_if_error:
            self.check_results(results)
        return results

    def _drive(self) -> list:
        status = "crashed"
        previous_sigterm = _catch_sigterm()
        try:
            try:
                self.execute_run()
                status = outcomes.run_status(self._state)
            except (KeyboardInterrupt, _Terminated):
                status = "interrupted"
                raise
            finally:
                self._end(status)
                self.final()
        except _Terminated:
            _restore_sigterm(previous_sigterm)
            signal.raise_signal(signal.SIGTERM)  # after a clean shutdown, die as asked
            raise KeyboardInterrupt from None  # only reached when SIGTERM is handled elsewhere
        finally:
            _restore_sigterm(previous_sigterm)
        return self.results()

    def replay(
        self,
        path: str | os.PathLike,
        run: int | None = None,
        allow_pickle: bool = False,
        *,
        clock: bool = True,
        speed: float | None = None,
        offsets: Collection[int] | None = None,
        until: int | None = None,
    ) -> list:
        """Re-drive this instance's handlers from a recording, starting no workers.

        The handlers are called exactly as ``execute`` called them, in the same order, with
        the clock reading each event's live receive time (``clock=False`` turns that off).
        Returns the recorded results; pickled values are loaded only with ``allow_pickle``.
        Raises ``ReplayDiverged`` when the replayed state differs from the recorded items.
        """
        from .replaying import ReplayPlan

        plan = ReplayPlan.open(path, run, clock=clock, speed=speed, offsets=offsets, until=until)
        self._replay, self._allow_pickle, self._record_options = plan, allow_pickle, {}
        self.replayed = plan
        try:
            try:
                self.execute_run()
            finally:
                self._end("replayed")
                self.final()
        finally:
            plan.close()
            self._replay = None
        plan.check(self._state)
        return self.results()

    def results(self) -> list:
        """One entry per item, in item order, read from the run's state."""
        return outcomes.outcomes(self._state, self._allow_pickle)

    @staticmethod
    def check_results(results: list) -> None:
        """Raise ``RunFailed`` naming every failed offset (0.7.0's wording)."""
        errors = {offset: r for offset, r in enumerate(results) if isinstance(r, BaseException)}
        if errors:
            raise RunFailed(errors)

    # -- the loop's steps --------------------------------------------------------------------

    def _begin(self) -> None:
        """Check the input, open the recording, start the source: before any handler runs."""
        if self._source is not None:
            return
        if self._replay is not None:
            self._state = RunState.new(self._replay.item_count)
            self._source = RecordedSource(self._replay.events(), self._replay.speed)
            self._source.start()
            return
        items = validate.check_process_data(self.process_data)
        shared = validate.check_shared_data(self.shared_data)
        workers = validate.worker_count(self.processes_to_start, len(items))
        style = self._call_style()
        validate.check_arguments(self.function, style, items, shared)
        validate.check_picklable(self.function, shared, items, self.context.get_start_method(),
                                 self.retry_on if self.retries else None)
        resumption = None
        if self._record_options.get("resume"):  # issue 19
            from .resume import plan_for

            resumption = plan_for(self._record_options, self.function, items, shared)
        self.resumed_from, self.resumed_items = (resumption.run_id, resumption.reused) if resumption else (None, [])
        if self._record_options.get("path") is not None:
            from .recording.session import open_recorder

            self._recorder = open_recorder(self, items, shared, workers)
        if resumption is None:
            self._source = self._live_source(items, shared, workers, style)
        else:  # issue 19: the recorded items first, then the backend, given only the rest
            from .resume import ResumedSource

            live = self._live_source(items, shared, workers, style, offsets=resumption.live)
            self._source = ResumedSource(resumption.events, live)
        try:
            self._source.start()
        finally:
            self._state = RunState.new(len(items))  # built while the first workers start up
        if self._recorder is not None:
            self._recorder.write_in_background(self._state)  # after the first forks: fewer forks with a thread

    def _live_source(self, items: list, shared: Mapping, workers: int, style: str,
                     offsets: list[int] | None = None) -> EventSource:
        """Where a live run's events come from: worker processes on this machine.

        The one seam between the engine and its workers: another source of events (workers
        on other machines, say) implements ``sources.EventSource`` and is returned here.
        """
        pool = WorkerPool(
            self.function, items, shared, workers=workers, context=self.context, style=style,
            max_items_per_worker=self.max_items_per_worker, item_timeout=self.item_timeout,
            stop_on_error=self.stop_on_error,
            retry_on=(self.retry_on or (BaseException,)) if self.retries else None, offsets=offsets,
        )
        pool.compact = True  # Ran chunks as they came: the loop expands them if anyone looks
        source = LiveSource(pool)
        if self.retries or self.stop_on_error:  # what a failure means is decided here (issue 19)
            self._policy = FailurePolicy(pool, self.retries, self.retry_delay, self.stop_on_error)
            source.review = self._policy.review
        return source

    @property
    def attempts_allowed(self) -> int:
        """How many times an item may run: 1 + ``retries`` (in a replay, as the recorded run had it)."""
        if self._replay is not None:
            recorded = self._replay.run.options.get("retries")
            if type(recorded) is int and recorded >= 0:
                return recorded + 1
        return self.retries + 1

    def _call_style(self) -> str:
        return call_style(self.function)

    @property
    def _over(self) -> bool:
        source = self._source
        return source is None or (
            self._index >= len(self._events) and not self._batches and source.exhausted
            and (self._policy is None or not self._policy.waiting)
        )

    def _hand_out_received(self, timeout: float | None, handlers: dict[type, Any]) -> bool:
        """Hand every event received so far to ``handlers`` (waiting up to ``timeout`` for one).

        The same steps as ``_next_event``, in one loop, for consumers that take every event
        as it comes (our own loops); False if no event came within ``timeout``.
        """
        if self._index >= len(self._events) and not self._batches and not self._receive(timeout):
            return False
        state, replay, folds = self._state, self._replay, self._folds
        while True:
            events, index = self._events, self._index
            count = len(events)
            while index < count:
                event = events[index]
                index += 1
                kind = type(event)
                folds[kind](state, event)  # what reduce(state, event) does, a call shorter
                if replay is not None:
                    replay.at(self._seq0 + index - 1, self._received_at, event)
                handler = handlers[kind]
                if handler is not None:
                    self._index = index  # what the handler sees, should it look
                    handler(event)
                    if self._index != index or self._events is not events:
                        break  # the handler took events itself: go on from where it left off
            else:
                self._index = index
                if replay is None and len(self._batches) < 2:
                    # A look (no wait) between batches: a worker asking for its next chunk is
                    # answered now, not after everything already received has been handed out.
                    self._receive(0)
                if not self._batches:
                    return True
                self._seq0, self._received_at, self._events = self._batches.popleft()
                self._index = 0

    def _next_event(self, timeout: float | None) -> bool:
        """Hand the next event to the handlers; False if none came within ``timeout``."""
        index = self._index
        if index >= len(self._events):
            if not self._batches and not self._receive(timeout):
                return False
            self._seq0, self._received_at, self._events = self._batches.popleft()
            index = 0
        event = self._events[index]
        if type(event) is Ran:  # whoever pulls events pulls them one by one
            self._events = self._events[:index] + expand(self._events[index:])
            event = self._events[index]
        self._index = index + 1
        reduce(self._state, event)
        if self._replay is not None:
            self._replay.at(self._seq0 + index, self._received_at, event)
        self.process_event(event)
        return True

    def _receive(self, timeout: float | None) -> bool:
        """Wait for the next batches from the source (and record them); False if none came."""
        if self._source is None:
            return False
        policy = self._policy
        if policy is not None and policy.waiting:  # a retry is due later (issue 19)
            if self._source.exhausted:
                policy.wait_for_due(timeout)
            else:
                timeout = policy.bound(timeout)
        batches = self._source.receive(timeout)
        if not batches:
            return False
        recorder = self._recorder
        if recorder is not None:  # its own thread commits them (recording/writer.py)
            for batch in batches:  # as they came, Ran chunks and all (issue 18)
                recorder.append_batch(*batch)
        self._batches.extend(batches)
        return True

    def _end(self, status: str) -> None:
        source, self._source = self._source, None
        self._ended_source = source
        self._policy = None
        if source is not None:
            source.close(terminate=status not in ("succeeded", "failed", "replayed"))
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.finish(status, self._state)
            self.recording_error = recorder.failure
            if recorder.failure:
                print(f"mpmq: recording failed, results are unaffected: {recorder.failure}", file=sys.stderr)
        self._batches.clear()
        self._events, self._index = [], 0

    def process_for(self, pid: int) -> Any:
        """The worker process object for ``pid`` while it runs (None in a replay)."""
        source = self._source or self._ended_source
        return source.process_for(pid) if source is not None else None


def _fold_later(state: RunState, event: Ran) -> None:
    """A chunk someone looks at item by item is folded as its events, as they are handed out."""


def _default_workers(process_data: Any, given: Any) -> Any:
    try:
        return len(process_data) or given
    except TypeError:  # not a list: refused with a clear message when the run starts
        return given


def _context(context: str | Any | None) -> Any:
    if context is None:
        context = os.environ.get("MPMQ_START_METHOD") or None
    if context is None or isinstance(context, str):
        return multiprocessing.get_context(context)
    if not hasattr(context, "Process"):
        raise TypeError(f"context must be a start method name or a multiprocessing context, got {context!r}")
    return context


def _catch_sigterm() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
