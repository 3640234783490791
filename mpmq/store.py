"""Write a run to SQLite, event by event, as plain tables people can query (issue 4).

Only the parent writes. The engine hands every event to ``Recorder.append`` as it receives it;
the hot path only buffers the event. ``maybe_commit`` turns the buffer into rows and commits
them in one transaction at most every 0.1 s (and whenever the buffer is large), so a parent
killed with SIGKILL loses at most the last fraction of a second, and WAL keeps the file valid.
``finish`` writes the item rows and the run's final status.

A recording is never worth a run: a write that fails mid-run (disk full, sqlite error) stops
the recording, keeps the reason in ``Recorder.failure`` for the engine to report, and never
raises into the run.

The tables (``recording.py`` defines them) are created with sqlite-utils; the hot path uses the
raw connection with multi-row INSERTs, several times faster than ``insert_all``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlite_utils import Database

from .events import AnyEvent, Done, Error, Log, Payload, Result, Started
from .payload import for_rest, json_or_unset, safe_repr
from .recording import FORMAT_VERSION, RecordingError, check_sqlite_file, create_schema, read_format
from .redact import RedactOption, patterns_for, redact, redact_argv
from .state import ItemState, RunState

__all__ = ["Recorder", "RecordingError", "FORMAT_VERSION", "RUN_STATUSES"]

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed")

COMMIT_INTERVAL = 0.1  # seconds: the most a SIGKILLed parent may lose (issue 4)
MAX_BUFFER = 10_000  # rows: bounds memory and the pause of one commit
MAX_BACKLOG = 200_000  # rows waiting for a background writer before the run waits for the disk

HEADER_KEYS = (
    "mpmq_version", "python_version", "platform", "start_method", "function", "handler",
    "processes_to_start", "error_policy", "command_line", "started_at", "utc_offset",
    "item_count", "options", "parent_run",
)  # fmt: skip

_encode = msgspec.json.Encoder().encode
_encode_any = msgspec.json.Encoder(enc_hook=safe_repr).encode


# --- values at rest -------------------------------------------------------------------------


def json_text(value: Any) -> str | None:
    """JSON text when JSON represents ``value`` exactly, else ``None`` (the repr carries it)."""
    value = json_or_unset(value)
    if value is msgspec.UNSET:
        return None
    try:
        return _encode(value).decode()
    except (UnicodeEncodeError, msgspec.EncodeError):  # lone surrogates, ints beyond JSON
        return None


def clean_text(value: Any) -> Any:
    """A string SQLite can store: lone surrogates (undecodable file names...) become escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _shared_columns(shared: Any, keep_pickle: bool) -> tuple[str | None, str | None, bytes | None]:
    """shared_data as a JSON object; values JSON cannot hold are stored as their repr, keys listed."""
    if shared is None:
        return None, None, None
    pickled = for_rest(shared, keep_pickle).pickle
    items = shared.items() if isinstance(shared, Mapping) else [("*", shared)]
    as_json: dict[str, Any] = {}
    repr_keys = []
    for key, value in items:
        name = clean_text(str(key))
        if json_text(value) is None or not isinstance(key, str):
            repr_keys.append(name)
            value = safe_repr(value)
        as_json[name] = value
    return _encode(as_json).decode(), (_encode(repr_keys).decode() if repr_keys else None), pickled


def _data(fields: dict[str, Any]) -> str:
    """An event's other fields as JSON text (its strings cleaned if SQLite could not store them)."""
    try:
        return _encode(fields).decode()
    except UnicodeEncodeError:
        return _encode({key: clean_text(value) for key, value in fields.items()}).decode()


def _loose_json(value: Any) -> str:
    """JSON text for header fields: anything JSON cannot hold becomes its repr."""
    try:
        return _encode_any(value).decode()
    except (UnicodeEncodeError, TypeError, msgspec.EncodeError):
        return _encode(safe_repr(value)).decode()


class _Rest(msgspec.Struct, frozen=True):
    """A live result as the recording keeps it (computed once, for its event row and item row)."""

    live: Payload
    json: str | None
    repr: str
    data: str
    pickle: bytes | None


# --- the writer -----------------------------------------------------------------------------

