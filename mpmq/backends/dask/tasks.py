"""What the parent knows of one submitted chunk (a Dask task), from the task's own events.

A task's events say which of its items is running, on which worker, and what it last logged;
its batches are numbered, so the parent knows when it has them all (``expected``) and when
the scheduler started the task over (the numbers count from 1 again).
"""

from __future__ import annotations

from collections import deque
from typing import Any

LAST_LOG_LINES = 5


def task_key(topic: str, task_id: int) -> str:
    """The Dask key a run's task is submitted under: its run's topic and its number."""
    return f"{topic}-{task_id}"


def task_id_of(topic: str, key: str) -> int | None:
    """The number of the run's task under ``key`` (``task_key``); None for another's key."""
    prefix, _, number = key.rpartition("-")
    return int(number) if prefix == topic and number.isdigit() else None


class Task:
    """One submitted chunk: what it holds and what its events said so far."""

    __slots__ = ("id", "offsets", "future", "received", "expected", "ended", "running", "began", "worker",
                 "pid", "last_logs", "last_batch", "runs")

    def __init__(self, task_id: int, offsets: list[int], future: Any) -> None:
        self.id = task_id
        self.offsets = offsets
        self.future = future
        self.received = 0  # batches received from its current run
        self.expected: int | None = None  # batches it sent, once its last one came
        self.ended = False  # its future ended (its slot is free)
        self.running: int | None = None  # the item started and not done
        self.began = 0.0
        self.worker: str | None = None
        self.pid = 0
        self.last_logs: deque[str] = deque(maxlen=LAST_LOG_LINES)
        self.last_batch = 0
        self.runs = 1
