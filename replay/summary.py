"""What happened in a run, for a person: status, counts, wall time, slowest items, failures.

Everything is read from the state folded from the recorded events (``mpmq.state.reduce``), not
from the item rows, because a run whose parent died (status ``running``) never wrote its item
rows: its events are all there is, and the summary says it is incomplete.
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from mpmq.events import Log
from mpmq.recording import Recording, RunInfo
from mpmq.state import FAILED, FOLDS, RUNNING, SUCCEEDED, RunState

from .logs import format_log

SLOWEST = 5
BASE_HANDLERS = ("mpmq:MPmq", "mpmq.compat:MPmq", "mpmq.engine:Engine")


@dataclass
class Facts:
    """What the summary needs besides the state: where the run ends and each item's last logs."""

    path: str
    header: RunInfo
    state: RunState
    last_logs: Mapping[int, Sequence[Log]]
    last_seq: int | None = None
    offsets: Sequence[int] | None = None  # a replay limited to these items
    until: int | None = None  # a replay stopped at this seq


def facts_of(recording: Recording, header: RunInfo, last_lines: int) -> Facts:
    """A run's facts from its recorded events: folded a batch at a time, then the last
    ``last_lines`` log lines of each failed item, read again for those items alone.

    Issue 18: a million events summarised in under a second; only failures show log lines.
    """
    state = RunState.new(recording.item_count(header.id))
    folds = FOLDS  # what reduce(state, event) does, a call shorter
    last_seq = None
    for first, _, events in recording.batches(header.id):
        for event in events:
            folds[type(event)](state, event)
        last_seq = first + len(events) - 1
    last_logs: dict[int, deque] = defaultdict(lambda: deque(maxlen=last_lines))
    failed = [item.offset for item in state.items if item.status == FAILED]
    if failed:
        for _, _, events in recording.batches(header.id, offsets=failed):
            for event in events:
                if type(event) is Log:
                    last_logs[event.offset].append(event)
    return Facts(recording.path, header, state, last_logs, last_seq)


def render(facts: Facts) -> str:
    """The summary as text."""
    return "\n".join(_header(facts) + _slowest(facts) + _retried(facts) + _failures(facts)) + "\n"


def local_time(header: RunInfo, when: float | None) -> str:
    """``when`` as the live run's local clock read it (its recorded UTC offset)."""
    if when is None:
        return "-"
    zone = datetime.timezone(datetime.timedelta(seconds=header.utc_offset or 0))
    return datetime.datetime.fromtimestamp(when, zone).isoformat(sep=" ", timespec="milliseconds")


def _header(facts: Facts) -> list[str]:
    run, state = facts.header, facts.state
    status = run.status if run.complete else f"INCOMPLETE (recorded status {run.status!r})"
    lines = [f"run {run.id} of {facts.path}: {status}"]
    if run.status == "running":
        lines.append(
            "  the run never finished recording (its parent died?): this is what was recorded"
            f", up to seq {facts.last_seq if facts.last_seq is not None else '-'}"
        )
    if run.recording_error:
        lines.append(f"  the recording stopped early: {run.recording_error}")
    if facts.offsets is not None or facts.until is not None:
        lines.append(f"  replayed only: {_limits(facts)}")
    lines.append(f"  function:  {run.function or '-'}")
    if run.handler and run.handler not in BASE_HANDLERS:
        lines.append(f"  handler:   {run.handler} (a hint: re-drive it with --handler {handler_hint(run)})")
    if run.parent_run is not None:
        lines.append(f"  re-run of: run {run.parent_run}")
    resumed = run.options.get("resumed_from")
    if resumed is not None:  # issue 19
        taken = sum(last - first + 1 for first, last in run.options.get("resumed_items") or [])
        lines.append(f"  resumed:   run {resumed} ({taken} items taken from its recording)")
    workers = f", {run.processes_to_start} processes" if run.processes_to_start else ""
    where = run.start_method or (f"{run.options['backend']} cluster" if run.options.get("backend") else "?")
    lines.append(f"  started:   {local_time(run, run.started_at)} ({where}{workers})")
    lines.append(f"  wall time: {_wall_time(facts)}")
    counts = state.counts()
    lines.append(
        f"  items:     {len(state.items)}: {counts[SUCCEEDED]} succeeded, {counts[FAILED]} failed, "
        f"{counts[RUNNING]} running, {counts['pending']} pending"
    )
    lines.append(f"  events:    {state.events}")
    retried = [item for item in state.items if item.attempts]
    if retried:  # issue 19
        again = sum(len(item.attempts) for item in retried)
        lines.append(f"  retried:   {len(retried)} item{'s' if len(retried) != 1 else ''}, "
                     f"{again} failed attempt{'s' if again != 1 else ''} run again")
    return lines