_EVENT_COLUMNS = 12
_EVENTS_PER_INSERT = 200  # rows per INSERT where SQLite allows 2,400 parameters (3.32+; before: 999)
_UPDATE_ITEM = (
    "UPDATE items SET status = ?, pid = ?, started_at = ?, ended_at = ?, duration = ?, result = ?,"
    " result_repr = ?, result_pickle = ?, error_type = ?, error_message = ?, traceback = ?"
    ' WHERE run_id = ? AND "offset" = ?'
)
_UPDATE_RUN = "UPDATE runs SET ended_at = ?, status = ?, succeeded = ?, failed = ? WHERE id = ?"


class Recorder:
    """Appends one run's events to a recording; see the module docstring."""

    def __init__(self, path: str, conn: sqlite3.Connection, run_id: int, keep_pickle: bool) -> None:
        self.path = path
        self.run_id = run_id
        self.failure: str | None = None
        self.committed = 0  # events safely in the file
        self._conn: sqlite3.Connection | None = conn
        self._keep_pickle = keep_pickle
        self._buffer: list[tuple[int, float, Sequence[AnyEvent]]] = []  # batches: first seq, time, events
        self._buffered_events = 0
        self._next_commit = 0.0
        self._rest: dict[int, _Rest] = {}
        self._per_insert = _rows_per_insert(conn)
        self._buffer_lock = threading.Lock()  # the engine appends while the writer thread takes
        self._write_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False

    def write_in_background(self) -> None:
        """From now on a thread of its own commits every ``COMMIT_INTERVAL``.

        SQLite does its work without holding the GIL, so the parent keeps receiving events
        while the disk works: workers never wait on the disk, and the run's wall time barely
        grows. ``maybe_commit`` is then unnecessary; ``finish`` stops the thread.
        """
        if self._writer is None and self._conn is not None:
            self._writer = threading.Thread(target=self._write_periodically, name="mpmq-recorder", daemon=True)
            self._writer.start()

    def _write_periodically(self) -> None:
        while not self._stopping:
            self._wake.wait(COMMIT_INTERVAL)
            self._wake.clear()
            self._flush()

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stopping = True
            self._wake.set()
            writer.join()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        header: Mapping[str, Any],
        inputs: Sequence[Any],
        shared_data: Mapping[str, Any] | None,
        *,
        redact: RedactOption = True,
        keep_pickle: bool = False,
    ) -> Recorder:
        """Check the file, start a run in it and return its recorder.

        Raises ``RecordingError`` (naming the file) before anything is written when the path
        cannot be written, or holds something other than an mpmq recording of this format or
        an older one. A new file is made readable by its owner only (0600).
        """
        unknown = set(header) - set(HEADER_KEYS)
        if unknown:
            raise ValueError(f"unknown run header keys: {sorted(unknown)}")
        patterns = patterns_for(redact)
        path = os.path.abspath(os.fsdecode(path)) if os.fspath(path) else ""
        created = _create_or_check(path)
        conn = None
        try:
            # A URI, so that no name (":memory:", "file:...") is taken as anything but a file.
            conn = sqlite3.connect(f"{Path(path).as_uri()}?mode=rw", uri=True, timeout=5.0, check_same_thread=False)
            version = read_format(conn, path)
            # SQLite creates the -wal and -shm files with the database file's permissions, so
            # they are 0600 too; synchronous=NORMAL in WAL mode keeps every commit atomic.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint every ~40 MB rather than 4 MB: the pages every commit touches (the
            # tails of the table and its indexes) are copied into the file ten times less often.
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
            db = Database(conn)
            with db.atomic():
                if version is None:
                    create_schema(db)
                run_id = _insert_run(db, header, inputs, shared_data, patterns, keep_pickle)
                conn.executemany(
                    "INSERT INTO items (run_id, offset, input, input_repr, input_pickle, status)"
                    " VALUES (?, ?, ?, ?, ?, 'pending')",
                    _item_inputs(run_id, inputs, patterns, keep_pickle),
                )
        except (sqlite3.Error, OSError) as exc:
            _abandon(conn, path, created)
            raise RecordingError(f"cannot record to {path}: {exc}") from None
        except BaseException:
            _abandon(conn, path, created)
            raise
        return cls(path, conn, run_id, keep_pickle)

    # -- hot path --

    def append(self, seq: int, received_at: float, event: AnyEvent) -> None:
        """Buffer one event; seq is the order in which the parent received it."""
        self.append_batch(seq, received_at, [event])

    def append_batch(self, first_seq: int, received_at: float, events: Sequence[AnyEvent]) -> None:
        """Buffer events received together, numbered from ``first_seq``: one call, not one per event."""
        with self._buffer_lock:
            self._buffer.append((first_seq, received_at, events))
            self._buffered_events += len(events)
        self._buffered()

    def _buffered(self) -> None:
        size = self._buffered_events
        if size < MAX_BUFFER:
            return
        if self._writer is None or size >= MAX_BACKLOG:
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
        if self._conn is None:
            return
        self._stop_writer()
        self._flush()
        if self.failure is None:
            try:
                # One transaction: a run that says it ended has its item rows.
                self._write(
                    (_UPDATE_ITEM, [self._item_row(item) for item in state.items]),
                    (_UPDATE_RUN, [(time.time(), status, state.succeeded, state.failed, self.run_id)]),
                )
            except Exception as exc:
                self._fail(exc, "while writing the item rows")
        if self.failure is not None:
            self._mark_failed(status, state)
        self.close()

    def close(self) -> None:
        """Commit what is buffered and close the file; closing again does nothing."""
        conn = self._conn
        if conn is None:
            return
        self._stop_writer()
        self._flush()
        self._conn = None
        self._rest = {}
        self.append = self.append_batch = self.maybe_commit = _ignore  # type: ignore[method-assign]
        try:
            # Back to a single self-contained file, easy to copy and share. Another connection
            # (a concurrent run, a reader) may hold it: then leave it in WAL mode, don't wait.
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    # -- internals --

    def _flush(self) -> None:
        with self._write_lock:
            with self._buffer_lock:
                batches, self._buffer = self._buffer, []
                count, self._buffered_events = self._buffered_events, 0
            if not batches or self._conn is None or self.failure is not None:
                return
            try:
                self._write(*self._event_statements(batches))
            except Exception as exc:
                self._fail(exc, f"at event {batches[0][0]}")
                return
            self.committed += count

    def _event_statements(self, batches: list[tuple[int, float, Sequence[AnyEvent]]]) -> list[tuple[str, list]]:
        flat = [(first_seq + i, received_at, e) for first_seq, received_at, events in batches
                for i, e in enumerate(events)]  # fmt: skip
        return _event_inserts(self._event_rows(flat), self._per_insert)

    def _write(self, *statements: tuple[str, list]) -> None:
        """executemany each statement in one transaction; retried with cleaned text if need be."""
        conn = self._conn
        assert conn is not None
        try:
            try:
                for sql, rows in statements:
                    conn.executemany(sql, rows)
            except UnicodeEncodeError:
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

    def _event_rows(self, batch: list[tuple[int, float, AnyEvent]]) -> list[Any]:
        """The batch's rows, flattened: one multi-row INSERT binds them twice as fast as executemany."""
        run = self.run_id
        flat: list[Any] = []
        add = flat.extend
        for seq, received_at, e in batch:
            cls = type(e)
            if cls is Log:
                data = None if e.exc_text is None else _data({"exc_text": e.exc_text})
                add((run, seq, "log", e.offset, e.pid, e.time, received_at, e.level, e.logger, e.message, data, None))
            elif cls is Started or cls is Done:
                kind = "started" if cls is Started else "done"
                add((run, seq, kind, e.offset, e.pid, e.time, received_at, None, None, None, None, None))
            elif cls is Result:
                rest = self._rest_of(e)
                add(
                    (run, seq, "result", e.offset, e.pid, e.time, received_at, None, None, None, rest.data, rest.pickle)
                )
            elif cls is Error:
                data = _data({"type": e.type, "traceback": e.traceback})
                exc = e.exception if self._keep_pickle else None
                add((run, seq, "error", e.offset, e.pid, e.time, received_at, None, None, e.message, data, exc))
            else:
                raise TypeError(f"not an mpmq event: {e!r}")
        return flat

    def _rest_of(self, event: Result) -> _Rest:
        """The result as it rests: unpickled here (our own process tree), described by for_rest."""
        cached = self._rest.get(event.offset)
        if cached is not None and cached.live is event.value:
            return cached
        rest = _rest_payload(event.value, self._keep_pickle)
        self._rest[event.offset] = rest
        return rest

    def _item_row(self, item: ItemState) -> tuple:
        result: tuple = (None, None, None)
        if item.result is not None:
            cached = self._rest.get(item.offset)
            rest = (
                cached
                if cached is not None and cached.live is item.result
                else _rest_payload(item.result, self._keep_pickle)
            )
            result = (rest.json, rest.repr, rest.pickle)
        error = item.error
        failure = (error.type, error.message, error.traceback) if error is not None else (None, None, None)
        return (item.status, item.pid, item.started_at, item.ended_at, item.duration,
                *result, *failure, self.run_id, item.offset)  # fmt: skip

    def _fail(self, exc: BaseException, where: str) -> None:
        self.failure = f"recording to {self.path} stopped {where}: {type(exc).__name__}: {exc}"
        with self._buffer_lock:
            self._buffer, self._buffered_events = [], 0
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


