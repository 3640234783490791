"""The run's state, folded from its events by one function.

``reduce(state, event)`` is the only code that changes a ``RunState``. It reads no clock,
does no I/O and logs nothing, so the same events always give the same state: live, when
reading a recording, and in the tests, which need no processes. For speed (a run can carry a
million log events) it updates the state it is given and returns it; whoever needs the state
as it was copies it first.

The state is stored by column, one array per field, not one object per item (issue 18: a
million items cost 200 bytes each as objects, about a third of that as columns), and a
``Ran`` chunk of consecutive items is folded with a few slice assignments. Readers see items
as before: ``state.items[i].status``, ``.result``, ... are read from the columns when asked.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from typing import Any, overload

import msgspec

from .events import Done, Error, Event, Log, Payload, Ran, Result, Started, consecutive

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED)

# A status is stored as its index in STATUSES: one byte per item.
_PENDING, _RUNNING, _SUCCEEDED, _FAILED = range(4)
_NO_PID = NO_PID = -(2**63)  # the pid column's None
_NO_TIME = math.nan  # the time columns' None
NO_RESULT = type("NoResult", (), {"__repr__": lambda self: "<no result>", "__slots__": ()})()
_UNSET = msgspec.UNSET


class ItemState:
    """What is known about one item: a view of its row in the state's columns.

    Read when asked, so it is always current; two views compare equal when every field does.
    """

    __slots__ = ("_state", "offset")

    def __init__(self, state: RunState, offset: int) -> None:
        self._state = state
        self.offset = offset

    @property
    def status(self) -> str:
        return STATUSES[self._state._status[self.offset]]

    @property
    def pid(self) -> int | None:
        pid = self._state._pid[self.offset]
        return None if pid == _NO_PID else pid

    @property
    def started_at(self) -> float | None:
        time = self._state._started[self.offset]
        return None if time != time else time

    @property
    def ended_at(self) -> float | None:
        time = self._state._ended[self.offset]
        return None if time != time else time

    @property
    def result(self) -> Payload | None:
        result = self._state._result[self.offset]
        if result is NO_RESULT:
            return None
        return result if type(result) is Payload else Payload(json=result)

    @property
    def error(self) -> Error | None:
        return self._state._errors.get(self.offset)

    @property
    def logs(self) -> int:
        return self._state._logs[self.offset]

    @property
    def attempts(self) -> tuple[Error, ...]:
        """Issue 19 (retries): the errors of the attempts that failed and were run again, in
        order; the item's own ``result``/``error`` are its last attempt's."""
        return self._state._attempts.get(self.offset, ())

    @property
    def finished(self) -> bool:
        return self._state._status[self.offset] >= _SUCCEEDED

    @property
    def duration(self) -> float | None:
        started, ended = self.started_at, self.ended_at
        if started is None or ended is None:
            return None
        return ended - started

    def _fields(self) -> tuple:
        return (self.offset, self.status, self.pid, self.started_at, self.ended_at, self.result, self.error, self.logs,
                self.attempts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemState):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # a live view: its fields change

    def __repr__(self) -> str:
        names = ("offset", "status", "pid", "started_at", "ended_at", "result", "error", "logs", "attempts")
        return "ItemState(" + ", ".join(f"{name}={value!r}" for name, value in zip(names, self._fields())) + ")"


class Items(Sequence):
    """``state.items``: every item's ``ItemState``, in offset order."""

    __slots__ = ("_state",)

    def __init__(self, state: RunState) -> None:
        self._state = state

    def __len__(self) -> int:
        return len(self._state._status)

    @overload
    def __getitem__(self, index: int) -> ItemState: ...

    @overload
    def __getitem__(self, index: slice) -> list[ItemState]: ...

    def __getitem__(self, index: Any) -> Any:
        size = len(self._state._status)
        if isinstance(index, slice):
            return [ItemState(self._state, offset) for offset in range(*index.indices(size))]
        offset = index.__index__()
        if offset < 0:
            offset += size
        if not 0 <= offset < size:
            raise IndexError("item offset out of range")
        return ItemState(self._state, offset)

    def __iter__(self) -> Iterator[ItemState]:
        state = self._state
        return (ItemState(state, offset) for offset in range(len(state._status)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Items):
            return self._state._columns() == other._state._columns()
        return list(self) == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} items>"


