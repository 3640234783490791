"""Write a run to SQLite, event by event, as plain tables people can query (issue 4).

Only the parent writes. The engine hands each batch of events to ``Recorder.append_batch`` as
it receives it; the hot path only buffers the batch. A thread of the recorder's own (or, used
alone, ``maybe_commit``) turns the buffer into rows (``rows.py``) and commits them in one
transaction at least every 0.1 s, so a parent killed with SIGKILL loses at most the last
fraction of a second, and WAL (or, before a new file's first commit, its rollback journal)
keeps the file valid. ``finish`` writes the item rows and the run's final status. A file
created for the run starts as an empty recording (``template.py``) and enters WAL mode after
its first commit of events: a run over before then is written as it ends, with no log to
create, sync and fold back (issue 18: most of what a recording added to a 3-item run).

While its thread runs, the recorder holds back any fork of this process until the write in
progress ends (``fork_guard.py``): a worker forked mid-write inherited SQLite's own locks held.

A recording is never worth a run: a write that fails mid-run (disk full, sqlite error) stops
the recording, keeps the reason in ``Recorder.failure`` for the engine to report, and never
raises into the run.

A new file is written in format 3 (``file.py``): one row per received batch, its events as
a JSON array (``batches.py``), and the items' inputs and outcomes in chunks too
(``item_chunks.py``). A run added to an older file is written in that file's format (format
2: an ``items`` row per item, ``item_outcomes.py``; format 1: a row per event too, ``rows.py``),
so that a file holds one format. Rows go in on the raw connection,
several times faster than sqlite-utils' ``insert_all``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import fork_guard
from ..events import AnyEvent, Ran, Result, expand
from ..state import RunState
from .file import (
    FORMAT_VERSION,
    RecordingError,
    abandon,
    check_target,
    end_writing,
    open_for_writing,
    sqlite,
    write_ahead,
)
from .redact import RedactOption, patterns_for

if TYPE_CHECKING:  # SQLite is imported where it is used: on the recorder's thread (``file.sqlite``)
    from sqlite3 import Connection

# What turns events and items into rows (batches, item_chunks, item_outcomes, rows) is
# imported where the run starts in the file, on the recorder's thread: 1 ms of imports that
# delayed a recorded run's first worker (issue 18).

__all__ = ["Recorder", "RecordingError", "FORMAT_VERSION", "RUN_STATUSES"]

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed")

COMMIT_INTERVAL = 0.1  # seconds: the most a SIGKILLed parent may lose (issue 4)
# While a run's first events are a few lines and item starts, the thread waits up to this many
# seconds before it opens the file: those lines come from workers just started, and must reach
# their handlers at once (issue 18). The recorder's start (imports, opening the file: 2-5 ms
# of CPU and of the GIL) made such a line 4 ms late (median; PPE's 1.4 ms, unrecorded 0.8 ms;
# deferred 0.7 ms). Items that finish in chunks, or START_BURST events, open it at once:
# a run of many quick items needs its recorder's time from the start (deferred, 10,000
# trivial items took 4 ms longer). Waiting events are still committed within COMMIT_INTERVAL.
START_DELAY = 0.03
START_BURST = 200
MAX_BUFFER = 2_000  # events that wake the writer: what is left to write when the run ends
MAX_BACKLOG = 50_000  # events waiting for a background writer before the run waits for the disk
MAX_TRANSACTION = 10_000  # rows: bounds the memory of rows built for one transaction

_UPDATE_RUN = "UPDATE runs SET ended_at = ?, status = ?, succeeded = ?, failed = ? WHERE id = ?"


class Recorder:
    """Appends one run's events to a recording; see the module docstring."""

    def __init__(self, path: str, keep_pickle: bool, start: _RunStart) -> None:
        self.path = path
        self.failure: str | None = None
        self.committed = 0  # events safely in the file
        self._conn: Connection | None = None
        self._keep_pickle = keep_pickle
        self._buffer: list[tuple[int, float, Sequence[AnyEvent]]] = []  # batches: first seq, time, events
        self._buffered_events = 0  # events (a chunk counts one) ...
        self._buffered_from = 0  # ... from this seq on (a chunk counts three an item)
        self._wake_at = MAX_BUFFER  # buffered events that wake the thread (START_BURST while it waits to start)
        self._next_commit = 0.0
        self._rest: dict | None = None  # results at rest by offset (batches.rest_cache), once started
        self._start: _RunStart | None = start  # until the file is opened and the run's rows written
        self._unsynced = False  # a file made for the run, in rollback mode, not yet synced
        self.format_version = FORMAT_VERSION
        self.run_id: int | None = None
        self._buffer_lock = threading.Lock()  # the engine appends while the writer thread takes
        self._write_lock = threading.Lock()
        self._rows_lock = threading.Lock()  # taken before the write lock: rows are built in order
        self._built: list[tuple[list[tuple[str, list]], int]] = []  # statements and their events, to commit
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()  # commit now: the buffer is full, or the run ends
        self._arrived = threading.Event()  # the buffer is no longer empty
        self._stopping = False
        self._watched: RunState | None = None  # the live state, read for the items that finished

    def write_in_background(self, state: RunState | None = None) -> None:
        """From now on a thread of its own commits every ``COMMIT_INTERVAL``.

        ``state``, the run's live state, lets the thread write the item rows of the items
        that have finished as it goes (issue 18: the UPDATE of a million rows took seconds
        after the last item); ``finish`` then writes only the rest.

        SQLite does its work without holding the GIL, so the parent keeps receiving events
        while the disk works: workers never wait on the disk, and the run's wall time barely
        grows. ``maybe_commit`` is then unnecessary; ``finish`` stops the thread.
        """
        if self._writer is None and (self._conn is not None or self._start is not None):
            self._watched = state
            if self._start is not None:
                self._wake_at = START_BURST
            self._writer = threading.Thread(target=self._write_periodically, name="mpmq-recorder", daemon=True)
            fork_guard.guard(self._write_lock)  # held whenever the thread is inside SQLite
            self._writer.start()

    def _write_periodically(self) -> None:
        began = time.monotonic()  # no event reached the buffer before now
        if self._start is not None:
            self._await_the_workers_start(began)
        self._wake_at = MAX_BUFFER
        with self._write_lock:
            self._open_pending()  # the file and its tables, after the workers' start
        due: float | None = began + COMMIT_INTERVAL if self._buffer else None
        while not self._stopping:
            # Asleep while nothing is buffered (issue 18: a run whose items sleep costs the
            # parent no CPU), then everything buffered is committed within COMMIT_INTERVAL.
            self._arrived.clear()
            if not self._buffer and not self._stopping:
                self._arrived.wait()
            if due is None:
                due = time.monotonic() + COMMIT_INTERVAL
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stopping:
                break  # what is left goes in with the run's last rows (``finish``)
            if self.committed or time.monotonic() >= due:
                self._flush()
                due = None
            else:
                # A full buffer before the run's first commit is due: its rows are built now,
                # while the run goes on, and committed then (or as a short run ends).
                self._build()

    def _await_the_workers_start(self, began: float) -> None:
        """Wait until ``START_DELAY`` after ``began``, while the events are a few lines and
        item starts; ``_wake`` (a full buffer, the run's end) is left set, to be acted on."""
        self._arrived.wait(START_DELAY)
        if not self._wake.is_set() and not self._holds_a_chunk():  # START_BURST events set _wake
            self._wake.wait(max(0.0, began + START_DELAY - time.monotonic()))

    def _holds_a_chunk(self) -> bool:
        """Items finished in a chunk wait: a run of quick items (``START_DELAY``); fewer than
        START_BURST events to look at, or ``_wake`` would be set."""
        with self._buffer_lock:
            return any(type(event) is Ran for _, _, events in self._buffer for event in events)

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stopping = True
            self._wake.set()
            self._arrived.set()
            writer.join()
            fork_guard.unguard(self._write_lock)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        header: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        inputs: Sequence[Any],
        shared_data: Mapping[str, Any] | None,
        *,
        redact: RedactOption = True,
        keep_pickle: bool = False,
        start_later: bool = False,
    ) -> Recorder:
        """Check the file, start a run in it and return its recorder.

        Raises ``RecordingError`` (naming the file) before anything is written when the path
        cannot be written, or holds something other than an mpmq recording of this format or
        an older one. A new file is made readable by its owner only (0600).

        ``start_later``: only check now (issue 18: starting a recording must not delay the
        first item). The recorder's thread opens the file and writes the run's first rows
        (its header, every item's input) once the workers have started (``START_DELAY``,
        ``write_in_background``); a failure then is a recording failure, like any other.
        ``header`` may then be a function that returns it, called then.
        """
        if not callable(header):
            _check_header(header)
        path = os.path.abspath(os.fsdecode(path)) if os.fspath(path) else ""
        start = _RunStart(path, check_target(path), header, inputs, shared_data, patterns_for(redact), keep_pickle)
        recorder = cls(path, keep_pickle, start)
        if not start_later:
            with recorder._write_lock:
                recorder._open_pending(raising=True)
        return recorder

    def _open_pending(self, raising: bool = False) -> None:
        """Open the file and write the run's first rows, its header and every item's input,
        in a transaction of their own (write lock held).

        In a file created for the run this costs no sync: it stays in rollback mode until
        the run's first commit of events, due ``COMMIT_INTERVAL`` after the first event, and
        switches to WAL mode after it (``_flush``); a run over sooner is written in one more
        transaction as it ends, with no log to create, sync and fold back (issue 18). Used
        alone (``raising``: ``open`` without ``start_later``), the file is in WAL mode at once.
        """
        start, self._start = self._start, None
        if start is None:
            return
        conn = None
        try:
            conn, self.format_version = open_for_writing(start.path, start.created)
            run_id = start.write(conn, self.format_version)
            conn.commit()
            if raising:
                write_ahead(conn, synced=not start.created)
        except Exception as exc:
            if conn is not None:
                _rollback_quietly(conn)
            abandon(conn, start.path, start.created)  # a file made for the run goes again
            if isinstance(exc, (sqlite().Error, OSError)):
                exc = RecordingError(f"cannot record to {start.path}: {exc}")
            if raising:
                raise exc from None
            self._fail(exc, "as the run started")
            return
        self._conn = conn
        self._unsynced = start.created and not raising
        self._started(run_id)

    def _started(self, run_id: int) -> None:
        from .batches import BatchRows, rest_cache
        from .item_chunks import OutcomeChunks
        from .item_outcomes import ItemOutcomes
        from .rows import EventInserts, max_variables

        conn, version = self._conn, self.format_version
        assert conn is not None
        self.run_id = run_id
        self._rest, self._rest_of = rest_cache(self._keep_pickle)
        self._inserts = EventInserts(run_id, max_variables(conn)) if version == 1 else None
        if version >= 3:  # items in chunks: a chunk of plain results is its items' outcomes
            self._outcomes = outcomes = OutcomeChunks(run_id, self._keep_pickle, self._rest, max_variables(conn))
            on_chunk = None if self._keep_pickle else outcomes.in_chunk
        else:
            self._outcomes, on_chunk = ItemOutcomes(run_id, self._keep_pickle, self._rest, max_variables(conn)), None
        self._marks_chunks = on_chunk is not None
        self._batch_rows = BatchRows(run_id, self._rest_of, self._keep_pickle, on_chunk)

    # -- hot path --

    def append(self, seq: int, received_at: float, event: AnyEvent) -> None:
        """Buffer one event; seq is the order in which the parent received it."""
        self.append_batch(seq, received_at, [event])

    def append_batch(self, first_seq: int, received_at: float, events: Sequence[AnyEvent]) -> None:
        """Buffer events received together, numbered from ``first_seq``: one call, not one per event."""
        with self._buffer_lock:
            was_empty = not self._buffer
            if was_empty:
                self._buffered_from = first_seq
            self._buffer.append((first_seq, received_at, events))
            self._buffered_events += len(events)
        if was_empty:
            self._arrived.set()
        # Counted in sequence numbers, which a chunk of items takes three of an item: counted
        # as one, a run of chunks woke the writer only every 0.1 s, and left it that much
        # behind at the end (issue 18: 70 ms after 200,000 items).
        if first_seq + len(events) - self._buffered_from >= self._wake_at:
            self._buffered()

    def _buffered(self) -> None:
        if self._writer is None or self._buffered_events >= MAX_BACKLOG:
            self._flush()  # a disk slower than the run: memory stays bounded, the run waits
        else:
            self._wake.set()

    def maybe_commit(self, now: float) -> None:
        """Commit the buffered events if the last commit is 0.1 s old; nearly free when not due."""
        if self._buffer and now >= self._next_commit:
            self._next_commit = now + COMMIT_INTERVAL
            self._flush()

    @property
    def next_commit_at(self) -> float | None:
        """When ``maybe_commit`` should next be called (on the caller's clock); None if nothing waits."""
        return self._next_commit if self._buffer else None

    # -- end of the run --

    def finish(self, status: str, state: RunState) -> None:
        """Flush, write the item rows and the run's outcome from ``state``, and close."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        self._stop_writer()

        def last_rows() -> list[tuple[str, list]]:  # after the events: they mark the chunks' items
            return [
                *self._outcomes.rest(state),
                (_UPDATE_RUN, [(time.time(), status, state.succeeded, state.failed, self.run_id)]),
            ]

        # The last events, the item rows and the run's end in one transaction: a run that says
        # it ended has its item rows, and a short run ends with one commit (issue 18).
        self._flush(ending=True, last=last_rows)
        if self._conn is None:
            return
        if self.failure is not None:
            self._mark_failed(status, state)
        self.close()

    def close(self) -> None:
        """Commit what is buffered and close the file; closing again does nothing."""
        self._stop_writer()
        self._flush(ending=True)
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self._rest is not None:
            self._rest.clear()
        self.append = self.append_batch = self.maybe_commit = _ignore  # type: ignore[method-assign]
        if self._unsynced:  # never left rollback mode: no log to fold back, nothing to switch
            conn.close()
        else:
            end_writing(conn)

    # -- internals --

    def _build(self) -> None:
        """Turn the buffered events into rows, to be committed with the next flush."""
        with self._rows_lock:
            with self._buffer_lock:
                batches, self._buffer = self._buffer, []
                self._buffered_events = 0
            if not batches or self.run_id is None or self.failure is not None:
                return
            try:
                for piece, size in _pieces(batches, MAX_TRANSACTION):
                    self._built.append((self._event_statements(piece), size))
            except Exception as exc:
                self._fail(exc, f"at event {batches[0][0]}")

    def _flush(self, ending: bool = False, last: Callable[[], list[tuple[str, list]]] | None = None) -> None:
        """Commit the buffered events; in a file created for the run, the first commit is
        followed by the switch to WAL mode, unless the run is ending (``_open_pending``).

        ``last``: the run's last rows, committed in the transaction of the last events.
        """
        with self._rows_lock, self._write_lock:
            self._open_pending()
            with self._buffer_lock:
                batches, self._buffer = self._buffer, []
                self._buffered_events = 0
            built, self._built = self._built, []
            conn = self._conn
            if not (batches or built or last) or conn is None or self.failure is not None:
                return
            # A transaction a step, each making its statements when its turn comes: the rows
            # built at once stay few.
            steps = [(partial(list, statements), size, "at the run's first commit") for statements, size in built]
            steps += [(partial(self._event_statements, piece), size, f"at event {piece[0][0]}")
                      for piece, size in _pieces(batches, MAX_TRANSACTION)]
            if last is not None:  # the run's last rows go in with its last events
                events_of, size, where = steps.pop() if steps else (list, 0, "while writing the item rows")
                steps.append((lambda: events_of() + last(), size, where))
            for statements_of, size, where in steps:
                try:
                    self._write(*statements_of())
                except Exception as exc:
                    self._fail(exc, where)
                    return
                self.committed += size
            if last is not None:
                return
            if self._unsynced and not ending:
                try:
                    write_ahead(conn, synced=False)
                except Exception as exc:
                    self._fail(exc, "as it switched to WAL mode")
                    return
                self._unsynced = False
            try:
                state = self._watched
                updates = self._finished(state) if state is not None else []
                if updates:
                    self._write(*updates)
            except Exception as exc:
                self._fail(exc, "while writing the item rows")

    def _finished(self, state: RunState) -> list[tuple[str, list]]:
        """The item rows of the items the state says finished since the last look.

        Format 3: an item of a chunk is not written on its own, its chunk's batch row holds
        its outcome; the state may already hold chunks whose batches are still buffered (the
        loop folds each batch just after buffering it), so those are marked first, and no
        batch is buffered (nor folded after it) until the state has been read.
        """
        if not self._marks_chunks:
            return self._outcomes.finished(state)
        with self._buffer_lock:
            self._outcomes.in_buffered_chunks(self._buffer)
            return self._outcomes.finished(state)

    def _event_statements(self, batches: list[tuple[int, float, Sequence[AnyEvent]]]) -> list[tuple[str, list]]:
        from .batches import INSERT_BATCH, INSERT_PICKLE

        if self._inserts is not None:  # a format 1 file: a row per event, so a Ran chunk as its events
            expanded = [(seq, received_at, expand(events)) for seq, received_at, events in batches]
            return self._inserts.statements(expanded, self._result_rest, self._keep_pickle)
        rows, pickles = self._batch_rows.rows(batches)
        return [(INSERT_BATCH, rows), (INSERT_PICKLE, pickles)] if pickles else [(INSERT_BATCH, rows)]

    def _write(self, *statements: tuple[str, list]) -> None:
        """executemany each statement in one transaction; retried with cleaned text if need be."""
        conn = self._conn
        assert conn is not None
        try:
            try:
                for sql, rows in statements:
                    conn.executemany(sql, rows)
            except UnicodeEncodeError:
                from .rows import clean_text

                # Lone surrogates (os.fsdecode'd file names in a log line...) cannot be encoded
                # to UTF-8 for SQLite: store them escaped rather than lose the recording.
                conn.rollback()
                for sql, rows in statements:
                    conn.executemany(sql, [tuple(clean_text(v) for v in row) for row in rows])
            conn.commit()
        except BaseException:
            # Whatever stopped it (even KeyboardInterrupt), no half-written batch stays open.
            _rollback_quietly(conn)
            raise

    def _result_rest(self, event: Result) -> Any:
        """The result as it rests: unpickled here (our own process tree), described by for_rest."""
        return self._rest_of(event.offset, event.value)

    def _fail(self, exc: BaseException, where: str) -> None:
        self.failure = f"recording to {self.path} stopped {where}: {type(exc).__name__}: {exc}"
        with self._buffer_lock:
            self._buffer, self._buffered_events = [], 0
        self._built = []
        # From here the run goes on unrecorded, at no cost per event.
        self.append = self.append_batch = self.maybe_commit = _ignore  # type: ignore[method-assign]
        if self._conn is not None:
            _rollback_quietly(self._conn)

    def _mark_failed(self, status: str, state: RunState) -> None:
        """Best effort: say in the file itself that its recording is incomplete, and why."""
        if self._conn is None:
            return
        try:
            self._conn.execute(
                "UPDATE runs SET ended_at = ?, status = ?, succeeded = ?, failed = ?, recording_error = ? WHERE id = ?",
                (time.time(), status, state.succeeded, state.failed, self.failure, self.run_id),
            )
            self._conn.commit()
        except Exception:  # the disk that failed before may well fail again: the engine reports it
            _rollback_quietly(self._conn)


class _RunStart:
    """What starting a run in the file takes, kept until the recorder writes it."""

    def __init__(
        self, path: str, created: bool, header: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        inputs: Sequence[Any], shared_data: Mapping[str, Any] | None, patterns: Any, keep_pickle: bool,
    ) -> None:
        self.path, self.created, self.header = path, created, header
        self.inputs, self.shared_data, self.patterns, self.keep_pickle = inputs, shared_data, patterns, keep_pickle

    def write(self, conn: Connection, version: int) -> int:
        """The run's row (the header, a function of the engine's, is called now) and every
        item's input, in the caller's transaction; the run's id."""
        from .item_chunks import input_chunks
        from .rows import insert_run, item_inputs, max_variables, run_row

        header = _check_header(self.header() if callable(self.header) else self.header)
        run_id = insert_run(conn, run_row(header, self.inputs, self.shared_data, self.patterns, self.keep_pickle,
                                          version))
        statements = (
            input_chunks(run_id, self.inputs, self.patterns, self.keep_pickle) if version >= 3
            else item_inputs(run_id, self.inputs, self.patterns, self.keep_pickle, max_variables(conn))
        )
        for sql, rows in statements:
            conn.executemany(sql, rows)
        return run_id


def _check_header(header: Mapping[str, Any]) -> Mapping[str, Any]:
    from .rows import HEADER_KEYS

    unknown = set(header) - set(HEADER_KEYS)
    if unknown:
        raise ValueError(f"unknown run header keys: {sorted(unknown)}")
    return header


def _pieces(batches: list[tuple[int, float, Sequence[AnyEvent]]], limit: int) -> Any:
    """The batches in runs of about ``limit`` events (a batch is never split), with their sizes."""
    piece: list = []
    size = 0
    for batch in batches:
        piece.append(batch)
        size += len(batch[2])
        if size >= limit:
            yield piece, size
            piece, size = [], 0
    if piece:
        yield piece, size


def _ignore(*args: Any) -> None:
    return None


def _rollback_quietly(conn: Connection) -> None:
    with contextlib.suppress(sqlite().Error):  # e.g. the connection is already closed
        conn.rollback()