@functools.cache
def _insert_events(rows: int) -> str:
    return "INSERT INTO events VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)


def _event_inserts(flat: list[Any], per_insert: int) -> list[tuple[str, list]]:
    """Statements for flattened event rows: full multi-row INSERTs, then one for the rest."""
    step = _EVENT_COLUMNS * per_insert
    full = len(flat) // step
    statements = [(_insert_events(per_insert), [flat[i * step : (i + 1) * step] for i in range(full)])]
    if len(flat) > full * step:
        statements.append((_insert_events((len(flat) - full * step) // _EVENT_COLUMNS), [flat[full * step :]]))
    return statements


def _rows_per_insert(conn: sqlite3.Connection) -> int:
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999
    return max(1, min(_EVENTS_PER_INSERT, limit // _EVENT_COLUMNS))


def _ignore(*args: Any) -> None:
    return None


def _rest_payload(live: Payload, keep_pickle: bool) -> _Rest:
    if live.pickle is None:  # already at rest (e.g. a re-recorded replay)
        rest = live
    else:
        try:
            rest = for_rest(pickle.loads(live.pickle))
        except Exception as exc:  # the parent must survive a result it cannot rebuild
            rest = Payload(repr=f"<result not unpickled by the recorder: {type(exc).__name__}: {exc}>")
    text = json_text(rest.json) if rest.json is not msgspec.UNSET else None
    data: dict[str, Any] = {"repr": rest.repr}
    if text is not None:
        data["json"] = rest.json
    kept = (live.pickle or rest.pickle) if keep_pickle else None
    return _Rest(live, text, clean_text(rest.repr or ""), _data(data), kept)


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # e.g. the connection is already closed
        conn.rollback()


def _create_or_check(path: str) -> bool:
    """Create the file (0600) if it is new and return True; else check it can be written to."""
    if not path:
        raise RecordingError("cannot record: the recording path is empty")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise RecordingError(f"cannot record to {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise RecordingError(f"cannot record to {path}: it is a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # an existing recording gets another run; checked below
    except OSError as exc:
        raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None
    else:
        os.close(fd)
        return True
    if not os.access(path, os.R_OK | os.W_OK):
        raise RecordingError(f"cannot record to {path}: the file is not writable")
    check_sqlite_file(path)
    return False


def _abandon(conn: sqlite3.Connection | None, path: str, created: bool) -> None:
    if conn is not None:
        conn.close()
    if created:  # leave nothing behind for a recording that never started
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(path + suffix)
            except OSError:
                pass


def _insert_run(
    db: Database,
    header: Mapping[str, Any],
    inputs: Sequence[Any],
    shared: Any,
    patterns: frozenset[str],
    keep_pickle: bool,
) -> int:
    row = {key: header.get(key) for key in HEADER_KEYS}
    row["item_count"] = len(inputs) if row["item_count"] is None else row["item_count"]
    shared_json, repr_keys, shared_pickle = _shared_columns(redact(shared, patterns), keep_pickle)
    row.update(
        format_version=FORMAT_VERSION,
        status="running",
        command_line=_loose_json(redact_argv(row["command_line"] or [], patterns)),
        options=_loose_json(redact(row["options"] or {}, patterns)),
        shared_data=shared_json,
        shared_data_repr_keys=repr_keys,
        shared_data_pickle=shared_pickle,
    )
    row = {key: clean_text(value) for key, value in row.items()}
    columns = ", ".join(f'"{key}"' for key in row)
    cursor = db.conn.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _item_inputs(run_id: int, inputs: Sequence[Any], patterns: frozenset[str], keep_pickle: bool) -> Any:
    for offset, value in enumerate(inputs):
        value = redact(value, patterns)
        rest = for_rest(value, keep_pickle)
        yield run_id, offset, json_text(value), clean_text(rest.repr), rest.pickle