class RunState:
    """Every item's state and the run's counters."""

    def __init__(self, size: int = 0) -> None:
        self._status = bytearray(size)  # _PENDING is 0
        self._pid = array("q", [_NO_PID]) * size
        self._started = array("d", [_NO_TIME]) * size
        self._ended = array("d", [_NO_TIME]) * size
        # A result that is only a JSON value is kept as that value, not its Payload: 48 bytes
        # less per item (issue 18); ``ItemState.result`` gives the Payload back.
        self._result: list[Any] = [NO_RESULT] * size
        self._errors: dict[int, Error] = {}
        self._attempts: dict[int, tuple[Error, ...]] = {}  # retried items only (issue 19)
        self._logs = [0] * size  # a list: += on it is faster than on an array (a million logs)
        self.items = Items(self)
        self.pending = size
        self.running = 0
        self.succeeded = 0
        self.failed = 0
        self.events = 0

    @classmethod
    def new(cls, size: int) -> RunState:
        return cls(size)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def complete(self) -> bool:
        """Every item is finished."""
        return self.finished == len(self._status)

    def counts(self) -> dict[str, int]:
        return {PENDING: self.pending, RUNNING: self.running, SUCCEEDED: self.succeeded, FAILED: self.failed}

    def columns(self) -> tuple[bytearray, array, array, array, list[Any], dict[int, Error]]:
        """Every item at once, for a reader of the whole run (issue 18: the recorder writes a
        million item rows from these, where ``items[i]``'s properties cost a microsecond each).

        ``(status, pid, started, ended, result, errors)``: a status is its index in
        ``STATUSES``; a pid of ``NO_PID`` and a NaN time mean none; a result is its plain JSON
        value or its ``Payload`` (``NO_RESULT``: none); errors by offset. Read, never write.
        """
        return self._status, self._pid, self._started, self._ended, self._result, self._errors

    def _columns(self) -> tuple:
        # NaN never equals itself: the time columns compare as bytes
        return (self._status, self._pid, self._started.tobytes(), self._ended.tobytes(), self._result,
                self._errors, self._logs, self._attempts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunState):
            return NotImplemented
        return self.counts() == other.counts() and self.events == other.events and self._columns() == other._columns()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RunState({len(self._status)} items, {self.counts()}, events={self.events})"


def reduce(state: RunState, event: Event) -> RunState:
    """Fold one event into the run's state."""
    try:
        fold = FOLDS[type(event)]
    except KeyError:
        raise TypeError(f"not an mpmq event: {event!r}") from None
    fold(state, event)
    return state


# One function per kind of event; ``reduce`` picks it. The engine's loop, which hands out a
# million events in a log-heavy run, looks them up itself and saves a call per event.


def _started(state: RunState, event: Started) -> None:
    offset = event.offset
    status = state._status
    if status[offset] == _PENDING:
        state.pending -= 1
        state.running += 1
    status[offset] = _RUNNING
    state._pid[offset] = event.pid
    if offset not in state._attempts:  # a retry: the item began at its first attempt (issue 19)
        state._started[offset] = event.time
    state.events += 1


def _log(state: RunState, event: Log) -> None:
    state._logs[event.offset] += 1
    state.events += 1


def _result(state: RunState, event: Result) -> None:
    value = event.value
    plain = value.pickle is None and value.repr is None and value.json is not _UNSET
    state._result[event.offset] = value.json if plain else value
    state.events += 1


def _error(state: RunState, event: Error) -> None:
    offset = event.offset
    if event.retrying:  # issue 19: an attempt that is run again is not the item's outcome
        state._attempts[offset] = state._attempts.get(offset, ()) + (event,)
        state.events += 1
        return
    if state._pid[offset] == _NO_PID and event.pid:  # (an offset past the end fails here)
        state._pid[offset] = event.pid
    state._errors[offset] = event
    state.events += 1


def _done(state: RunState, event: Done) -> None:
    offset = event.offset
    status = state._status
    code = status[offset]
    state.events += 1
    if code >= _SUCCEEDED:
        return
    if code == _PENDING:
        state.pending -= 1
    else:
        state.running -= 1
    if offset not in state._errors:
        status[offset] = _SUCCEEDED
        state.succeeded += 1
    else:
        status[offset] = _FAILED
        state.failed += 1
    state._ended[offset] = event.time


def _ran(state: RunState, event: Ran) -> None:
    """Every item of the chunk started, returned and ended (``events.Ran``).

    The usual chunk (consecutive pending items, as a worker sends them) is a few slice
    assignments; any other is folded as the events it stands for, one by one.
    """
    offsets = event.offsets
    count = len(offsets)
    first = event.offset
    end = first + count
    status = state._status
    if (
        count
        and first >= 0
        and end <= len(status)
        and len(event.starts) == count == len(event.ends) == len(event.values)
        and consecutive(offsets) and offsets[0] == first
        and status.count(_PENDING, first, end) == count
        and not (state._errors and any(offset in state._errors for offset in offsets))
    ):
        status[first:end] = _SUCCEEDED_BYTES * count
        state._pid[first:end] = array("q", [event.pid]) * count
        state._started[first:end] = array("d", event.starts)
        state._ended[first:end] = array("d", event.ends)
        values = event.values
        if Payload in set(map(type, values)):
            values = [
                value if type(value) is not Payload
                else value.json if value.pickle is None and value.repr is None and value.json is not _UNSET else value
                for value in values
            ]
        state._result[first:end] = values  # plain values as they came (events.Ran): no loop of ours
        state.pending -= count
        state.succeeded += count
        state.events += 3 * count
        return
    for each in event.expanded():
        FOLDS[type(each)](state, each)


_SUCCEEDED_BYTES = bytes([_SUCCEEDED])

FOLDS = {Started: _started, Log: _log, Result: _result, Error: _error, Done: _done, Ran: _ran}
