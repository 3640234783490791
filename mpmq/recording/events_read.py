"""A run's events read back from a recording, in each format: format 1's rows, one per event,
and format 2's batches (``batches.py`` decodes one), checked as untrusted data.

``reader.Recording.events`` and ``.batches`` hand out what this reads; everything else about a
recording (its runs, its items) is the reader's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from typing import Any

import msgspec

from ..events import AnyEvent, Done, Error, Log, Result, Started
from .batches import BadBatch, decode_batch, with_pickles
from .file import RecordingError

_decode = msgspec.json.decode
_EVENT_TYPES: dict[str, type] = {"started": Started, "log": Log, "result": Result, "error": Error, "done": Done}


class EventReader:
    """The events of the runs of one open recording (see the module docstring)."""

    def __init__(self, path: str, conn: sqlite3.Connection, format_version: int) -> None:
        self.path = path
        self.conn = conn
        self.format_version = format_version

    def events(
        self, run_id: int, count: int, offsets: Collection[int] | None, until: int | None
    ) -> Iterator[tuple[int, float, AnyEvent]]:
        """``Recording.events`` of run ``run_id``, which has ``count`` items."""
        if self.format_version < 2:
            return self._format_1_events(run_id, count, offsets, until)
        return self._one_by_one(self._batches(run_id, count, offsets, until))

    def batches(
        self, run_id: int, count: int, offsets: Collection[int] | None, until: int | None
    ) -> Iterator[tuple[int, float, list[AnyEvent]]]:
        """``Recording.batches`` of run ``run_id``, which has ``count`` items."""
        if self.format_version < 2:
            return self._regrouped(self._format_1_events(run_id, count, offsets, until))
        return self._split(self._batches(run_id, count, offsets, until))

    def corrupted(self, exc: sqlite3.DatabaseError) -> RecordingError:
        return RecordingError(f"{self.path} is truncated or corrupted: {exc}")

    @staticmethod
    def _one_by_one(batches: Iterator[tuple]) -> Iterator[tuple[int, float, AnyEvent]]:
        for first, received_at, numbers, events in batches:
            if numbers is None:
                for i, event in enumerate(events):
                    yield first + i, received_at, event
            else:
                yield from zip(numbers, (received_at,) * len(events), events)

    @staticmethod
    def _regrouped(events: Iterator[tuple[int, float, AnyEvent]]) -> Iterator[tuple[int, float, list[AnyEvent]]]:
        """Format 1's events, one row each, regrouped into the batches they were received in."""
        batch: list = []
        last: Any = None
        for seq, received_at, event in events:
            if batch and (seq != last[0] + len(batch) or received_at != last[1] or len(batch) >= 1000):
                yield last[0], last[1], batch
                batch = []
            if not batch:
                last = (seq, received_at)
            batch.append(event)
        if batch:
            yield last[0], last[1], batch

    @staticmethod
    def _split(batches: Iterator[tuple]) -> Iterator[tuple[int, float, list[AnyEvent]]]:
        for first, received_at, numbers, events in batches:
            if numbers is None:
                yield first, received_at, events
                continue
            start = 0
            for i in range(1, len(events) + 1):  # runs of consecutive numbers
                if i == len(events) or numbers[i] != numbers[i - 1] + 1:
                    yield numbers[start], received_at, events[start:i]
                    start = i

    def _batches(
        self, run_id: int, count: int, offsets: Collection[int] | None, until: int | None
    ) -> Iterator[tuple[int, float, list[int] | None, list[AnyEvent]]]:
        """Format 2: each stored batch, decoded and checked, filtered: ``(seq, received_at,
        seqs or None when they run on from seq, events)``."""
        sql = "SELECT seq, received_at, seqs, events FROM batches WHERE run_id = ?"
        params: list[Any] = [run_id]
        wanted = None
        if offsets is not None:
            wanted = {int(offset) for offset in offsets}
            if not wanted:
                return
            # A batch holds the events of a few neighbouring items: only those that may hold
            # a wanted item's are decoded (issue 18: one item's logs of a million events).
            sql += " AND last_offset >= ? AND first_offset <= ?"
            params += [min(wanted), max(wanted)]
        if until is not None:
            until = int(until)
            sql += " AND seq <= ?"
            params.append(until)
        sql += " ORDER BY seq"
        try:
            exists = "SELECT EXISTS (SELECT 1 FROM pickles WHERE run_id = ?)"
            kept = bool(self.conn.execute(exists, (run_id,)).fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise self.corrupted(exc) from None
        try:
            cursor = self.conn.execute(sql, params)
            while True:
                rows = cursor.fetchmany(64)
                if not rows:
                    return
                for seq, received_at, seqs, text in rows:
                    if type(received_at) not in (float, int):
                        raise RecordingError(f"{self.path} is corrupted: batch {seq!r} received at {received_at!r}")
                    try:
                        numbers, events = decode_batch(seq, seqs, text, count)
                    except BadBatch as exc:
                        raise RecordingError(f"{self.path} is corrupted: {exc}") from None
                    if kept:
                        events = with_pickles(seq, numbers, events, self._pickles(run_id, seq, numbers, events))
                    if wanted is not None or (until is not None and (numbers or [seq + len(events) - 1])[-1] > until):
                        numbers, events = _filtered(seq, numbers, events, wanted, until)
                        if not events:
                            continue
                    yield seq, float(received_at), numbers, events
        except sqlite3.DatabaseError as exc:
            raise self.corrupted(exc) from None

    def _pickles(self, run_id: int, seq: int, numbers: list[int] | None, events: list) -> dict[int, bytes]:
        last = numbers[-1] if numbers else seq + len(events) - 1
        rows = self.conn.execute(
            "SELECT seq, pickle FROM pickles WHERE run_id = ? AND seq BETWEEN ? AND ?", (run_id, seq, last)
        ).fetchall()
        return {number: blob for number, blob in rows if type(blob) is bytes}

    def _format_1_events(
        self, run_id: int, count: int, offsets: Collection[int] | None, until: int | None
    ) -> Iterator[tuple[int, float, AnyEvent]]:
        sql = (
            'SELECT seq, kind, "offset", pid, worker_time, received_at, level, logger, message, data, pickle'
            " FROM events WHERE run_id = ?"
        )
        params: list[Any] = [run_id]
        wanted = None
        if offsets is not None:
            wanted = {int(offset) for offset in offsets}
            if len(wanted) <= 500:  # beyond SQLite's variable limit, filter here instead
                sql += f' AND "offset" IN ({", ".join("?" * len(wanted))})'
                params.extend(sorted(wanted))
        if until is not None:
            sql += " AND seq <= ?"
            params.append(int(until))
        sql += " ORDER BY seq"
        return self._events(sql, params, wanted, count)

    # -- internals --

    def _events(
        self, sql: str, params: list[Any], wanted: set[int] | None, count: int
    ) -> Iterator[tuple[int, float, AnyEvent]]:
        retried: dict[int, int] = {}  # issue 19: offset -> its attempts that were run again
        try:
            cursor = self.conn.execute(sql, params)
            while True:
                rows = cursor.fetchmany(2000)
                if not rows:
                    return
                for row in rows:
                    if wanted is None or row[2] in wanted:
                        seq, received_at, event = self._event(row, count)
                        if retried:
                            event = _with_attempt(event, retried)
                        if type(event) is Error and event.retrying:
                            retried[event.offset] = retried.get(event.offset, 0) + 1
                        yield seq, received_at, event
        except sqlite3.DatabaseError as exc:
            raise self.corrupted(exc) from None

    def _event(self, row: sqlite3.Row, count: int) -> tuple[int, float, AnyEvent]:
        seq, kind, offset, pid, worker_time, received_at, level, logger, message, data, pickled = row
        if type(seq) is not int or type(received_at) not in (float, int):
            raise RecordingError(f"{self.path} is corrupted: event row {seq!r} received at {received_at!r}")
        if type(offset) is int and not 0 <= offset < count:  # not an int: convert below says so
            raise RecordingError(
                f"{self.path} is corrupted: event {seq} is for item {offset}, but the run has {count} items"
            )
        cls = _EVENT_TYPES.get(kind)
        if cls is None:
            raise RecordingError(
                f"{self.path}: event {seq} has kind {kind!r}, unknown to this mpmq (recorded by a newer one?)"
            )
        fields: dict[str, Any] = {"offset": offset, "pid": pid, "time": worker_time}
        try:
            extra = _decode(data) if data is not None else {}
            if cls is Log:
                fields.update(level=level, logger=logger, message=message, exc_text=extra.get("exc_text"))
            elif cls is Result:
                fields["value"] = payload_fields(extra.get("json", msgspec.UNSET), extra.get("repr"), pickled)
            elif cls is Error:
                fields.update(message=message, exception=pickled, type=extra.get("type"))
                fields["traceback"] = extra.get("traceback", "")
                fields.update(retryable=extra.get("retryable", False), retrying=extra.get("retrying", False))
            # convert validates every field's type: a crafted row cannot smuggle in odd values.
            return seq, float(received_at), msgspec.convert(fields, cls)
        except (msgspec.MsgspecError, AttributeError, TypeError, RecursionError) as exc:
            raise RecordingError(f"{self.path} is corrupted: event {seq}: {exc}") from None


def _with_attempt(event: AnyEvent, retried: dict[int, int]) -> AnyEvent:
    """Format 1 has no column for a start's attempt (issue 19): it is one more than the item's
    attempts that ended ``retrying`` before it (counted so, not by earlier starts: a killed
    worker's start may never have reached the parent)."""
    if type(event) is Started and event.offset in retried:
        return msgspec.structs.replace(event, attempt=retried[event.offset] + 1)
    return event


def _filtered(
    seq: int, numbers: list[int] | None, events: list, wanted: set[int] | None, until: int | None
) -> tuple[list[int], list]:
    """The events of a batch that are for ``wanted`` items and numbered up to ``until``."""
    numbers = numbers if numbers is not None else list(range(seq, seq + len(events)))
    keep = [
        (number, event) for number, event in zip(numbers, events)
        if (wanted is None or event.offset in wanted) and (until is None or number <= until)
    ]  # fmt: skip
    return [number for number, _ in keep], [event for _, event in keep]


def payload_fields(json_value: Any, text: str | None, pickled: bytes | None) -> dict[str, Any]:
    """A Payload's fields, for msgspec.convert to validate (``json`` omitted when absent)."""
    fields: dict[str, Any] = {"repr": text, "pickle": pickled}
    if json_value is not msgspec.UNSET:
        fields["json"] = json_value
    return fields
