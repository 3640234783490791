"""Two recorded runs side by side, item by item: the pure half of ``mpmq-replay diff``.

Issue 19, point 3: "what changed since last night's good run". Data in (two ``RunFacts``,
read by ``read.py``), a ``Diff`` out; no I/O, no printing (``render.py`` prints).

Items are matched by offset, and their recorded inputs are compared too: an input that changed
at an offset is a difference of its own. A re-run of some items of a run (``mpmq-replay rerun
--record``) keeps the offsets they had there (``parent_offsets``): its items are matched by
those, and only they are compared. What makes two runs differ (``Diff.same`` is False,
exit status 1): an item only one run has, an input, an outcome (succeeded, failed, running,
pending), a result (both succeeded), or an error (both failed). What is only reported: the
first log line that differs, the attempts an item took (``retries=``), the durations that
changed most, the shared data.

Values are compared as recorded, never unpickled: JSON when both sides hold it (strictly:
``1``, ``1.0`` and ``true`` differ; the first differing path is named, ``$.totals[2].count``),
else their ``repr`` text. A redacted value reads ``[redacted]`` on both sides, so a change
to a secret is not seen.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mpmq.events import Log, Payload
from mpmq.recording import RunInfo
from mpmq.state import FAILED, SUCCEEDED

SLOWEST_CHANGES = 5  # the items whose duration changed most

# mpmq's own failures name pids and timings in their messages ("worker (pid 4242) exited with
# SIGKILL"), which differ from run to run: for these the type alone is the outcome.
VOLATILE_MESSAGES = frozenset({"mpmq.errors.WorkerDied", "mpmq.errors.ItemTimeout", "mpmq.errors.ItemCancelled"})

_ABSENT = object()
_encode = msgspec.json.encode


@dataclass(frozen=True)
class ItemFacts:
    """What one run recorded about one item; ``logs`` fingerprints each log line, in order."""

    offset: int
    input: Payload | None
    outcome: str  # mpmq.state's status: pending, running, succeeded, failed
    result: Payload | None = None
    error_type: str | None = None
    error_message: str | None = None
    duration: float | None = None
    logs: Sequence[int] = ()
    attempts: int = 1  # 1 + the attempts that failed and were run again (retries=)


@dataclass(frozen=True)
class RunFacts:
    """One side of a diff: where the run is, its header, and its items in offset order."""

    path: str
    header: RunInfo
    items: Sequence[ItemFacts]
    local: dict[int, int] | None = None  # a re-run's: offset in the run it re-ran -> its own

    @property
    def rerun(self) -> bool:
        """Its items are some of another run's, under the offsets they had there."""
        return self.local is not None

    def counts(self) -> dict[str, int]:
        counts = {"succeeded": 0, "failed": 0, "running": 0, "pending": 0}
        for item in self.items:
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
        return counts


@dataclass(frozen=True)
class ValueChange:
    """Where two recorded values first differ: a JSON path, or ``$`` when compared by repr.

    ``a`` and ``b`` are the values at ``path`` (JSON values, or repr text when ``by`` is
    ``repr``); ``missing`` names the side that has nothing at ``path`` (its value is None).
    """

    path: str
    by: str  # "json" or "repr"
    a: Any
    b: Any
    missing: str | None = None  # "a" or "b"


@dataclass(frozen=True)
class LogChange:
    """An item's first log line that differs (1-based), with each side's line once read."""

    line: int
    a_lines: int
    b_lines: int
    a: Log | None = None  # None: that side has no such line (or it was not read yet)
    b: Log | None = None


@dataclass(frozen=True)
class ItemChange:
    """One item whose recordings differ in some way; ``a`` or ``b`` is None when a run lacks it."""

    offset: int
    a: ItemFacts | None
    b: ItemFacts | None
    input: ValueChange | None = None
    result: ValueChange | None = None
    error_changed: bool = False
    log: LogChange | None = None

    @property
    def outcome_changed(self) -> bool:
        return self.a is not None and self.b is not None and self.a.outcome != self.b.outcome

    @property
    def attempts_changed(self) -> bool:
        """Reported, not a difference: the item needed more or fewer attempts to its outcome."""
        return self.a is not None and self.b is not None and self.a.attempts != self.b.attempts

    @property
    def differs(self) -> bool:
        """A difference of outcome or result (the log and the duration do not count)."""
        return (self.a is None or self.b is None or self.outcome_changed or self.input is not None
                or self.result is not None or self.error_changed)  # fmt: skip


@dataclass(frozen=True)
class DurationChange:
    offset: int
    a: float
    b: float

    @property
    def change(self) -> float:
        return self.b - self.a


@dataclass(frozen=True)
class Diff:
    """What changed from run ``a`` to run ``b``: the items that differ, in offset order."""

    a: RunFacts
    b: RunFacts
    items: list[ItemChange]
    durations: list[DurationChange] = field(default_factory=list)
    shared_data: ValueChange | None = None
    compared: int = 0  # items both runs have (of those compared: a re-run's, if one is)

    @property
    def same(self) -> bool:
        """The same outcomes and results (and inputs) for every item: exit status 0."""
        return not any(change.differs for change in self.items)

    def counts(self) -> dict[str, int]:
        items = self.items
        return {
            "compared": self.compared,
            "outcomes": sum(change.outcome_changed for change in items),
            "results": sum(change.result is not None for change in items),
            "errors": sum(change.error_changed for change in items),
            "inputs": sum(change.input is not None for change in items),
            "only_in_a": sum(change.b is None for change in items),
            "only_in_b": sum(change.a is None for change in items),
            "logs": sum(change.log is not None for change in items),
            "attempts": sum(change.attempts_changed for change in items),
        }


