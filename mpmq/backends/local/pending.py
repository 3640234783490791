"""The offsets a pool has yet to hand out, in order, without an int object per offset.

A run of a million items would hold a million ints in a ``deque(range(n))`` (36 MB of the
parent's memory, issue 18); most of them are a range that is only ever taken from the front.
So the queue is what was put back in front (a worker died holding them), the rest of that
range, and whatever was added at the back, in that order: a deque's face over a range.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator


class PendingOffsets:
    """A deque of offsets whose middle is a range (``popleft``, ``take``, ``extendleft``...)."""

    __slots__ = ("_front", "_next", "_stop", "_back")

    def __init__(self, offsets: Iterable[int] = ()) -> None:
        self._front: deque[int] = deque()
        self._back: deque[int] = deque()
        if isinstance(offsets, range) and offsets.step == 1:
            self._next, self._stop = offsets.start, max(offsets.start, offsets.stop)
        else:
            self._next = self._stop = 0
            self._back.extend(offsets)

    def __len__(self) -> int:
        return len(self._front) + (self._stop - self._next) + len(self._back)

    def __bool__(self) -> bool:
        return bool(self._front) or self._next < self._stop or bool(self._back)

    def __iter__(self) -> Iterator[int]:
        yield from self._front
        yield from range(self._next, self._stop)
        yield from self._back

    def __getitem__(self, index: int) -> int:
        if index != 0:
            return list(self)[index]
        if self._front:
            return self._front[0]
        if self._next < self._stop:
            return self._next
        return self._back[0]  # IndexError when empty, as a deque's

    def popleft(self) -> int:
        if self._front:
            return self._front.popleft()
        if self._next < self._stop:
            self._next += 1
            return self._next - 1
        return self._back.popleft()

    def take(self, count: int) -> list[int]:
        """The first ``count`` offsets (fewer if there are not as many), removed."""
        taken: list[int] = []
        while self._front and len(taken) < count:
            taken.append(self._front.popleft())
        if len(taken) < count and self._next < self._stop:
            end = min(self._stop, self._next + count - len(taken))
            taken += range(self._next, end)
            self._next = end
        while self._back and len(taken) < count:
            taken.append(self._back.popleft())
        return taken

    def take_range(self, count: int, listed: int | None = None) -> range | list[int]:
        """``take``, as a ``range`` when the offsets are the next ones of the middle range;
        otherwise at most ``listed`` of them (a list travels as every one of its offsets)."""
        if not self._front and self._next < self._stop and (self._stop - self._next >= count or not self._back):
            end = min(self._stop, self._next + count)
            taken = range(self._next, end)
            self._next = end
            return taken
        return self.take(count if listed is None else min(count, listed))

    def appendleft(self, offset: int) -> None:
        self._front.appendleft(offset)

    def extendleft(self, offsets: Iterable[int]) -> None:
        """Like ``deque.extendleft``: each offset goes in front of the one before it."""
        self._front.extendleft(offsets)

    def append(self, offset: int) -> None:
        self._back.append(offset)

    def extend(self, offsets: Iterable[int]) -> None:
        self._back.extend(offsets)

    def clear(self) -> None:
        self._front.clear()
        self._back.clear()
        self._next = self._stop

    def __repr__(self) -> str:
        return f"PendingOffsets({list(self)!r})"
