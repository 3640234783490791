"""A recording as a source of events for the engine's own loop, with the live run's clock.

``MPmq.replay`` drives the very loop and handlers ``execute`` drives, reading events from the
recording instead of from workers. During each handler call the clock (freezegun) reads the
time at which the live parent received that event, in the time zone it had, so handlers that
compute rates, ETAs or timestamps reproduce their output. Freezing the clock is started once
and moved per event: starting is expensive, moving is cheap.
"""

from __future__ import annotations

import datetime
import math
import numbers
import operator
import os
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from .recording.reader import Recording, RunInfo, open_recording
from .state import RunState


class ReplayDiverged(RuntimeError):
    """The state folded from the recorded events differs from the recorded item rows."""

    def __init__(self, seq: int, offset: int, detail: str) -> None:
        super().__init__(f"replay diverged at seq {seq} (item {offset}): {detail}")
        self.seq = seq
        self.offset = offset


def unknown_offset(path: str, run: RunInfo, count: int, offsets: Collection[int]) -> str | None:
    """What is wrong with asking ``run`` for ``offsets``, if anything: an item it does not have."""
    wrong = [offset for offset in offsets if not 0 <= offset < count]
    if not wrong:
        return None
    return f"{path}: run {run.id} has no item {wrong[0]!r} (it has {count} items: 0 to {count - 1})"


def _whole(value: Any, what: str) -> int:
    try:
        return operator.index(value)  # ints, numpy's included; not floats or text
    except TypeError:
        raise TypeError(f"{what}, not {value!r}") from None


REAL_CLOCK_MODULES = ("asyncio", "tornado", "distributed")


class ReplayPlan:
    """One recorded run, read back as events for the engine, with its clock."""

    def __init__(self, recording: Recording, run: RunInfo, *, clock: bool, speed: float | None,
                 offsets: Collection[int] | None, until: int | None) -> None:
        self.recording = recording
        self.run = run
        self.items = recording.items(run.id)
        self.item_count = recording.item_count(run.id)
        if speed is not None and not (isinstance(speed, numbers.Real) and 0 < speed < math.inf):
            raise ValueError(f"speed must be a positive number (times the recorded pace), not {speed!r}")
        self.speed = speed
        self.until = _whole(until, "until must be an event sequence number (an int)") if until is not None else None
        self.offsets = None
        if offsets is not None:
            if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Iterable):
                raise TypeError(f"offsets must be a collection of item offsets, not {offsets!r}")
            self.offsets = {_whole(offset, "offsets must be item offsets (ints)") for offset in offsets}
            problem = unknown_offset(recording.path, run, self.item_count, self.offsets)
            if problem:
                raise ValueError(problem)
        self.incomplete = not run.complete  # its parent died, or its recording stopped early
        self.last_seq: dict[int, int] = {}
        self._use_clock = clock
        self._freezer: Any = None
        self._clock: Any = None
        self._clock_at: float | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, run: int | None = None, **options: Any) -> ReplayPlan:
        recording = open_recording(path)
        try:
            return cls(recording, recording.run(run), **options)
        except BaseException:
            recording.close()
            raise

    def events(self) -> Iterator[tuple]:
        return self.recording.events(self.run.id, offsets=self.offsets, until=self.until)

    def at(self, seq: int, received_at: float, event: Any) -> None:
        """Called by the engine before the handlers see ``event``."""
        self.last_seq[event.offset] = seq
        if self._use_clock and received_at != self._clock_at:
            # Events received together share their time: the clock moves once per batch
            # (issue 18: moving it cost more than the rest of a replay of 100,000 log lines).
            self._clock_at = received_at
            moment = datetime.datetime.fromtimestamp(received_at, datetime.timezone.utc).replace(tzinfo=None)
            if self._clock is None:
                self._start_clock(moment)
            else:
                self._clock.move_to(moment)

    def _start_clock(self, moment: datetime.datetime) -> None:
        from freezegun import freeze_time

        hours = datetime.timedelta(seconds=self.run.utc_offset or 0)
        # the pacing of --speed needs the real clock; so do event loops running in other
        # threads, such as a Dask client's (issue 17): a timer set on the frozen clock
        # (seconds since 1970, not since boot) would never fire once the clock is real again
        self._freezer = freeze_time(moment, tz_offset=hours, ignore=["mpmq.sources", *REAL_CLOCK_MODULES])
        self._clock = self._freezer.start()

    def close(self) -> None:
        if self._freezer is not None:
            self._freezer.stop()
            self._freezer = self._clock = None
        self.recording.close()

    def check(self, state: RunState) -> None:
        """Compare the replayed state with the recorded item rows (complete, unfiltered runs)."""
        if self.incomplete or self.offsets is not None or self.until is not None:
            return
        differences = []
        for record in self.items:
            item = state.items[record.offset] if record.offset < len(state.items) else None
            if item is None:
                differences.append((0, record.offset, "the item has no events"))
                continue
            replayed = {"status": item.status, "pid": item.pid, "error type": item.error and item.error.type}
            recorded = {"status": record.status, "pid": record.pid, "error type": record.error_type}
            for field, value in replayed.items():
                if value != recorded[field]:
                    seq = self.last_seq.get(record.offset, 0)
                    differences.append((seq, record.offset, f"{field} {value!r}, recorded {recorded[field]!r}"))
                    break
        if differences:
            raise ReplayDiverged(*min(differences))
