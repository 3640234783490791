"""What the report shows, read from a recording and capped: the data half of ``page.py``.

    Recording (mpmq.recording: read-only, validated, nothing unpickled)
      .run() .items() --> one ItemView per item (outcome, times from the run's start, texts)
      .events()       --> Log events: each item's last LOG_LINES_PER_ITEM lines, counted
      --> _share_log_lines, _share_tracebacks: at most LOG_CHARS, TRACEBACK_CHARS --> Report

Every recorded string is made printable and bounded here (``clean``) and escaped when it is
written into the page (``esc``), never before. The limits below are the report's; the module
docstring of ``page.py`` explains what each one bounds and what the page says when it cuts.
"""

from __future__ import annotations

import html
import os
import re
from collections import Counter, deque
from dataclasses import dataclass, field

from mpmq.events import Error, Log, Started
from mpmq.recording import ItemRecord, Recording, RunInfo

MAX_BARS = 2_000  # bars drawn one per item; beyond, neighbours merge
MAX_LANES = 32  # lanes one per pid; beyond, workers that never overlapped share one
LOG_LINES_PER_ITEM = 200  # each item's last lines
LOG_CHARS = 2_000_000  # log text in the page, all items together
TRACEBACK_CHARS = 1_000_000  # traceback text in the items' logs, all items together
MAX_MESSAGE_CHARS = 400  # one log message
MAX_EXC_TEXT_CHARS = 2_000  # the traceback a logger.exception line carries (its end)
MAX_TRACEBACK_CHARS = 8_000  # an item's traceback (its end)
MAX_TABLE_ROWS = 5_000
MAX_FAILURE_DETAILS = 50  # failures shown in full at the bottom of the page
MAX_REPR_CHARS = 120  # an input, a result, an error line in the table (HTML characters, escaped)
LINE_MARKUP = 40  # characters of HTML around each log line, counted against LOG_CHARS

# Outcome -> label, in the order the page lists them. error_type tells the parent's failures apart.
LABELS = {
    "succeeded": "succeeded", "failed": "failed", "crashed": "crashed", "timeout": "timed out",
    "cancelled": "cancelled", "unfinished": "unfinished", "pending": "not started",
}  # fmt: skip
_PARENT_FAILURES = {
    "mpmq.errors.WorkerDied": "crashed",
    "mpmq.errors.ItemTimeout": "timeout",
    "mpmq.errors.ItemCancelled": "cancelled",
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class LogLine:
    time: float  # seconds from the run's start (the worker's clock)
    level: int
    logger: str
    message: str
    exc_text: str | None = None


@dataclass
class ItemView:
    """One item as the page shows it; times in seconds from the run's start."""

    offset: int
    outcome: str
    pid: int | None
    start: float | None
    end: float | None
    input: str
    result: str
    error_type: str | None
    error_message: str | None
    traceback: str
    log_total: int = 0
    logs: list[LogLine] = field(default_factory=list)
    recorded_duration: float | None = None  # the items row's own, when it has one
    traceback_kept: int | None = None  # characters of the traceback the item's log keeps (None: all)
    attempt: int = 1  # issue 19: which attempt this bar is (the item's own view: its last)
    retried: bool = False  # issue 19: an attempt that failed and was run again
    worker: str | None = None  # issue 17: the cluster worker's address (None: this machine)

    @property
    def duration(self) -> float | None:
        if self.recorded_duration is not None:
            return self.recorded_duration
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def error_line(self) -> str:
        first = (self.error_message or "").split("\n", 1)[0]
        return f"{self.error_type}: {first}" if self.error_type else first


@dataclass
class Report:
    source: str  # the recording's file name
    run: RunInfo
    run_ids: list[int]
    t0: float  # the run's start, epoch seconds
    span: float  # seconds from t0 to the run's end (or its last event)
    items: list[ItemView]
    attempts: list[ItemView] = field(default_factory=list)  # issue 19: retried attempts, one bar each

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)


def outcome_of(item: ItemRecord) -> str:
    if item.status == "succeeded":
        return "succeeded"
    if item.status == "failed":
        return _PARENT_FAILURES.get(item.error_type or "", "failed")
    return "unfinished" if item.status == "running" else "pending"


