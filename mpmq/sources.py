"""Where a run's events come from: live workers, or a recording.

Both give the engine the same thing: batches of ``(seq, received_at, event)``, in the order
the parent received them, and ``None`` once nothing more will come. The engine's loop, the
reducer, the handlers and the 0.7.0 pull seams cannot tell them apart, which is what makes
replay the same code path as a live run. A future source (workers on a Dask cluster) only has
to implement this protocol.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from .pool import WorkerPool

Stamped = tuple  # (seq: int, received_at: float, event: AnyEvent)
REPLAY_BATCH = 256


class EventSource(Protocol):
    def start(self) -> None: ...

    def receive(self, timeout: float | None) -> list[Stamped] | None:
        """The next events, waiting at most ``timeout`` s (``None``: until any); ``None`` at the end."""

    def close(self, terminate: bool = False) -> None: ...

    def process_for(self, pid: int) -> Any:
        """The process object running as ``pid``, where there is one."""


class LiveSource:
    """Events from worker processes, stamped as they arrive."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.seq = 0

    def start(self) -> None:
        self.pool.start()

    def receive(self, timeout: float | None) -> list[Stamped] | None:
        if self.pool.exhausted:
            return None
        events = self.pool.receive(timeout)
        if not events:
            return [] if not self.pool.exhausted else None
        received_at = time.time()
        first = self.seq + 1
        self.seq += len(events)
        return [(seq, received_at, event) for seq, event in zip(range(first, self.seq + 1), events)]

    def close(self, terminate: bool = False) -> None:
        self.pool.close(terminate=terminate)

    def process_for(self, pid: int) -> Any:
        return self.pool.process_for(pid)


class RecordedSource:
    """Events read back from a recording, optionally paced at ``speed`` times the original."""

    def __init__(self, events: Iterable[Stamped], speed: float | None = None) -> None:
        self._events: Iterator[Stamped] = iter(events)
        self._speed = speed
        self._origin: tuple[float, float] | None = None  # (first received_at, wall clock then)
        self._done = False

    def start(self) -> None:
        pass

    def receive(self, timeout: float | None) -> list[Stamped] | None:
        if self._done:
            return None
        batch = []
        for stamped in self._events:
            batch.append(stamped)
            if self._speed or len(batch) >= REPLAY_BATCH:
                break
        if not batch:
            self._done = True
            return None
        if self._speed:
            self._pace(batch[0][1])
        return batch

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
