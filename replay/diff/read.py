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
    items = []
    for item in state.items:
        error = item.error
        items.append(ItemFacts(
            offset=item.offset, input=inputs.get(item.offset), outcome=item.status, result=item.result,
            error_type=error.type if error else None, error_message=error.message if error else None,
            duration=item.duration, logs=fingerprints.get(item.offset, ()),
        ))  # fmt: skip
    return RunFacts(recording.path, header, items)


def diff_recordings(a: Recording, header_a: RunInfo, b: Recording, header_b: RunInfo) -> Diff:
    """Compare run ``header_a`` of ``a`` with run ``header_b`` of ``b``, log lines filled in."""
    diff = compare(read_run(a, header_a), read_run(b, header_b))
    wanted = {change.offset: change.log.line for change in diff.items if change.log is not None}
    if not wanted:
        return diff
    lines_a = log_lines(a, header_a, wanted)
    lines_b = log_lines(b, header_b, wanted)
    items = [
        dataclasses.replace(change, log=dataclasses.replace(
            change.log, a=lines_a.get(change.offset), b=lines_b.get(change.offset)))
        if change.log is not None else change
        for change in diff.items
    ]  # fmt: skip
    return dataclasses.replace(diff, items=items)


def log_lines(recording: Recording, header: RunInfo, wanted: Mapping[int, int]) -> dict[int, Log]:
    """For each ``offset: line`` wanted, that item's line-th log line (1-based), if it has one."""
    found: dict[int, Log] = {}
    seen: dict[int, int] = {}
    for _, _, event in recording.events(header.id, offsets=list(wanted)):
        if type(event) is not Log:
            continue
        count = seen[event.offset] = seen.get(event.offset, 0) + 1
        if count == wanted[event.offset]:
            found[event.offset] = event
            if len(found) == len(wanted):
                break
    return found