def handler_hint(run: RunInfo) -> str:
    """The recorded handler as ``--handler`` would take it (never imported here)."""
    module, _, name = (run.handler or "").partition(":")
    if module != "__main__":
        return run.handler or ""
    # Defined in the script that ran: importable by the script's own name, from its directory.
    script = os.path.basename(run.command_line[0]) if run.command_line else ""
    stem = script[:-3] if script.endswith(".py") else ""
    return f"{stem}:{name}" if stem.isidentifier() else f"MODULE:{name}"


def _limits(facts: Facts) -> str:
    parts = []
    if facts.offsets is not None:
        parts.append("items " + ", ".join(str(offset) for offset in sorted(facts.offsets)))
    if facts.until is not None:
        parts.append(f"events up to seq {facts.until}")
    return "; ".join(parts)


def _wall_time(facts: Facts) -> str:
    run = facts.header
    if run.started_at is None:
        return "-"
    if run.ended_at is not None:
        return f"{run.ended_at - run.started_at:.3f} s"
    # A run cut short has no end time: its items' last recorded times bound it from below.
    seen = [t for item in facts.state.items for t in (item.started_at, item.ended_at) if t is not None]
    if seen:
        return f"at least {max(seen) - run.started_at:.3f} s (to the last recorded item time)"
    return "-"


def _slowest(facts: Facts) -> list[str]:
    timed = [item for item in facts.state.items if item.duration is not None]
    if not timed:
        return []
    timed.sort(key=lambda item: item.duration or 0.0, reverse=True)
    rows = [(item.offset, f"{item.duration:.3f} s", item.status, item.pid) for item in timed[:SLOWEST]]
    table = tabulate(rows, headers=["item", "duration", "status", "pid"], tablefmt="simple")
    return ["", "slowest items:", *("  " + line for line in table.splitlines())]


def _retried(facts: Facts) -> list[str]:
    """Each retried item: how it ended, on which attempt, and why each earlier attempt failed (issue 19)."""
    lines: list[str] = []
    for item in facts.state.items:
        if not item.attempts:
            continue
        if not lines:
            lines += ["", "retried items:"]
        last = len(item.attempts) + 1
        ended = f"{item.status} on attempt {last}" if item.finished else f"{item.status}, attempt {last}"
        lines.append(f"  item {item.offset}: {ended}")
        for number, error in enumerate(item.attempts, 1):
            first = error.message.split("\n", 1)[0]
            lines.append(f"    attempt {number} failed (pid {error.pid}): {error.type}: {first}")
    return lines


def _failures(facts: Facts) -> list[str]:
    lines: list[str] = []
    for item in facts.state.items:
        if item.status != FAILED or item.error is None:
            continue
        error = item.error
        lines += ["", f"item {item.offset} failed (pid {item.pid}): {error.type}: {error.message}"]
        lines += ["  " + line for line in (error.traceback or "(no traceback recorded)").rstrip().splitlines()]
        logs = facts.last_logs.get(item.offset) or ()
        if logs:
            lines.append("  last log lines:")
            for log in logs:
                lines += ["    " + line for line in format_log(log, facts.header).splitlines()]
    unfinished = [item.offset for item in facts.state.items if not item.finished]
    if unfinished and not facts.header.complete:
        lines += ["", "never finished: items " + ", ".join(str(offset) for offset in unfinished)]
    return lines