def clean(text: str | None, limit: int | None = None, tail: bool = False) -> str:
    """Recorded text made printable and bounded (escaping is the renderer's job)."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", _ANSI.sub("", text or ""))
    if limit is not None and len(text) > limit:
        cut = len(text) - limit
        text = f"[{cut:,} characters cut]\n{text[-limit:]}" if tail else f"{text[:limit]}… [{cut:,} more characters]"
    return text


def collect(recording: Recording, run_id: int | None = None) -> Report:
    """Read one run (the latest by default) into a ``Report``, applying the log limits."""
    run = recording.run(run_id)
    records = recording.items(run.id)
    starts = [r.started_at for r in records if r.started_at is not None]
    t0 = run.started_at if run.started_at is not None else min(starts, default=0.0)
    tails: dict[int, deque[LogLine]] = {}
    totals: Counter[int] = Counter()
    last_seen = t0
    begun: dict[int, Started] = {}  # issue 19: each item's latest start, for its attempts' bars
    attempts: list[ItemView] = []
    where: dict[int, str] = {}  # issue 17: offset -> the cluster worker that ran it
    for _seq, received_at, event in recording.events(run.id):
        last_seen = max(last_seen, received_at)
        if type(event) is Started:
            begun[event.offset] = event
            if event.worker is not None:
                where[event.offset] = event.worker
        elif type(event) is Error and event.retrying:
            attempts += _attempt_view(begun.pop(event.offset, None), event, t0)
        if type(event) is Log:
            totals[event.offset] += 1
            tail = tails.get(event.offset)
            if tail is None:
                tail = tails[event.offset] = deque(maxlen=LOG_LINES_PER_ITEM)
            tail.append(LogLine(event.time - t0, event.level, clean(event.logger, 80),
                                clean(event.message, MAX_MESSAGE_CHARS),
                                clean(event.exc_text, MAX_EXC_TEXT_CHARS, tail=True) or None))  # fmt: skip
    ends = [r.ended_at for r in records if r.ended_at is not None]
    end = max([run.ended_at or last_seen, last_seen, *ends, *starts])
    items = [_item_view(r, t0, end, totals[r.offset], tails.get(r.offset, ())) for r in records]
    for offset, worker in where.items():
        items[offset].worker = worker
    for attempt in attempts:  # a retried item's own bar is its last attempt
        item, last = items[attempt.offset], begun.get(attempt.offset)
        if last is not None and item.start is not None:
            item.start, item.recorded_duration, item.attempt = last.time - t0, None, last.attempt
    _share_log_lines(items)
    _share_tracebacks(items)
    ids = [info.id for info in recording.runs()]
    return Report(os.path.basename(recording.path), run, ids, t0, max(end - t0, 0.0), items, attempts)


def _attempt_view(start: Started | None, error: Error, t0: float) -> list[ItemView]:
    """A retried attempt as a bar of its own (issue 19); none if its start never arrived."""
    if start is None:
        return []
    outcome = _PARENT_FAILURES.get(error.type, "failed")
    return [ItemView(
        error.offset, outcome, start.pid or None, start.time - t0, error.time - t0, "", "", clean(error.type, 200),
        clean(error.message, 2_000), "", attempt=start.attempt, retried=True, worker=start.worker,
    )]  # fmt: skip


def _item_view(r: ItemRecord, t0: float, end: float, total: int, logs) -> ItemView:
    outcome = outcome_of(r)
    start = None if r.started_at is None else r.started_at - t0
    stop = r.ended_at if r.ended_at is not None else (end if outcome == "unfinished" else None)
    result = "" if r.result is None else clean(r.result.repr, 1_000)
    return ItemView(
        r.offset, outcome, r.pid or None, start, None if stop is None or start is None else stop - t0,
        clean(r.input.repr, 1_000), result, clean(r.error_type, 200) or None,
        clean(r.error_message, 2_000) or None, clean(r.traceback, MAX_TRACEBACK_CHARS, tail=True), total, list(logs),
        r.duration if start is not None else None,
    )  # fmt: skip


def line_size(line: LogLine) -> int:
    """The characters a log line takes in the page, escaped and with its markup."""
    return len(esc(line.message)) + len(esc(line.logger)) + len(esc(line.exc_text or "")) + LINE_MARKUP


def _share_log_lines(items: list[ItemView]) -> None:
    """At most LOG_CHARS of log lines: three quarters first for the items that did not succeed
    (the ones a reader opens), then the rest, and what they left, for the others."""
    first = LOG_CHARS * 3 // 4
    unused = _even_share([item for item in items if item.outcome != "succeeded"], first)
    _even_share([item for item in items if item.outcome == "succeeded"], LOG_CHARS - first + unused)


def _even_share(items: list[ItemView], budget: int) -> int:
    """Water-filling: small logs are kept whole, larger ones get equal shares of their last lines.

    Returns the budget left over."""
    sized = sorted(((sum(map(line_size, item.logs)), item) for item in items), key=lambda pair: pair[0])
    for index, (size, item) in enumerate(sized):
        share = budget // (len(sized) - index)
        if size > share:
            size = count = 0
            for line in reversed(item.logs):
                if size + line_size(line) > share:
                    break
                size += line_size(line)
                count += 1
            item.logs = item.logs[len(item.logs) - count :]
        budget -= size
    return budget


def _share_tracebacks(items: list[ItemView]) -> None:
    """At most TRACEBACK_CHARS (escaped) of tracebacks in the items' logs, shared evenly, small
    ones kept whole; a cut traceback keeps its end, where the exception is."""
    sized = sorted(((len(esc(item.traceback)), item) for item in items if item.traceback), key=lambda pair: pair[0])
    budget = TRACEBACK_CHARS
    for index, (size, item) in enumerate(sized):
        share = budget // (len(sized) - index)
        if size > share:
            item.traceback_kept = share * len(item.traceback) // size  # raw characters, ~share escaped
            size = share
        budget -= size


# -- text --------------------------------------------------------------------------------------


def esc(text: object) -> str:
    """Text for between tags. Recorded text never goes into an attribute: attributes hold only
    the report's own words (offsets, outcome keys), so quotes need no escaping and cost nothing."""
    return html.escape(str(text), quote=False)


def esc_cut(text: str, limit: int) -> str:
    """``esc(text)`` in at most about ``limit`` characters of HTML (``…`` marks a cut): bounds a
    page whatever the text, ``<`` and ``&`` included."""
    escaped = esc(text)
    if len(escaped) <= limit:
        return escaped
    pieces, size = [], 0
    for char in text:
        piece = esc(char)
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces) + "…"


def seconds(value: float | None) -> str:
    """A duration a person reads: 840 µs, 52 ms, 1.24 s, 3 min 05.2 s, 1 h 02 min."""
    if value is None:
        return "–"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms" if value < 0.01 else f"{value * 1e3:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    if value < 3600:
        return f"{int(value // 60)} min {value % 60:04.1f} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"
