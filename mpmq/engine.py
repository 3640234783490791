"""The engine: a run from its options to its results, around one loop (``loop.py``).

    a backend's workers --event batches--> backend.receive()   (backends/: local processes or
        or a recording -----------------> RecordedSource        a Dask cluster; sources.py)
    -> FailurePolicy.review: attempts, retries, stop_on_error  (retries.py, live runs)
    -> stamp (seq, received_at) -> Recorder.append             (recording/writer.py, if asked)
    -> reduce(state, event)                                     (state.py: the only state change)
    -> process_event(event)                                     (handlers; compat.py turns events
                                                                 into 0.7.0 messages and hooks)

Here: checking the input before any worker starts, choosing the source (a backend, a
recording, or both for a resumed run), opening the recording, and ending all of it whatever
happened; ``execute`` and ``replay`` return the results read from the state, and nowhere else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from . import backends, outcomes, validate
from .calling import call_style
from .errors import RunFailed
from .loop import EventLoop
from .retries import FailurePolicy
from .sources import EventSource, LiveSource, RecordedSource
from .state import RunState
from .termination import Terminated, catch_sigterm, die_of_sigterm, restore_sigterm


class Engine(EventLoop):
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
        cluster: Any = None,
    ) -> None:
        super().__init__()
        validate.check_function(function)
        validate.check_retries(retries, retry_delay, retry_on)
        self.cluster = backends.cluster_option(cluster)  # None: this machine's processes
        validate.check_cluster_options(self.cluster, context, max_items_per_worker)
        validate.check_positive("item_timeout", item_timeout)
        validate.check_positive("max_items_per_worker", max_items_per_worker, int)
        self.function = function
        self.process_data = [{}] if process_data is None else process_data
        self.shared_data = {} if shared_data is None else shared_data
        # 0.7.0 applied the default here, and clients read it before the run (mpcurses)
        self.processes_to_start = processes_to_start or _default_workers(self.process_data, processes_to_start)
        self.timeout = timeout  # 0.7.0's join wait; accepted, never kills an item
        self.context = backends.start_context(context)
        self.item_timeout = item_timeout
        self.stop_on_error = stop_on_error
        self.max_items_per_worker = max_items_per_worker
        self.retries = retries  # issue 19: attempts after the first, for what retry_on allows
        self.retry_delay = retry_delay
        self.retry_on = retry_on
        self.resumed_from: int | None = None  # issue 19: the recorded run a resume=True run resumed
        self.resumed_items: list[int] = []  # issue 19: the offsets it took from that run
        self._record_options: dict = {}
        self._allow_pickle = True
        self._link: Any = None  # the connection to a cluster, for a run with ``cluster``
        self.recording_error: str | None = None

    def execute_run(self) -> None:
        """Start the run and hand every event to ``process_event`` until the end."""
        self._begin()
        handlers = self._own_loop_handlers()
        while self._hand_out_received(None, handlers) or not self._over:
            pass

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
        parent_offsets: Sequence[int] | None = None,
        resume: bool = False,
    ) -> list:
        """Run every item; return one result per item, in item order (an exception for a failure).

        ``record`` writes the run's events to a SQLite file (see README, Recording);
        ``record_pickle`` also keeps pickles of values JSON cannot hold; ``redact`` (default on)
        hides values under secret-looking keys, and may list extra key patterns; ``parent_run``
        records this run as a re-run of that run (``mpmq-replay rerun``), and ``parent_offsets``
        the offset each of its items had there (``mpmq-replay diff`` matches them by it);
        ``resume`` takes the items that succeeded in the file's latest run of this function and
        ``shared_data`` from the recording and runs only the rest (see README, Resume).
        """
        if record is not None and not isinstance(record, (str, bytes, os.PathLike)):
            raise TypeError(f"record= must be a file path (str or os.PathLike), not {type(record).__name__}")
        if resume and record is None:
            raise ValueError("resume=True resumes from a recording: give its path as record=")
        if parent_offsets is not None and parent_run is None:
            raise ValueError("parent_offsets= gives the offsets a re-run's items had in its parent_run=: give both")
        self._record_options = {
            "path": record, "keep_pickle": record_pickle, "redact": redact, "parent_run": parent_run,
            "parent_offsets": parent_offsets, "resume": bool(resume),
        }
        self._replay = None
        self._allow_pickle = True
        results = self._drive()
        if raise_if_error:
            self.check_results(results)
        return results

    def _drive(self) -> list:
        status = "crashed"
        previous_sigterm = catch_sigterm()
        try:
            try:
                self.execute_run()
                status = outcomes.run_status(self._state)
            except (KeyboardInterrupt, Terminated):
                status = "interrupted"
                raise
            finally:
                self._end(status)
                self.final()
        except Terminated:
            die_of_sigterm(previous_sigterm)
        finally:
            restore_sigterm(previous_sigterm)
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
        items, all_dicts = validate.check_process_data(self.process_data)
        shared = validate.check_shared_data(self.shared_data)
        workers = validate.worker_count(self.processes_to_start, len(items))
        style = self._call_style()
        validate.check_arguments(self.function, style, items, shared, all_dicts)
        if self.cluster is None:
            validate.check_picklable(self.function, shared, items, self.context.get_start_method(),
                                     self.retry_on if self.retries else None)
        else:  # reached before the recording opens: the run's row names its scheduler
            backends.check_leaves_machine(items, shared)
            self._link = backends.connect_cluster(self.cluster, workers)
        try:
            resumption = None
            if self._record_options.get("resume"):  # issue 19
                from .resume import plan_for

                resumption = plan_for(self._record_options, self.function, items, shared)
            self.resumed_from, self.resumed_items = (
                (resumption.run_id, resumption.reused) if resumption else (None, [])
            )
            if self._record_options.get("path") is not None:
                from .recording.session import open_recorder

                self._recorder = open_recorder(self, items, shared, workers)
            if resumption is None:
                self._source = self._live_source(items, shared, workers, style)
            else:  # issue 19: the recorded items first, then the backend, given only the rest
                from .resume import ResumedSource

                live = self._live_source(items, shared, workers, style, offsets=resumption.live)
                self._source = ResumedSource(resumption.events, live)
        except BaseException:
            if self._link is not None:
                self._link.close()
            raise
        try:
            self._source.start()
        finally:
            self._state = RunState.new(len(items))  # built while the first workers start up
        if self._recorder is not None:
            self._recorder.write_in_background(self._state)  # after the first forks: fewer forks with a thread

    def _live_source(self, items: list, shared: Mapping, workers: int, style: str,
                     offsets: list[int] | None = None) -> EventSource:
        """Where a live run's events come from: worker processes on this machine, or a Dask
        cluster's workers (``cluster=``, issue 17; ``backends/dask/``).

        The one seam between the engine and its workers: another source of events (workers
        on other machines, say) implements ``sources.EventSource`` and is returned here.
        """
        retry_on = (self.retry_on or (BaseException,)) if self.retries else None
        decides = bool(self.retries or self.stop_on_error)  # what a failure means is decided here (issue 19)
        backend: Any
        if self._link is not None:  # a Dask cluster (issue 17)
            link, self._link = self._link, None  # the backend closes it from now on
            backend = backends.cluster_backend(
                link, self.function, items, shared, workers=workers, style=style,
                item_timeout=self.item_timeout, stop_on_error=self.stop_on_error, offsets=offsets,
                retry_on=retry_on, engine_decides=decides,
            )
        else:
            backend = backends.local_backend(
                self.function, items, shared, workers=workers, context=self.context, style=style,
                max_items_per_worker=self.max_items_per_worker, item_timeout=self.item_timeout,
                stop_on_error=self.stop_on_error, retry_on=retry_on, offsets=offsets,
            )
        backend.compact = True  # Ran chunks as they came: the loop expands them if anyone looks
        source = LiveSource(backend)
        if decides:
            self._policy = FailurePolicy(backend, self.retries, self.retry_delay, self.stop_on_error)
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

    @property
    def backend_options(self) -> dict:
        """What a recording's run row says about where the run ran (issue 17): nothing locally."""
        link = self._link
        if link is None:
            return {}
        return {"backend": "dask", "cluster": link.kind, "scheduler": link.address}

    def _call_style(self) -> str:
        return call_style(self.function)

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

def _default_workers(process_data: Any, given: Any) -> Any:
    try:
        return len(process_data) or given
    except TypeError:  # not a list: refused with a clear message when the run starts
        return given


