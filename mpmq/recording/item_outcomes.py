"""Which items' outcomes to write, and when; and format 2's way of writing them.

An item's outcome (status, times, result, error) is written on the recorder's thread as it
succeeds with a plain value (``finished``, read from the run's live state), and for every
other item when the run ends (``rest``). Format 2 wrote each item's row with its input before
the first item ran (``rows.item_inputs``) and its outcome here, as an UPDATE, the commonest
outcome (a success returning None or a count) 200 rows to a statement (issue 18: one UPDATE
per item cost seconds at a million items); format 3 writes the same outcomes as rows of
chunks (``item_chunks.OutcomeChunks``).
"""

from __future__ import annotations

from typing import Any

from ..payload import is_wire_int
from ..state import NO_PID, NO_RESULT, PENDING, RUNNING, STATUSES, SUCCEEDED, ItemState, RunState
from .file import sqlite
from .rows import multi_row_inserts, rest_payload

_UPDATE_ITEM = (
    "UPDATE items SET status = ?, pid = ?, started_at = ?, ended_at = ?, duration = ?, result = ?,"
    " result_repr = ?, result_pickle = ?, error_type = ?, error_message = ?, traceback = ?"
    ' WHERE run_id = ? AND "offset" = ?'
)
_UPDATE_SUCCESS = (
    "UPDATE items SET status = ?, pid = ?, started_at = ?, ended_at = ?, duration = ?, result = ?,"
    ' result_repr = ? WHERE run_id = {run} AND "offset" = ?'
)
# A success's row from the VALUES rows (offset, pid, started_at, ended_at, result text) that
# follow the head; its repr is its JSON text but for None (rows.scalar_rest keeps them so).
_BULK_UPDATE_HEAD = (
    "UPDATE items SET status = 'succeeded', pid = v.column2, started_at = v.column3, ended_at = v.column4,"
    " duration = v.column4 - v.column3, result = v.column5,"
    " result_repr = CASE v.column5 WHEN 'null' THEN 'None' ELSE v.column5 END FROM (VALUES "
)
_BULK_UPDATE_TAIL = ') AS v WHERE items.run_id = {run} AND items."offset" = v.column1'
_UPDATE_FROM = tuple(map(int, sqlite().sqlite_version.split("."))) >= (3, 33, 0)  # UPDATE ... FROM: 3.33
_PENDING, _RUNNING, _SUCCEEDED = (STATUSES.index(s) for s in (PENDING, RUNNING, SUCCEEDED))  # the state's codes
_PENDING_BYTE = bytes([_PENDING])
_UNSEEN, _WRITTEN, _FOR_FINISH = b"\x00", 1, 2  # ItemOutcomes._written, per item


def _plain_success(code: int, value: Any, pid: int, started: float, ended: float, offset: int,
                   errors: dict) -> bool:
    """A success returning None or a count, with its pid and both times (NaN != NaN: a time the
    item lacks, or has not been given yet, sends it the general way)."""
    return (code == _SUCCEEDED and (value is None or (type(value) is int and is_wire_int(value)))
            and pid != NO_PID and started == started and ended == ended and offset not in errors)


