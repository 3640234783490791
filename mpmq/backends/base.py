"""What a backend owes the engine: the one small interface every backend implements.

The engine (through ``sources.LiveSource``) drives a backend with these calls and nothing
else, so it imports neither ``multiprocessing`` internals nor ``distributed``. Implemented
by ``local/pool.py``'s ``WorkerPool`` and ``dask/backend.py``'s ``DaskBackend``; a Ray
backend would be a third.

A backend runs its items at most N at a time and turns everything that happens into events
in per-item order (started -> log* -> result | error -> done, every event of an item before
its done); reports a worker's death as the failure of the item it was running and runs the
items it held but had not started elsewhere; stops one item on request (``item_timeout``)
and everything on ``close(terminate=True)`` (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    compact: bool
    """Whether ``events.Ran`` may be handed out as is; a backend that never makes one ignores it."""

    def start(self) -> None:
        """Start running items (raises, before anything runs, if that cannot be done)."""

    def receive(self, timeout: float | None) -> list:
        """Events that arrived within ``timeout`` seconds (``None``: until something happens).

        The backend's one blocking wait. Events come in per-item order, an item's all
        before its ``Done``."""

    @property
    def exhausted(self) -> bool:
        """Nothing more will come: every item ended, or the backend is closed."""

    def close(self, terminate: bool = False) -> None:
        """Stop and let go of every worker; ``terminate``: do not wait for running items."""

    def process_for(self, pid: int) -> Any:
        """The process object running as ``pid``, where the backend has one (else None)."""

    def run_again(self, offset: int, attempt: int) -> None:
        """Queue an item whose attempt failed to run again, as attempt ``attempt`` (retries,
        issue 19: the engine decides); after ``cancel_not_started``, cancel it instead."""

    def cancel_not_started(self) -> None:
        """End every item not started with ``ItemCancelled`` (``stop_on_error``, decided by
        the engine); the events come with the next ``receive``."""
