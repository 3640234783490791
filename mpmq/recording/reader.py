"""Read a recording back: its runs, its items, and its events as the same typed events a live
run produces, so replay feeds them to the same loop (issue 5).

A recording is shared data, so it is read as untrusted: opened read-only, never created,
checked (SQLite, an mpmq recording, a format we know) before anything else is read, every row
validated into its type, and nothing unpickled: pickles come back as bytes inside ``Payload``
and ``mpmq.payload.load(payload, allow_pickle)`` decides. Every problem is one
``RecordingError`` line naming the file.

The format (its tables, its version, the checks that recognise it) is ``file.py``'s,
shared with the writer (``writer.py``); the events of a run, in either format, are read by
``events_read.py``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import msgspec

from ..events import AnyEvent, Payload
from .events_read import EventReader, payload_fields
from .file import FORMAT_VERSION, RecordingError, check_sqlite_file, read_format
from .items_read import COUNT_INPUTS, item_fields

__all__ = ["FORMAT_VERSION", "ItemRecord", "Recording", "RecordingError", "RunInfo", "open_recording"]

_decode = msgspec.json.decode


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``runs``: a run's header and outcome (JSON columns decoded)."""

    id: int
    format_version: int = FORMAT_VERSION
    mpmq_version: str | None = None
    python_version: str | None = None
    platform: str | None = None
    start_method: str | None = None
    function: str | None = None  # "module:qualname"
    handler: str | None = None  # "module:qualname"; a hint, never imported unasked
    processes_to_start: int | None = None
    error_policy: str | None = None
    command_line: list[str] = []
    started_at: float | None = None
    ended_at: float | None = None
    utc_offset: int | None = None  # seconds east of UTC, as the live parent saw its clock
    status: str = "running"  # "running" after the run ended means its parent died
    item_count: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    shared_data: Any = None  # redacted; values JSON cannot hold are their repr ...
    shared_data_repr_keys: list[str] = []  # ... under these keys
    shared_data_pickle: bytes | None = None  # only when recorded with keep_pickle
    options: dict[str, Any] = {}
    parent_run: int | None = None  # the run this one re-ran
    recording_error: str | None = None  # why the recording stopped early, if it did

    @property
    def complete(self) -> bool:
        """The run ended and its recording holds everything."""
        return self.status != "running" and self.recording_error is None


class ItemRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``items``: what the recording says about one item of a run."""

    offset: int
    input: Payload
    status: str = "pending"
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration: float | None = None
    result: Payload | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


_JSON_RUN_COLUMNS = ("command_line", "shared_data", "shared_data_repr_keys", "options")


class Recording:
    """An open recording (see ``open_recording``); use it as a context manager or ``close()`` it."""

    def __init__(self, path: str, conn: sqlite3.Connection, format_version: int) -> None:
        self.path = path
        self.format_version = format_version
        self._conn = conn
        self._event_reader = EventReader(path, conn, format_version)

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def runs(self) -> list[RunInfo]:
        """Every run in the file, oldest first."""
        return [self._run_info(row) for row in self._query("SELECT * FROM runs ORDER BY id")]

    def run(self, run_id: int | None = None) -> RunInfo:
        """One run: the latest by default."""
        if run_id is None:
            rows = self._query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
            if not rows:
                raise RecordingError(f"{self.path} holds no runs")
        else:
            rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
            if not rows:
                known = ", ".join(str(row["id"]) for row in self._query("SELECT id FROM runs ORDER BY id"))
                raise RecordingError(f"{self.path} has no run {run_id} (its runs: {known or 'none'})")
        return self._run_info(rows[0])

    def items(self, run_id: int | None = None) -> list[ItemRecord]:
        """The run's items in offset order (the latest run by default)."""
        run = self.run(run_id)
        if self.format_version >= 3:
            return self._chunked_items(run)
        rows = self._query('SELECT * FROM items WHERE run_id = ? ORDER BY "offset"', (run.id,))
        return [self._item(row) for row in rows]

    def item_count(self, run_id: int | None = None) -> int:
        """The run's size: its item rows, written with its header before any worker started.

        A header that says otherwise is refused: replay sizes the run's state from this, so a
        crafted count could otherwise ask for any amount of memory.
        """
        return self._item_count(self.run(run_id))

    def _item_count(self, run: RunInfo) -> int:
        if self.format_version >= 3:
            rows, bad = self._query(COUNT_INPUTS, (run.id,))[0]
            if bad:
                raise RecordingError(f"{self.path} is corrupted: run {run.id} has an input row lying about its size")
        else:
            rows = self._query("SELECT count(*) FROM items WHERE run_id = ?", (run.id,))[0][0]
        if run.item_count is not None and run.item_count != rows:
            raise RecordingError(
                f"{self.path} is corrupted: run {run.id} says it has {run.item_count} items, but {rows} are recorded"
            )
        return rows

    def events(
        self, run_id: int | None = None, offsets: Collection[int] | None = None, until: int | None = None
    ) -> Iterator[tuple[int, float, AnyEvent]]:
        """``(seq, received_at, event)`` in the order the live parent received them.

        ``offsets`` keeps only those items' events; ``until`` stops after that sequence number.
        Events are read lazily, so a long run is never all in memory.
        """
        run = self.run(run_id)
        return self._event_reader.events(run.id, self._item_count(run), offsets, until)

    def batches(
        self, run_id: int | None = None, offsets: Collection[int] | None = None, until: int | None = None
    ) -> Iterator[tuple[int, float, list[AnyEvent]]]:
        """``(first seq, received_at, events)``: ``events`` in batches as the live parent
        received them, numbered on from ``first seq``; for a reader that takes them in bulk.

        The same events as ``events`` gives one by one, in the same order; a batch may be
        split where its events' sequence numbers are not consecutive.
        """
        run = self.run(run_id)
        return self._event_reader.batches(run.id, self._item_count(run), offsets, until)

    def _run_info(self, row: sqlite3.Row) -> RunInfo:
        fields = dict(zip(row.keys(), row))
        try:
            for key in _JSON_RUN_COLUMNS:
                if fields.get(key) is None:
                    fields.pop(key, None)  # NULL: the field's default
                else:
                    fields[key] = _decode(fields[key])
            # Columns a later version added are not ours to interpret; ours have defaults.
            known = {key: value for key, value in fields.items() if key in RunInfo.__struct_fields__}
            return msgspec.convert(known, RunInfo)
        except (msgspec.MsgspecError, TypeError) as exc:
            raise RecordingError(f"{self.path} is corrupted: run {fields.get('id')}: {exc}") from None

    def _chunked_items(self, run: RunInfo) -> list[ItemRecord]:
        """Format 3: the run's inputs, chunks and outcome rows, joined as the ``items`` view does."""
        count = self._item_count(run)
        try:
            return [msgspec.convert(fields, ItemRecord) for fields in item_fields(self._query, run.id, count)]
        except (msgspec.MsgspecError, TypeError, ValueError, IndexError, KeyError) as exc:  # BadBatch too
            raise RecordingError(f"{self.path} is corrupted: run {run.id}'s items: {exc}") from None

    def _item(self, row: sqlite3.Row) -> ItemRecord:
        try:
            has_result = row["result"] is not None or row["result_repr"] is not None or row["result_pickle"]
            return msgspec.convert(
                {
                    "offset": row["offset"],
                    "input": payload_fields(_json_or_unset(row["input"]), row["input_repr"], row["input_pickle"]),
                    "status": row["status"],
                    "pid": row["pid"],
                    "started_at": row["started_at"],
                    "ended_at": row["ended_at"],
                    "duration": row["duration"],
                    "result": payload_fields(_json_or_unset(row["result"]), row["result_repr"], row["result_pickle"])
                    if has_result
                    else None,
                    "error_type": row["error_type"],
                    "error_message": row["error_message"],
                    "traceback": row["traceback"],
                },
                ItemRecord,
            )
        except (msgspec.MsgspecError, TypeError) as exc:
            raise RecordingError(f"{self.path} is corrupted: item {row['offset']}: {exc}") from None

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupted(exc) from None

    def _corrupted(self, exc: sqlite3.DatabaseError) -> RecordingError:
        return RecordingError(f"{self.path} is truncated or corrupted: {exc}")


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open a recording for reading; ``RecordingError`` (one line naming the file) if it is not one.

    Refuses a missing file, a file that is not SQLite, a SQLite database that is not an mpmq
    recording, a recording of a newer format, and a truncated or corrupted file. Never creates
    or changes a file.
    """
    name = os.fsdecode(os.fspath(path))
    if not os.path.exists(name):
        raise RecordingError(f"{name}: no such file")
    if os.path.isdir(name):
        raise RecordingError(f"{name} is a directory, not a recording")
    check_sqlite_file(name)
    conn = None
    try:
        # mode=ro: never create, never write (a missing file fails instead of appearing).
        conn = sqlite3.connect(f"{Path(os.path.abspath(name)).as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        # A file's own views and triggers are never run with functions that have side effects.
        conn.execute("PRAGMA trusted_schema = OFF")
        version = read_format(conn, name)
        if version is None:
            raise RecordingError(f"{name} is an empty SQLite database, not an mpmq recording")
        return Recording(name, conn, version)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise RecordingError(f"{name} is truncated or corrupted: {exc}") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _json_or_unset(text: str | None) -> Any:
    return msgspec.UNSET if text is None else _decode(text)
