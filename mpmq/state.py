"""The run's state, folded from its events by one function.

``reduce(state, event)`` is the only code that changes a ``RunState``. It reads no clock,
does no I/O and logs nothing, so the same events always give the same state: live, when
reading a recording, and in the tests, which need no processes. For speed (a run can carry a
million log events) it updates the state it is given and returns it; whoever needs the state
as it was copies it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from .events import Done, Error, Event, Log, Payload, Ran, Result, Started

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED)


class ItemState(msgspec.Struct, gc=False):
    """What is known about one item.

    A msgspec struct, not a dataclass: a run of 10,000 items builds 10,000 of these before its
    first event, and msgspec builds them three times as fast (nor are they tracked by the
    cycle collector: they hold only scalars and events).
    """

    offset: int
    status: str = PENDING
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    result: Payload | None = None
    error: Error | None = None
    logs: int = 0
    # issue 19 (retries): the errors of the attempts that failed and were run again, in order;
    # the item's own ``result``/``error`` are its last attempt's.
    attempts: tuple[Error, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass
class RunState:
    """Every item's state and the run's counters."""

    items: list[ItemState] = field(default_factory=list)
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    events: int = 0

    @classmethod
    def new(cls, size: int) -> RunState:
        return cls(items=[ItemState(offset) for offset in range(size)], pending=size)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def complete(self) -> bool:
        """Every item is finished."""
        return self.finished == len(self.items)

    def counts(self) -> dict[str, int]:
        return {PENDING: self.pending, RUNNING: self.running, SUCCEEDED: self.succeeded, FAILED: self.failed}


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
    state.events += 1
    item = state.items[event.offset]
    if item.status == PENDING:
        state.pending -= 1
        state.running += 1
    item.status = RUNNING
    item.pid = event.pid
    if item.started_at is None or not item.attempts:  # a retry: the item began at its first attempt
        item.started_at = event.time


def _log(state: RunState, event: Log) -> None:
    state.events += 1
    state.items[event.offset].logs += 1


def _result(state: RunState, event: Result) -> None:
    state.events += 1
    state.items[event.offset].result = event.value


def _error(state: RunState, event: Error) -> None:
    state.events += 1
    item = state.items[event.offset]
    if event.retrying:  # issue 19: an attempt that is run again is not the item's outcome
        item.attempts += (event,)
        return
    item.error = event
    if item.pid is None and event.pid:
        item.pid = event.pid


def _done(state: RunState, event: Done) -> None:
    state.events += 1
    item = state.items[event.offset]
    if item.status == SUCCEEDED or item.status == FAILED:
        return
    if item.status == PENDING:
        state.pending -= 1
    else:
        state.running -= 1
    if item.error is None:
        item.status = SUCCEEDED
        state.succeeded += 1
    else:
        item.status = FAILED
        state.failed += 1
    item.ended_at = event.time


def _ran(state: RunState, event: Ran) -> None:
    """``started``, ``result`` and ``done`` at once (``events.Ran``)."""
    item = state.items[event.offset]
    if item.status != PENDING:  # not the fast path's case: fold the three one by one
        for each in event.expanded():
            FOLDS[type(each)](state, each)
        return
    state.events += 3
    state.pending -= 1
    state.succeeded += 1
    item.status = SUCCEEDED
    item.pid = event.pid
    item.started_at = event.time
    item.result = event.value
    item.ended_at = event.ended


FOLDS = {Started: _started, Log: _log, Result: _result, Error: _error, Done: _done, Ran: _ran}
