"""One recorded run, read back whole: the Python API behind ``replay.load`` and ``replay.runs``.

The state is folded from the recorded events with ``mpmq.state.reduce``, the reducer the engine
itself uses, so what ``load`` says about a run is what a replay's handlers saw. Results come
from that state through ``mpmq.outcomes`` (the same code ``MPmq.replay`` returns them with),
and a recording is untrusted data: nothing is unpickled unless ``allow_pickle=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from mpmq import outcomes
from mpmq.events import AnyEvent
from mpmq.recording import ItemRecord, Recording, RunInfo, open_recording
from mpmq.state import FOLDS, RunState, reduce

PathLike = str | os.PathLike[str]


class Stamped(NamedTuple):
    """An event as the live parent received it: its sequence number and receive time."""

    seq: int
    received_at: float
    event: AnyEvent


@dataclass(frozen=True)
class RecordedRun:
    """A recorded run: header, events in receive order, item rows, results and folded state."""

    path: str
    header: RunInfo
    stamped: list[Stamped]
    items: list[ItemRecord]
    results: list[Any]
    state: RunState

    @property
    def events(self) -> list[AnyEvent]:
        """The typed events, in the order the live parent received them."""
        return [stamped.event for stamped in self.stamped]

    @property
    def complete(self) -> bool:
        """False for a run whose parent died mid-run (status ``running``) or whose recording stopped."""
        return self.header.complete

    @property
    def last_seq(self) -> int | None:
        return self.stamped[-1].seq if self.stamped else None


def runs(path: PathLike) -> list[RunInfo]:
    """Every run in a recording, oldest first; ``RecordingError`` if the file is not one."""
    with open_recording(path) as recording:
        return recording.runs()


def load(path: PathLike, run: int | None = None, allow_pickle: bool = False) -> RecordedRun:
    """One recorded run (the latest by default), read whole into memory.

    ``allow_pickle=True`` unpickles recorded results and exceptions: only for files you trust,
    since unpickling runs code. Without it such values are ``mpmq.payload.Unpickled``
    placeholders showing the recorded ``repr``.
    """
    with open_recording(path) as recording:
        header = recording.run(run)
        stamped: list[Stamped] = []

        def keep(seq: int, received_at: float, event: AnyEvent) -> None:
            stamped.append(Stamped(seq, received_at, event))

        state = fold(recording, header, keep)
        items = recording.items(header.id)
    results = [outcomes.outcome(item, allow_pickle) for item in state.items]
    return RecordedRun(recording.path, header, stamped, items, results, state)


def fold(
    recording: Recording,
    header: RunInfo,
    on_event: Callable[[int, float, AnyEvent], None] | None = None,
    offsets: list[int] | None = None,
) -> RunState:
    """Fold a run's events into a fresh state, streaming (a run may hold millions of log lines).

    ``on_event(seq, received_at, event)`` sees each event after it is folded, as a handler would.
    Without it, events are folded a batch at a time (issue 18: a million events in a second).
    """
    state = RunState.new(recording.item_count(header.id))
    if on_event is None:
        folds = FOLDS  # what reduce(state, event) does, a call shorter, as the engine's loop does
        for _, _, events in recording.batches(header.id, offsets=offsets):
            for event in events:
                folds[type(event)](state, event)
        return state
    for seq, received_at, event in recording.events(header.id, offsets=offsets):
        reduce(state, event)
        if on_event is not None:
            on_event(seq, received_at, event)
    return state