class ItemOutcomes:
    """One run's item outcome rows: which are written, and the statements that write the rest."""

    def __init__(self, run_id: int, keep_pickle: bool, rest: dict, variables: int) -> None:
        self.run_id = run_id
        self._keep_pickle = keep_pickle
        self._rest = rest  # the recorder's results at rest, by offset (batches.rest_cache)
        self._variables = variables  # SQLite's limit of bound values per statement
        self._written: bytearray | None = None  # per item: 1 row written mid-run, 2 left for the end
        self._unwritten_from = 0  # every item before this offset is marked in _written

    def finished(self, state: RunState) -> list[tuple[str, list]]:
        """The rows of the items that succeeded plainly since the last look, from the live
        state (write lock held; the run's loop folds events meanwhile, under the GIL).

        The reducer sets an item's status before its times and its result, and an item's
        columns stay as they are once it has finished (its events all come before its end);
        so an item read half-folded lacks a time or a result and is left for ``finish``, like
        any other that is not a plain success. Only the handed-out part of the run is read:
        up to the first item still pending, past the items already looked at.
        """
        if self._keep_pickle:
            return []
        status, pids, starts, ends, results, errors = state.columns()
        written = self._written
        if written is None:
            written = self._written = bytearray(len(status))
        frontier = status.find(_PENDING_BYTE, self._unwritten_from)
        frontier = len(status) if frontier < 0 else frontier
        flat: list[Any] = []
        add = flat.extend
        offset = written.find(_UNSEEN, self._unwritten_from, frontier)
        self._unwritten_from = frontier if offset < 0 else offset
        while offset >= 0:
            code = status[offset]
            if code > _RUNNING:
                value = results[offset]
                pid, started, ended = pids[offset], starts[offset], ends[offset]
                if _plain_success(code, value, pid, started, ended, offset, errors):
                    add((offset, pid, started, ended, "null" if value is None else repr(value)))
                    written[offset] = _WRITTEN
                else:
                    written[offset] = _FOR_FINISH
            offset = written.find(_UNSEEN, offset + 1, frontier)
        return self._bulk(flat)

    def rest(self, state: RunState) -> list[tuple[str, list]]:
        """UPDATEs of the item rows: the commonest, a success returning None or a count, many
        rows per statement from the state's columns; any other item row by row."""
        status, pids, starts, ends, results, errors = state.columns()
        written = self._written if self._written is not None else bytearray(len(status))
        plain: list[Any] = []  # flat: offset, pid, started_at, ended_at, result text
        other: list[int] = []
        bulk = not self._keep_pickle
        add = plain.extend
        for offset, code in enumerate(status):
            value = results[offset]
            if code == _PENDING and value is NO_RESULT and pids[offset] == NO_PID and offset not in errors:
                continue  # never started: its row is as the run's start wrote it
            if written[offset] == _WRITTEN and offset not in errors:
                continue  # written as it finished (``finished``)
            if bulk:
                pid, started, ended = pids[offset], starts[offset], ends[offset]
                if _plain_success(code, value, pid, started, ended, offset, errors):
                    add((offset, pid, started, ended, "null" if value is None else repr(value)))
                    continue
            other.append(offset)
        return self._bulk(plain) + self._rows(state, other)

    def _bulk(self, flat: list[Any]) -> list[tuple[str, list]]:
        """Issue 18: one UPDATE ... FROM (VALUES ...) per 200 items binds 5 values each, not 8
        with a statement apiece (a fifth less CPU for a million rows); SQLite 3.33+."""
        if not flat:
            return []
        if not _UPDATE_FROM:
            rows = [flat[i : i + 5] for i in range(0, len(flat), 5)]
            return [(_UPDATE_SUCCESS.format(run=int(self.run_id)), [
                (SUCCEEDED, pid, started, ended, ended - started, text, "None" if text == "null" else text, offset)
                for offset, pid, started, ended, text in rows])]  # fmt: skip
        head = _BULK_UPDATE_HEAD
        tail = _BULK_UPDATE_TAIL.format(run=int(self.run_id))
        return multi_row_inserts(head, "(?, ?, ?, ?, ?)", 5, flat, self._variables, tail)

    def _rows(self, state: RunState, offsets: list[int]) -> list[tuple[str, list]]:
        """UPDATEs of any other item rows; a plain success (the common case) binds only what it has."""
        plain, other = [], []
        keep = self._keep_pickle
        items = state.items
        for offset in offsets:
            item = items[offset]
            result = item.result
            if not keep and item.error is None and result is not None and result.pickle is None and result.repr is None:
                # None and counts, as rows.scalar_rest keeps them, without building it (issue 18)
                value = result.json
                if value is None or (type(value) is int and is_wire_int(value)):
                    shown = repr(value)
                    plain.append((item.status, item.pid, item.started_at, item.ended_at, item.duration,
                                  "null" if value is None else shown, shown, item.offset))  # fmt: skip
                    continue
            row = self._row(item)
            if item.error is None and row[7] is None:  # no error, no pickle: the NULLs stay NULL
                plain.append((*row[:7], item.offset))
            else:
                other.append(row)
        return [(_UPDATE_SUCCESS.format(run=int(self.run_id)), plain), (_UPDATE_ITEM, other)]

    def _row(self, item: ItemState) -> tuple:
        result: tuple = (None, None, None)
        if item.result is not None:
            cached = self._rest.get(item.offset)
            rest = (
                cached
                if cached is not None and cached.live is item.result
                else rest_payload(item.result, self._keep_pickle)
            )
            result = (rest.json, rest.repr, rest.pickle)
        error = item.error
        failure = (error.type, error.message, error.traceback) if error is not None else (None, None, None)
        return (item.status, item.pid, item.started_at, item.ended_at, item.duration,
                *result, *failure, self.run_id, item.offset)  # fmt: skip
