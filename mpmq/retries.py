"""What a failed item means for the run: run it again, or, under ``stop_on_error``, stop (issue 19).

Retries are the engine's on every backend. A backend reports each failure as an ``Error``
marked ``retryable`` or not (the item runner judges a raised exception by ``retry_on``; a
dead worker and a timeout are always retryable). ``FailurePolicy.review`` sees every event
the backend hands over, before it is numbered, recorded, reduced or handled:

    Started  -> stamped with the item's attempt number
    Error    -> retryable with attempts left: marked ``retrying``, the ``done`` that follows
                is dropped (the item is not finished), and the item is due again after
                ``retry_delay`` (``backend.run_again``); else the item's final failure, and
                under ``stop_on_error`` the first one stops the run
                (``backend.cancel_not_started``; a backend cancels an item handed back to it
                after that, so items waiting for a retry are cancelled too)

So a retried item's story is ``started(1) log* error(retrying) started(2) ... done``, whoever
reads it: the reducer, the recording, the handlers, a replay. Retries that are due later are
waited for in the engine's one wait (``bound``), never by sleeping beside it.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import msgspec

from .events import Done, Error, Ran, Started


class FailurePolicy:
    """One live run's retries and stop: attempts per item, retries due, whether it stopped."""

    def __init__(self, backend: Any, retries: int, retry_delay: float, stop_on_error: bool) -> None:
        self.backend = backend  # has run_again(offset, attempt) and cancel_not_started()
        self.retries = retries
        self.retry_delay = retry_delay
        self.stop_on_error = stop_on_error
        self.stopped = False
        self._attempt: dict[int, int] = {}  # offset -> its current attempt, for items run again
        self._unfinished_attempt: set[int] = set()  # offsets whose next ``done`` ends a retried attempt
        self._due: list[tuple[float, int, int]] = []  # heap of (monotonic due time, offset, attempt)

    @property
    def waiting(self) -> bool:
        """Retries are due later: the run is not over even if the backend has nothing left."""
        return bool(self._due)

    def review(self, events: list) -> list:
        """The events as the run tells them (see the module docstring); may run or stop items."""
        attempt = self._attempt
        if not attempt and not any(type(event) is Error for event in events):
            return events  # the common case: nothing failed, nothing was run again
        reviewed: list = []
        for event in events:
            kind = type(event)
            if kind is Started and event.offset in attempt:
                event = msgspec.structs.replace(event, attempt=attempt[event.offset])
            elif kind is Ran and attempt and any(e.offset in attempt for e in event.expanded()):
                reviewed += self.review(event.expanded())  # a retried item's start must say its attempt
                continue
            elif kind is Error and not event.retrying:
                event = self._failed(event)
            elif kind is Done and event.offset in self._unfinished_attempt:
                self._unfinished_attempt.discard(event.offset)
                continue
            reviewed.append(event)
        return reviewed

    def _failed(self, error: Error) -> Error:
        offset = error.offset
        attempt = self._attempt.get(offset, 1)
        if error.retryable and attempt <= self.retries and not self.stopped:
            self._attempt[offset] = attempt + 1
            self._unfinished_attempt.add(offset)
            heapq.heappush(self._due, (time.monotonic() + self.retry_delay, offset, attempt + 1))
            if self.retry_delay <= 0:
                self.start_due()
            return msgspec.structs.replace(error, retrying=True)
        if self.stop_on_error and not self.stopped:
            self.stopped = True
            self.backend.cancel_not_started()
            # Items waiting for a retry have not started either: handed back after the stop,
            # they are cancelled with the rest.
            while self._due:
                _, waiting, next_attempt = heapq.heappop(self._due)
                self.backend.run_again(waiting, next_attempt)
        return error

    def start_due(self) -> None:
        """Hand the backend every retry whose delay is over."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, offset, attempt = heapq.heappop(self._due)
            self.backend.run_again(offset, attempt)

    def bound(self, timeout: float | None) -> float | None:
        """``timeout`` shortened to the next retry's due time (after starting those due now)."""
        self.start_due()
        if not self._due:
            return timeout
        due = max(0.0, self._due[0][0] - time.monotonic())
        return due if timeout is None else min(timeout, due)

    def wait_for_due(self, timeout: float | None) -> None:
        """The backend has nothing left to say until a retry starts: wait for the first to be due
        (or ``timeout``), then start it. The clock is the only thing left to wait on."""
        wait = self.bound(timeout)
        if wait:
            time.sleep(wait)
        self.start_due()
