"""How many items a worker is handed at once, on any backend: guided self-scheduling.

A chunk is a share of what is left (so workers finish together), but never less than a
least amount of work once item times are known (each chunk costs a message, a batch and a
wake-up on both sides: issue 18), and never more than a limit. Both backends size their
chunks (local: a worker's next chunk; Dask: a task) with the same rule and their own numbers.
"""

from __future__ import annotations


class ChunkSizer:
    """Sizes chunks from the items finished so far (``timed``)."""

    def __init__(self, workers: int, least_seconds: float, limit: int, quick_limit: int | None = None) -> None:
        self.workers = workers
        self.least_seconds = least_seconds  # the least work a chunk holds once item times are known
        self.limit = limit  # the most items of a guided share
        self.quick_limit = limit if quick_limit is None else quick_limit  # the most to make least_seconds
        self._seconds = 0.0  # time the finished items took (on the workers' clocks)
        self._items = 0

    def timed(self, items: int, seconds: float) -> None:
        """``items`` more finished, taking ``seconds`` in all."""
        self._items += items
        self._seconds += seconds

    def size(self, pending: int) -> int:
        """A share of ``pending``; once item times are known, at least ``least_seconds`` of
        work, but never more than a worker's fair share of what is left (one worker must not
        take the whole end of the run while the others idle), unless that share is under a
        fifth of ``least_seconds``: chunks that small cost more in messages than they save in
        balance (10,000 trivial items halved down to chunks of one: +10% recorded)."""
        guided = min(self.limit, pending // (2 * self.workers))
        if self._items:
            quick = int(self.least_seconds * self._items / max(self._seconds, 1e-9))
            guided = max(guided, min(self.quick_limit, quick, max(pending // self.workers, quick // 5)))
        return max(1, guided)

    def quick(self, size: int, seconds: float) -> bool:
        """``size`` items are known to take at most ``seconds``."""
        return bool(self._items) and size * self._seconds <= seconds * self._items
