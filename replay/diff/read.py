"""Read two recorded runs for ``compare``: the I/O half of ``mpmq-replay diff``.

Only through the reader API (``mpmq.recording``): the state is folded from the recorded
events with the engine's own reducer (``replay.loader.fold``), so a run whose parent died is
compared as what it recorded, and the inputs come from the item rows. Nothing is unpickled.

A run may hold millions of log lines, so a side keeps one fingerprint per line (a hash of
its level, logger and message), not the lines; the few lines a diff shows are read again
afterwards, from those items' events only.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Mapping

from mpmq.events import AnyEvent, Log
from mpmq.recording import Recording, RunInfo

from ..loader import fold
from .compare import Diff, ItemFacts, RunFacts, compare


def read_run(recording: Recording, header: RunInfo) -> RunFacts:
    """One side of a diff: every item's outcome, result, error, duration, input and log lines."""
    fingerprints: dict[int, array] = {}

    def watch(seq: int, received_at: float, event: AnyEvent) -> None:
        if type(event) is Log:
            lines = fingerprints.get(event.offset)
            if lines is None:
                lines = fingerprints[event.offset] = array("q")
            lines.append(hash((event.level, event.logger, event.message)))

    state = fold(recording, header, watch)
    inputs = {row.offset: row.input for row in recording.items(header.id)}
    parent = parent_offsets(header, len(state.items))
    items = []
    for item in state.items:
        error = item.error
        items.append(ItemFacts(
            offset=item.offset if parent is None else parent[item.offset], input=inputs.get(item.offset),
            outcome=item.status, result=item.result,
            error_type=error.type if error else None, error_message=error.message if error else None,
            duration=item.duration, logs=fingerprints.get(item.offset, ()), attempts=1 + len(item.attempts),
        ))  # fmt: skip
    if parent is None:
        return RunFacts(recording.path, header, items)
    local = {offset: own for own, offset in enumerate(parent)}
    return RunFacts(recording.path, header, sorted(items, key=lambda item: item.offset), local)


def parent_offsets(header: RunInfo, count: int) -> list[int] | None:
    """The offsets a re-run's ``count`` items had in the run it re-ran (``parent_offsets`` in
    its options, as ranges), one per item; None for any other run, and for ranges that do not
    give each item one offset (a crafted file: never expanded past ``count``)."""
    ranges = header.options.get("parent_offsets") if header.parent_run is not None else None
    if not isinstance(ranges, list):
        return None
    offsets: list[int] = []
    for pair in ranges:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(end) is int for end in pair)):
            return None
        first, last = pair
        if first < 0 or last < first or len(offsets) + last - first + 1 > count:
            return None
        offsets.extend(range(first, last + 1))
    return offsets if len(offsets) == count and len(set(offsets)) == count else None


def diff_recordings(a: Recording, header_a: RunInfo, b: Recording, header_b: RunInfo) -> Diff:
    """Compare run ``header_a`` of ``a`` with run ``header_b`` of ``b``, log lines filled in."""
    diff = compare(read_run(a, header_a), read_run(b, header_b))
    wanted = {change.offset: change.log.line for change in diff.items if change.log is not None}
    if not wanted:
        return diff
    lines_a = log_lines(a, header_a, wanted, diff.a.local)
    lines_b = log_lines(b, header_b, wanted, diff.b.local)
    items = [
        dataclasses.replace(change, log=dataclasses.replace(
            change.log, a=lines_a.get(change.offset), b=lines_b.get(change.offset)))
        if change.log is not None else change
        for change in diff.items
    ]  # fmt: skip
    return dataclasses.replace(diff, items=items)


def log_lines(recording: Recording, header: RunInfo, wanted: Mapping[int, int],
              local: Mapping[int, int] | None = None) -> dict[int, Log]:
    """For each ``offset: line`` wanted, that item's line-th log line (1-based), if it has one;
    a re-run's items are read under their own offsets (``local``), named by the wanted ones."""
    named = {offset if local is None else local[offset]: offset for offset in wanted
             if local is None or offset in local}
    found: dict[int, Log] = {}
    seen: dict[int, int] = {}
    for _, _, event in recording.events(header.id, offsets=list(named)):
        if type(event) is not Log:
            continue
        offset = named[event.offset]
        count = seen[offset] = seen.get(offset, 0) + 1
        if count == wanted[offset]:
            found[offset] = event
            if len(found) == len(named):
                break
    return found
