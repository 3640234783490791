"""A ``Diff`` for a person (``text``) or a machine (``as_json``): the printing half of ``diff``.

The JSON shape is stable (documented in the README, "Comparing runs"; new keys may be added,
existing ones never change meaning)::

    {"same": bool,
     "a": RUN, "b": RUN,
     "counts": {"compared", "outcomes", "results", "errors", "inputs", "only_in_a", "only_in_b", "logs",
                "attempts"},
     "shared_data": CHANGE | null,
     "items": [{"offset", "a": SIDE | null, "b": SIDE | null, "differs", "outcome_changed",
                "input": CHANGE | null, "result": CHANGE | null, "error_changed", "attempts_changed",
                "log": {"line", "a_lines", "b_lines", "a": LINE | null, "b": LINE | null} | null}],
     "durations": [{"offset", "a", "b", "change"}]}      # seconds, the largest changes first
    RUN    = {"path", "run", "status", "complete", "function", "items",
              "succeeded", "failed", "running", "pending",
              "rerun_of"}                                   # a re-run's parent run, else null
    SIDE   = {"outcome", "error": {"type", "message"} | null, "duration", "attempts"}
    CHANGE = {"path", "by": "json" | "repr", "a", "b", "missing": "a" | "b" | null}
    LINE   = {"level", "logger", "message"}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from mpmq.events import Log

from .compare import Diff, ItemChange, ItemFacts, LogChange, RunFacts, ValueChange

MAX_LISTED = 20  # items listed per section of the text; --json lists every one
MAX_VALUE_CHARS = 80


# -- text ------------------------------------------------------------------------------------


def text(diff: Diff) -> str:
    """The diff as text: the two runs, each kind of change with its items, the counts, the verdict."""
    lines = [_run_line("a", diff.a), _run_line("b", diff.b)]
    for name, run in (("a", diff.a), ("b", diff.b)):
        if run.rerun:
            lines.append(f"{name} re-ran {_n(len(run.items), 'item', 'items')} of run {run.header.parent_run}: "
                         "matched by their offsets there, only they are compared")
    if diff.a.header.function != diff.b.header.function:
        lines.append(f"function: {diff.a.header.function or '-'} -> {diff.b.header.function or '-'}")
    if diff.shared_data is not None:
        lines.append(f"shared data: {_value_change(diff.shared_data)}")
    for title, listed, describe in _SECTIONS:
        lines += _section(title, [change for change in diff.items if listed(change)], describe)
    if diff.durations:
        lines += ["", "durations changed most:"]
        lines += [f"  item {d.offset}: {_seconds(d.a)} -> {_seconds(d.b)} ({_seconds(d.change, '+')})"
                  for d in diff.durations]
    counts = diff.counts()
    lines += ["", f"{_n(counts['compared'], 'item', 'items')} compared: {_counts(counts)}"]
    lines.append("same outcomes and results" if diff.same else "the runs differ")
    return "\n".join(lines) + "\n"


# Each kind of change: its title, which items it lists, and the line(s) for one item.
_SECTIONS: tuple[tuple[str, Callable[[ItemChange], bool], Callable[[ItemChange], str]], ...] = (
    ("only in a", lambda c: c.b is None, lambda c: f"item {c.offset}: {_outcome(c.a)}"),
    ("only in b", lambda c: c.a is None, lambda c: f"item {c.offset}: {_outcome(c.b)}"),
    ("inputs differ", lambda c: c.input is not None, lambda c: f"item {c.offset}: {_value_change(c.input)}"),
    ("outcomes changed", lambda c: c.outcome_changed, lambda c: f"item {c.offset}: {_outcome(c.a)} -> {_outcome(c.b)}"),
    ("results differ", lambda c: c.result is not None, lambda c: f"item {c.offset}: {_value_change(c.result)}"),
    ("errors differ", lambda c: c.error_changed, lambda c: f"item {c.offset}: {_error(c.a)} -> {_error(c.b)}"),
    ("first log line that differs", lambda c: c.log is not None, lambda c: _log_change(c)),
    ("attempts changed", lambda c: c.attempts_changed, lambda c: _attempts(c)),
)


def _run_line(name: str, run: RunFacts) -> str:
    header = run.header
    status = header.status if header.complete else f"INCOMPLETE (recorded status {header.status!r})"
    counts = ", ".join(f"{count} {outcome}" for outcome, count in run.counts().items() if count)
    size = _n(len(run.items), "item", "items")
    return f"{name}: run {header.id} of {run.path}: {status}, {size} ({counts or 'none'})"


def _section(title: str, changes: list[ItemChange], line: Callable[[ItemChange], str]) -> list[str]:
    if not changes:
        return []
    lines = ["", f"{title} ({len(changes)}):"]
    for change in changes[:MAX_LISTED]:
        lines += ["  " + part for part in line(change).split("\n")]
    if len(changes) > MAX_LISTED:
        lines.append(f"  and {len(changes) - MAX_LISTED} more (--json lists every one)")
    return lines


def _outcome(item: ItemFacts | None) -> str:
    if item is None:
        return "-"
    if item.outcome == "failed":
        return f"failed ({_error(item)})"
    return item.outcome


def _error(item: ItemFacts | None) -> str:
    if item is None or item.error_type is None:
        return "-"
    return f"{item.error_type}: {_cut(' '.join((item.error_message or '').split()), 120)}"


def _value_change(change: ValueChange | None) -> str:
    assert change is not None
    where = change.path if change.by == "json" else "(repr)"
    return f"{where}: {_value(change, 'a')} -> {_value(change, 'b')}"


def _value(change: ValueChange, side: str) -> str:
    if change.missing == side:
        return "(absent)"
    value = getattr(change, side)
    if change.by == "repr":
        return _cut(value, MAX_VALUE_CHARS) if value is not None else "(no repr recorded)"
    return _cut(msgspec.json.encode(value).decode(), MAX_VALUE_CHARS)


def _log_change(change: ItemChange) -> str:
    log: LogChange = change.log  # type: ignore[assignment]
    return "\n".join((f"item {change.offset}, line {log.line}:", f"  a: {_log_line(log.a, log.a_lines)}",
                      f"  b: {_log_line(log.b, log.b_lines)}"))  # fmt: skip


def _attempts(change: ItemChange) -> str:
    a, b = change.a.attempts, change.b.attempts  # type: ignore[union-attr]  # both sides: attempts_changed
    return f"item {change.offset}: {a} -> {b} attempts"


def _log_line(line: Log | None, count: int) -> str:
    if line is None:
        return f"(none: {_n(count, 'line', 'lines')} in all)"
    first, *rest = line.message.split("\n")
    more = f" (+{_n(len(rest), 'more line', 'more lines')})" if rest else ""
    return f"{logging.getLevelName(line.level)} {line.logger}: {_cut(first, 200)}{more}"


def _counts(counts: dict[str, int]) -> str:
    parts = [
        _n(counts["outcomes"], "outcome changed", "outcomes changed"),
        _n(counts["results"], "result differs", "results differ"),
        _n(counts["errors"], "error differs", "errors differ"),
        _n(counts["inputs"], "input differs", "inputs differ"),
    ]
    if counts["only_in_a"] or counts["only_in_b"]:
        parts.append(f"{counts['only_in_a']} only in a, {counts['only_in_b']} only in b")
    parts.append("logs differ in " + _n(counts["logs"], "item", "items"))
    if counts["attempts"]:
        parts.append("attempts changed in " + _n(counts["attempts"], "item", "items"))
    return ", ".join(parts)


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _seconds(value: float, sign: str = "") -> str:
    """Milliseconds below a second: most items are short, and 0.000 s says nothing."""
    if abs(value) < 1:
        return f"{value * 1000:{sign}.1f} ms"
    return f"{value:{sign}.3f} s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- JSON ------------------------------------------------------------------------------------


def as_json(diff: Diff) -> dict[str, Any]:
    """The diff as plain JSON data, in the documented shape (module docstring)."""
    return {
        "same": diff.same,
        "a": _json_run(diff.a),
        "b": _json_run(diff.b),
        "counts": diff.counts(),
        "shared_data": _json_value_change(diff.shared_data),
        "items": [_json_item(change) for change in diff.items],
        "durations": [{"offset": d.offset, "a": d.a, "b": d.b, "change": d.change} for d in diff.durations],
    }


def _json_run(run: RunFacts) -> dict[str, Any]:
    header = run.header
    return {"path": run.path, "run": header.id, "status": header.status, "complete": header.complete,
            "function": header.function, "items": len(run.items), **run.counts(),
            "rerun_of": header.parent_run if run.rerun else None}  # fmt: skip


def _json_item(change: ItemChange) -> dict[str, Any]:
    log = change.log
    return {
        "offset": change.offset,
        "a": _json_side(change.a),
        "b": _json_side(change.b),
        "differs": change.differs,
        "outcome_changed": change.outcome_changed,
        "input": _json_value_change(change.input),
        "result": _json_value_change(change.result),
        "error_changed": change.error_changed,
        "attempts_changed": change.attempts_changed,
        "log": None if log is None else {"line": log.line, "a_lines": log.a_lines, "b_lines": log.b_lines,
                                         "a": _json_log(log.a), "b": _json_log(log.b)},  # fmt: skip
    }


def _json_side(item: ItemFacts | None) -> dict[str, Any] | None:
    if item is None:
        return None
    error = None if item.error_type is None else {"type": item.error_type, "message": item.error_message}
    return {"outcome": item.outcome, "error": error, "duration": item.duration, "attempts": item.attempts}


def _json_value_change(change: ValueChange | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {"path": change.path, "by": change.by, "a": change.a, "b": change.b, "missing": change.missing}


def _json_log(line: Log | None) -> dict[str, Any] | None:
    if line is None:
        return None
    return {"level": logging.getLevelName(line.level), "logger": line.logger, "message": line.message}
