"""Where a run's events come from: live workers, or a recording.

Both give the engine the same thing: batches of ``(seq, received_at, event)``, in the order
the parent received them, and ``None`` once nothing more will come. The engine's loop, the
reducer, the handlers and the 0.7.0 pull seams cannot tell them apart, which is what makes
replay the same code path as a live run. ``LiveSource`` wraps any backend (``backends/``:
local processes or a Dask cluster); a resumed run chains a recording's events before a
backend's (``resume.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .backends.local.pool import WorkerPool
from .events import expanded_size

Batch = tuple  # (seq of the first event: int, received_at: float, events: list[AnyEvent])
REPLAY_BATCH = 256


class EventSource(Protocol):
    def start(self) -> None: ...

    def receive(self, timeout: float | None) -> list[Batch] | None:
        """The next batches, waiting at most ``timeout`` s (``None``: until any); ``None`` at the end.

        Events of one batch were received together: consecutive sequence numbers, one time.
        """

    @property
    def exhausted(self) -> bool:
        """Nothing more will come."""

    def close(self, terminate: bool = False) -> None: ...

    def process_for(self, pid: int) -> Any:
        """The process object running as ``pid``, where there is one."""


class LiveSource:
    """Events from worker processes, stamped as they arrive."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.seq = 0
        self._counted = 0  # the backend's own count at the last receive
        # issue 19: the engine's FailurePolicy.review, applied before events are numbered
        self.review: Callable[[list], list] | None = None

    @property
    def compact(self) -> bool:
        """Hand out ``events.Ran`` chunks as they came, not as the events they stand for.

        A chunk takes as many sequence numbers as the events it stands for, so the numbers
        are the same whether anyone expands it or not. Sources that never coalesce need not
        have it.
        """
        return self.pool.compact

    @compact.setter
    def compact(self, value: bool) -> None:
        self.pool.compact = value

    def start(self) -> None:
        self.pool.start()

    @property
    def exhausted(self) -> bool:
        return self.pool.exhausted

    def receive(self, timeout: float | None) -> list[Batch] | None:
        if self.pool.exhausted:
            return None
        events = self.pool.receive(timeout)
        if events and self.review is not None:
            events = self.review(events)
        if not events:
            return [] if not self.pool.exhausted else None
        first = self.seq + 1
        # What the backend counted while reading, unless a review changed the events (issue 19)
        counted = getattr(self.pool, "received", None) if self.review is None else None
        if counted is None:
            self.seq += expanded_size(events)
        else:  # numbering may start after a resumed run's recorded events (``seq`` set from outside)
            self.seq += counted - self._counted
            self._counted = counted
        return [(first, time.time(), events)]

    def close(self, terminate: bool = False) -> None:
        self.pool.close(terminate=terminate)

    def process_for(self, pid: int) -> Any:
        return self.pool.process_for(pid)


class RecordedSource:
    """Events read back from a recording, optionally paced at ``speed`` times the original."""

    def __init__(self, events: Iterable[tuple], speed: float | None = None) -> None:
        self._events: Iterator[tuple] = iter(events)
        self._next: tuple | None = None  # one event read ahead, to know when the end is reached
        self._speed = speed
        self._origin: tuple[float, float] | None = None  # (first received_at, wall clock then)
        self._advance()

    def _advance(self) -> None:
        self._next = next(self._events, None)

    def start(self) -> None:
        pass

    @property
    def exhausted(self) -> bool:
        return self._next is None

    def receive(self, timeout: float | None) -> list[Batch] | None:
        """Events regrouped as they were received live: same receive time, consecutive seqs."""
        if self._next is None:
            return None
        batches: list[Batch] = []
        count = 0
        while self._next is not None and count < REPLAY_BATCH:
            seq, received_at, event = self._next
            if self._speed:
                if batches:
                    break
                self._pace(received_at)
            last = batches[-1] if batches else None
            if last is not None and last[1] == received_at and last[0] + len(last[2]) == seq:
                last[2].append(event)
            else:
                batches.append((seq, received_at, [event]))
            count += 1
            self._advance()
        return batches

    def _pace(self, received_at: float) -> None:
        if self._origin is None:
            self._origin = (received_at, time.monotonic())
            return
        due = self._origin[1] + (received_at - self._origin[0]) / self._speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing a replay for a human to watch is the point here

    def close(self, terminate: bool = False) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def process_for(self, pid: int) -> Any:
        return None