def compare(a: RunFacts, b: RunFacts) -> Diff:
    """Every item of two runs, matched by offset (a re-run's items only, if one is)."""
    changes = []
    durations = []
    by_a = {item.offset: item for item in a.items}
    by_b = {item.offset: item for item in b.items}
    offsets = set(by_a) | set(by_b)
    if a.rerun:  # what it did not re-run is not a difference
        offsets &= set(by_a)
    if b.rerun:
        offsets &= set(by_b)
    compared = 0
    for offset in sorted(offsets):
        item_a, item_b = by_a.get(offset), by_b.get(offset)
        if item_a is None or item_b is None:
            changes.append(ItemChange(offset, item_a, item_b))
            continue
        compared += 1
        change = _compare_item(item_a, item_b)
        if change is not None:
            changes.append(change)
        if item_a.duration is not None and item_b.duration is not None and item_a.duration != item_b.duration:
            durations.append(DurationChange(offset, item_a.duration, item_b.duration))
    largest = heapq.nsmallest(SLOWEST_CHANGES, durations, key=lambda d: (-abs(d.change), d.offset))
    shared = json_difference(a.header.shared_data, b.header.shared_data)
    return Diff(a, b, changes, largest, shared, compared)


def _compare_item(a: ItemFacts, b: ItemFacts) -> ItemChange | None:
    input_change = payload_difference(a.input, b.input)
    result_change = None
    if a.outcome == b.outcome == SUCCEEDED:
        result_change = payload_difference(a.result, b.result)
    error_changed = a.outcome == b.outcome == FAILED and _errors_differ(a, b)
    log_change = _log_difference(a.logs, b.logs)
    if not (a.outcome != b.outcome or input_change or result_change or error_changed or log_change
            or a.attempts != b.attempts):
        return None
    return ItemChange(a.offset, a, b, input_change, result_change, error_changed, log_change)


def _errors_differ(a: ItemFacts, b: ItemFacts) -> bool:
    if a.error_type != b.error_type:
        return True
    return a.error_type not in VOLATILE_MESSAGES and a.error_message != b.error_message


def _log_difference(a: Sequence[int], b: Sequence[int]) -> LogChange | None:
    for index, (line_a, line_b) in enumerate(zip(a, b)):
        if line_a != line_b:
            return LogChange(index + 1, len(a), len(b))
    if len(a) != len(b):
        return LogChange(min(len(a), len(b)) + 1, len(a), len(b))
    return None


def payload_difference(a: Payload | None, b: Payload | None) -> ValueChange | None:
    """Where two recorded values differ: by JSON when both hold it, else by their repr."""
    json_a = a.json if a is not None else msgspec.UNSET
    json_b = b.json if b is not None else msgspec.UNSET
    if json_a is not msgspec.UNSET and json_b is not msgspec.UNSET:
        return json_difference(json_a, json_b)
    # One side JSON and the other not (a tuple now, a list then), or neither: their repr.
    repr_a = a.repr if a is not None else None
    repr_b = b.repr if b is not None else None
    if repr_a == repr_b:
        return None
    return ValueChange("$", "repr", repr_a, repr_b)


def json_difference(a: Any, b: Any) -> ValueChange | None:
    """The first path, depth first in ``a``'s key order, where two JSON values differ.

    Strict: values of different types differ even when Python calls them equal (``1``,
    ``1.0``, ``True``). Iterative, so a deeply nested crafted value cannot overflow the stack.
    """
    if _same_json(a, b):  # most values are unchanged: one C call each instead of a walk
        return None
    stack: list[tuple[str, Any, Any]] = [("$", a, b)]
    while stack:
        path, x, y = stack.pop()
        if x is _ABSENT or y is _ABSENT:
            missing = "a" if x is _ABSENT else "b"
            return ValueChange(path, "json", None if x is _ABSENT else x, None if y is _ABSENT else y, missing)
        if type(x) is not type(y):
            return ValueChange(path, "json", x, y)
        if type(x) is dict:
            children = [(_key_path(path, key), value, y.get(key, _ABSENT)) for key, value in x.items()]
            children += [(_key_path(path, key), _ABSENT, value) for key, value in y.items() if key not in x]
            stack.extend(reversed(children))
        elif type(x) is list:
            stack.extend(
                (f"{path}[{index}]", x[index] if index < len(x) else _ABSENT, y[index] if index < len(y) else _ABSENT)
                for index in reversed(range(max(len(x), len(y))))
            )
        elif x != y:
            return ValueChange(path, "json", x, y)
    return None


def _same_json(a: Any, b: Any) -> bool:
    """Equal JSON text: strictly the same value (``1``, ``1.0`` and ``true`` encode apart).

    Not equal text can still be the same value (keys in another order): the walk decides.
    """
    try:
        return _encode(a) == _encode(b)
    except (TypeError, RecursionError, msgspec.EncodeError):  # too deep to encode: the walk copes
        return False


def _key_path(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{msgspec.json.encode(key).decode()}]"
