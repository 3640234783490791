"""Resuming a run from its recording (issue 19, point 2): ``execute(record=path, resume=True)``.

    run.db --latest run of the same function and shared_data--> its events, folded
      items that succeeded there, with the same input and a result JSON (or an allowed
      pickle) rebuilds exactly --> re-driven from the recording, never run again
      every other item --> the backend, which is given only their offsets

The new run is recorded in the same file like any other, the re-driven items' events
included, with ``resumed_from`` (the run it resumed) and ``resumed_items`` in its options, so
it replays, reports and resumes in turn. Items are matched by offset and by a fingerprint of
their input as recorded, after redaction: a secret never enters the file, so it cannot enter
the match either (an item whose only change is a redacted value counts as unchanged).

Nothing is unpickled unless the caller recorded with ``record_pickle=True``: then a result
that only a pickle rebuilds is reused too; otherwise its item runs again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from .payload import for_rest
from .recording.reader import Recording, RunInfo, open_recording
from .recording.redact import patterns_for, redact
from .recording.rows import checked_json_text, shared_columns
from .recording.session import qualified
from .sources import Batch, EventSource
from .state import SUCCEEDED, RunState, reduce

_decode = msgspec.json.decode


class Resumption(msgspec.Struct, frozen=True):
    """What a resumed run takes from the run it resumes."""

    run_id: int  # the run resumed
    reused: list[int]  # offsets re-driven from the recording, in order
    events: list  # their recorded events, in recorded order
    live: list[int]  # offsets to run on the backend


def fingerprint(value: Any, patterns: frozenset[str]) -> str:
    """A digest of an item's input as a recording keeps it: redacted, JSON text or else repr."""
    rest = for_rest(redact(value, patterns))
    text = checked_json_text(rest.json)
    return _digest("json" if text is not None else "repr", text if text is not None else rest.repr or "")


def recorded_fingerprint(record_input: Any) -> str:
    """``fingerprint`` of an input read back from a recording (``ItemRecord.input``)."""
    if record_input.json is not msgspec.UNSET:
        text = checked_json_text(record_input.json)
        if text is not None:
            return _digest("json", text)
    return _digest("repr", record_input.repr or "")


def _digest(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}:{text}".encode("utf-8", "backslashreplace")).hexdigest()


def plan_for(options: dict[str, Any], function: Any, items: Sequence[Any], shared: Mapping) -> Resumption | None:
    """``plan`` for an engine's ``execute`` options (``path``, ``redact``, ``keep_pickle``); a
    match is noted in them as ``resumed``, for the recorder to write into the new run's options."""
    resumption = plan(options["path"], qualified(function), items, shared, options.get("redact", True),
                      bool(options.get("keep_pickle")))  # fmt: skip
    options["resumed"] = resumption
    return resumption


def plan(path: str | os.PathLike, function_name: str, items: Sequence[Any], shared: Mapping,
         redact_option: Any, keep_pickle: bool) -> Resumption | None:
    """What to take from ``path``'s latest matching run; ``None`` when no run matches (or no file)."""
    name = os.fsdecode(os.fspath(path))
    if not os.path.exists(name):
        return None
    patterns = patterns_for(redact_option)
    with open_recording(name) as recording:
        run = _latest_match(recording, function_name, shared, patterns)
        if run is None:
            return None
        return _take(recording, run, items, patterns, keep_pickle)


def _latest_match(recording: Recording, function_name: str, shared: Mapping,
                  patterns: frozenset[str]) -> RunInfo | None:
    shared_json, repr_keys, _ = shared_columns(redact(shared, patterns), False)
    wanted = (_decode(shared_json) if shared_json is not None else None, _decode(repr_keys) if repr_keys else [])
    for run in reversed(recording.runs()):
        if run.function == function_name and (run.shared_data, run.shared_data_repr_keys) == wanted:
            return run
    return None


def _take(recording: Recording, run: RunInfo, items: Sequence[Any], patterns: frozenset[str],
          keep_pickle: bool) -> Resumption:
    records = recording.items(run.id)
    same_input = {
        record.offset for record in records
        if record.offset < len(items)
        and recorded_fingerprint(record.input) == fingerprint(items[record.offset], patterns)
    }  # fmt: skip
    # The events say how each item ended, even in a run whose parent died before writing its
    # item rows (SIGKILL, a power cut): fold them, as a replay would.
    state = RunState.new(len(records))
    for _, _, event in recording.events(run.id):
        reduce(state, event)
    reused = [
        item.offset for item in state.items
        if item.offset in same_input and item.status == SUCCEEDED and _rebuildable(item.result, keep_pickle)
    ]  # fmt: skip
    chosen = set(reused)
    events = [event for _, _, event in recording.events(run.id, offsets=chosen)] if chosen else []
    live = [offset for offset in range(len(items)) if offset not in chosen]
    return Resumption(run.id, reused, events, live)


def _rebuildable(result: Any, keep_pickle: bool) -> bool:
    """The recorded result comes back exactly equal and of the same type as the live one."""
    if result is None:
        return True  # the function returned None: its done says so (no result event is needed)
    if result.json is not msgspec.UNSET:
        return True
    return keep_pickle and result.pickle is not None  # the caller opted into pickles in this file


class ResumedSource:
    """The resumed items' recorded events first, then the backend's live ones.

    The live source starts with this one, so workers start while the recorded events are
    handed out; sequence numbers go on from the recorded ones, so the new run's recording
    numbers every event once.
    """

    RECORDED_BATCH = 256

    def __init__(self, recorded: list, live: EventSource) -> None:
        self._recorded: Iterator[Any] = iter(recorded)
        self._left = len(recorded)
        self.live = live
        self.seq = 0

    def start(self) -> None:
        self.live.start()

    @property
    def exhausted(self) -> bool:
        return self._left == 0 and self.live.exhausted

    @property
    def compact(self) -> bool:
        return getattr(self.live, "compact", False)

    @compact.setter
    def compact(self, value: bool) -> None:
        if hasattr(self.live, "compact"):
            self.live.compact = value

    def receive(self, timeout: float | None) -> list[Batch] | None:
        if self._left:
            events = [event for _, event in zip(range(self.RECORDED_BATCH), self._recorded)]
            self._left -= len(events)
            first = self.seq + 1
            self.seq += len(events)
            if not self._left:
                self.live.seq = self.seq  # the live events are numbered after these
            return [(first, time.time(), events)]
        return self.live.receive(timeout)

    def close(self, terminate: bool = False) -> None:
        self.live.close(terminate=terminate)

    def process_for(self, pid: int) -> Any:
        return self.live.process_for(pid)


