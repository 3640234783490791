"""One self-contained HTML page from a recorded run: summary, timeline, items, logs, failures.

Issue 8. The command is ``mpmq-replay report run.db -o report.html`` (``command.py``).

    recording --open_recording (read-only, validated)--> collect()      data.py: a Report,
                                                                         plain data, capped
              --> render() --> one HTML string:
                    header + summary | timeline (timeline.py: inline SVG)
                    | items table + log view | failures | one <template> of log lines per item
              --> write_report() --> the file, written next to its final name, then renamed

    render_report("run.db") -> str          write_report("run.db", "report.html", run=None) -> Path

A recording is someone else's data, so it is read through ``mpmq.recording`` (read-only,
every row validated, nothing unpickled), no code of the user's is imported, and every recorded
string is cleaned (ANSI colour codes dropped, other control characters shown as ``\\xNN``)
and passed through ``html.escape`` before it reaches the page, always between tags, never
into an attribute: a log line ``<script>`` shows as text. The page loads nothing (no network,
no external assets) and its Content-Security-Policy allows only its own inline script and
stylesheet, by hash, so even a bug in the escaping could not run a recorded script. CSS and
JavaScript: ``assets.py``.

Limits (``data.py``), so that 5 items and 5,000 both read well and the file stays small:

- Timeline: one lane per worker pid, one bar per started item up to ``MAX_BARS`` (2,000);
  beyond that, neighbouring bars of a lane with the same outcome and no visible gap merge, at
  most 24/1,000 of the width each (tooltip: how many, when, the slowest; a click opens the
  slowest). Beyond ``MAX_LANES`` (32) pids, workers whose lifetimes do not overlap share a
  lane (``max_items_per_worker=1`` starts a worker per item). Items that never started
  (cancelled) are chips under the lanes.
- Logs: each item's last ``LOG_LINES_PER_ITEM`` (200) lines; at most ``LOG_CHARS`` (2 M
  characters) of log lines in the page, three quarters first for the items that did not
  succeed, then even shares, small logs kept whole; messages cut at ``MAX_MESSAGE_CHARS``.
  Tracebacks keep their end: ``MAX_TRACEBACK_CHARS`` each, ``TRACEBACK_CHARS`` (1 M) for all
  the items' logs together. Each item's log says how many lines it had and how many are shown.
- Table: ``MAX_TABLE_ROWS`` (5,000) rows, beyond that the items that did not succeed, then the
  slowest; inputs, results and errors cut at ``MAX_REPR_CHARS`` (120) characters of HTML. Failures in full at the
  bottom: the first ``MAX_FAILURE_DETAILS`` (50).
- Measured, and pinned by tests/test_report.py: 5,000 trivial items on 2 workers, one log line
  each, give a 1.6 MB page in 0.2 s (limit in the test: 3 MB); the caps hold any run under
  about 8 MB (a synthetic worst case, 5,000 failures logging long ``<&>`` lines with long
  tracebacks: 7.4 MB in 1.5 s; limit in the test: 9 MB). Merged bars keep the SVG small (about
  50 bars for the 5,000 items); headless Chromium, started cold, renders that page and dumps
  its DOM in 3.5 s (1.8 s for 5 items).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mpmq.recording import open_recording
from mpmq.recording.writer import RUN_STATUSES

from .assets import CSS, JS, csp_hash
from .data import (
    LABELS,
    LOG_CHARS,
    MAX_FAILURE_DETAILS,
    MAX_REPR_CHARS,
    MAX_TABLE_ROWS,
    ItemView,
    LogLine,
    Report,
    clean,
    collect,
    esc,
    esc_cut,
    seconds,
)
from .timeline import timeline

__all__ = ["render_report", "write_report", "render", "collect", "Report"]

_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
_TABLE_HEAD = (
    "<tr><th data-sort>Item</th><th>Outcome</th><th data-sort>pid</th><th data-sort>Start (s)</th>"
    "<th data-sort>Time (s)</th><th data-sort>Logs</th><th>Input</th><th>Result or error</th></tr>"
)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def pill(outcome: str) -> str:
    return f'<span class="pill s-{outcome}">{esc(LABELS.get(outcome, outcome))}</span>'


def item_link(offset: int, text: str | None = None) -> str:
    return f'<a href="#item-{offset}" data-offset="{offset}">{esc(text or f"item {offset}")}</a>'


def render(report: Report) -> str:
    """The page, as one string (see the module docstring for its parts)."""
    title = f"mpmq run {report.run.id}: {report.run.function or 'unknown function'} ({report.run.status})"
    csp = f"default-src 'none'; style-src {csp_hash(CSS)}; script-src {csp_hash(JS)}; img-src data:"
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',  # ours: no quotes, no <>&
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        _header(report), timeline(report), _items(report), _failures(report), _templates(report),
        '<footer>Written by <code>mpmq-replay report</code> from the recording alone: no code of the run was '
        "imported, every recorded string is shown as text.</footer></main>",
        f"<script>{JS}</script></body></html>\n",
    ]  # fmt: skip
    return "".join(parts)


def _header(report: Report) -> str:
    run = report.run
    status = run.status
    meta = []
    if run.started_at is not None:
        zone = timezone(timedelta(seconds=run.utc_offset or 0))
        meta.append(f"started {datetime.fromtimestamp(run.started_at, zone):%Y-%m-%d %H:%M:%S %Z}")
    for label, value in (("mpmq", run.mpmq_version), ("Python", run.python_version), ("", run.platform),
                         ("start method", run.start_method), ("processes", run.processes_to_start)):  # fmt: skip
        if value is not None:
            meta.append(f"{label} {value}".strip() if label != "processes" else f"{value} processes")
    others = f" (runs in this file: {', '.join(map(str, report.run_ids))})" if len(report.run_ids) > 1 else ""
    meta.append(f"recording {report.source}{others}")
    notes = []
    if run.status == "running":
        notes.append("The recording ends while the run was still going: its parent process died or stopped "
                     "recording. Items shown as unfinished were running at its last event.")  # fmt: skip
    if run.recording_error:
        notes.append(f"The recording stopped early: {clean(run.recording_error, 500)}")
    command = " ".join(run.command_line)
    return "".join([
        '<header class="card">',
        f"<h1>Run {run.id} <code>{esc(clean(run.function or 'unknown function', 200))}</code>"
        f'<span class="pill badge s-{status if status in RUN_STATUSES else "unknown"}">{esc(status)}</span></h1>',
        '<div class="meta">', "".join(f"<span>{esc(clean(m, 200))}</span>" for m in meta), "</div>",
        f'<div class="meta">command line: <code>{esc(clean(command, 300))}</code></div>' if command else "",
        "".join(f'<div class="warn">{esc(note)}</div>' for note in notes),
        _summary(report), "</header>",
    ])  # fmt: skip


def _summary(report: Report) -> str:
    items, span = report.items, report.span
    ran = [item for item in items if item.duration is not None]
    finished = sum(1 for item in items if item.outcome in ("succeeded", "failed", "crashed", "timeout"))
    pids = {item.pid for item in items if item.start is not None and item.pid}
    slots = report.run.processes_to_start or len(pids) or 1
    busy = sum(item.duration for item in ran) / (slots * span) if span else 0.0
    durations = sorted(item.duration for item in ran)
    median = durations[len(durations) // 2] if durations else None
    p95 = durations[min(len(durations) - 1, int(len(durations) * 0.95))] if durations else None
    stats = [
        ("Items", f"{len(items):,}", f"{len(ran):,} ran"),
        ("Wall time", seconds(span), "run start to end"),
        ("Throughput", _rate(finished / span) if span else "–", "items/s"),
        ("Workers", f"{len(pids)}", f"pids; {slots} at a time"),
        ("Busy", f"{busy:.0%}", "of worker time"),
        ("Item time", seconds(median), f"median; p95 {seconds(p95)}"),
    ]
    counts = "".join(
        f'<span class="count s-{key}"><span class="dot"></span>{esc(label)} <b>{report.count(key):,}</b></span>'
        for key, label in LABELS.items() if report.count(key)
    )  # fmt: skip
    slowest = sorted(ran, key=lambda item: item.duration or 0.0, reverse=True)[:5]
    return "".join([
        '<section id="summary"><div class="stats">',
        "".join(f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div>'
                f'<div class="sub">{esc(sub)}</div></div>' for k, v, sub in stats),
        f'</div><div class="counts">{counts}</div>',
        '<ul class="slowest"><li class="muted">Slowest:</li>' if slowest else "",
        "".join(f"<li>{item_link(item.offset)} {seconds(item.duration)} {pill(item.outcome)}</li>"
                for item in slowest),
        "</ul>" if slowest else "", "</section>",
    ])  # fmt: skip


def _failures(report: Report) -> str:
    failed = [item for item in report.items if item.outcome in ("failed", "crashed", "timeout")]
    cancelled = [item for item in report.items if item.outcome == "cancelled"]
    if not failed and not cancelled:
        return ""
    parts = [f'<section class="card" id="failures"><h2>Failures <span class="muted">({len(failed):,})</span></h2>']
    for index, item in enumerate(failed[:MAX_FAILURE_DETAILS]):
        where = (
            f"pid {item.pid} · started +{item.start:.3f} s · ran {seconds(item.duration)}"
            if item.start is not None
            else ""
        )
        parts += [
            f'<details class="failure s-{item.outcome}"{" open" if index < 3 else ""}><summary>',
            f"{pill(item.outcome)} {item_link(item.offset)} <code>{esc(item.error_type or '')}</code> ",
            f"{esc_cut(_first_line(item.error_message), 200)} ",
            f'<span class="muted">{esc(where)}</span></summary>{_error_details(item)}',
        ]  # fmt: skip
        if item.logs:
            parts.append(f'<div class="note">last log lines ({item.log_total:,} in all):</div>')
            parts.append(_log_lines(item.logs[-10:]))
        parts.append("</details>")
    if len(failed) > MAX_FAILURE_DETAILS:
        parts.append(
            f'<p class="note">{len(failed) - MAX_FAILURE_DETAILS:,} more failures: filter the table below.</p>'
        )
    if cancelled:
        reason = cancelled[0].error_message or "cancelled"
        parts.append(f"<p>{pill('cancelled')} {len(cancelled):,} items never ran: <i>{esc(reason)}</i></p>")
    parts.append("</section>")
    return "".join(parts)


def _items(report: Report) -> str:
    rows = report.items
    if len(rows) > MAX_TABLE_ROWS:
        rank = sorted(rows, key=lambda item: (item.outcome == "succeeded", -(item.duration or 0.0)))
        rows = sorted(rank[:MAX_TABLE_ROWS], key=lambda item: item.offset)
    present = [key for key in LABELS if report.count(key)]
    boxes = "".join(
        f'<label><input type="checkbox" value="{key}" checked><span class="dot s-{key}"></span>'
        f"{esc(LABELS[key])}</label>"
        for key in present
    )
    cut = f" (the {len(rows):,} most telling of {len(report.items):,})" if len(rows) < len(report.items) else ""
    body = "".join(
        f'<tr data-offset="{item.offset}" data-status="{item.outcome}"><td>{item.offset}</td>'
        f'<td><b class="pill">{LABELS[item.outcome]}</b></td><td>{item.pid or ""}</td>'
        f'<td>{"" if item.start is None else f"{item.start:.3f}"}</td>'
        f'<td>{"" if item.duration is None else f"{item.duration:.3f}"}</td><td>{item.log_total}</td>'
        f"<td>{esc_cut(item.input, MAX_REPR_CHARS)}</td>"
        f"<td>{esc_cut(item.error_line or item.result, MAX_REPR_CHARS)}</td></tr>"
        for item in rows
    )
    return "".join([
        f'<section class="card" id="items-section"><h2>Items{esc(cut)}</h2>',
        f'<div class="toolbar" id="filters">{boxes}<input type="search" id="search" '
        'placeholder="Search log messages, inputs, results and errors" aria-label="search">'
        f'<span id="shown" class="muted">{len(rows):,} of {len(rows):,} rows</span></div>',
        f'<div class="split"><div class="table-wrap"><table id="items"><thead>{_TABLE_HEAD}</thead>',
        f"<tbody>{body}</tbody>",
        '</table></div><aside id="log-view"><div id="log-head"><h3>Item log</h3></div><div id="log-panel">',
        '<p class="note">Click a bar in the timeline or a row of the table to see what that item logged.</p>',
        "</div></aside></div></section>",
    ])  # fmt: skip


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]


def _error_details(item: ItemView, traceback_chars: int | None = None) -> str:
    """The traceback (its last ``traceback_chars``), and a message of several lines unless the
    item's log lines are shown anyway (WorkerDied and ItemTimeout messages end with them)."""
    message = item.error_message or ""
    whole = f"<pre>{esc(message)}</pre>" if "\n" in message and not item.logs else ""
    if not item.traceback:
        return whole
    traceback = item.traceback if traceback_chars is None else clean(item.traceback, traceback_chars, tail=True)
    return f"{whole}<pre>{esc(traceback)}</pre>"


def _log_lines(lines: list[LogLine]) -> str:
    out = []
    for line in lines:
        level = _LEVELS.get(line.level, f"LEVEL {line.level}")
        exc = f"\n{esc(line.exc_text)}" if line.exc_text else ""
        # <i> time, <b> level, <u> logger (styled in assets.CSS): short tags, many lines.
        out.append(f'<li class="l{min(max(line.level // 10, 1), 5)}0"><i>+{line.time:.3f}</i><b>{level}</b>'
                   f"<u>{esc(line.logger)}</u>{esc(line.message)}{exc}</li>")  # fmt: skip
    return f'<ol class="log-lines">{"".join(out)}</ol>'


def _templates(report: Report) -> str:
    """Each item's log (and error) as an inert <template>, cloned into the log view on a click."""
    parts = ['<div id="logs" hidden>']
    for item in report.items:
        if not item.log_total and not item.error_type:
            continue
        parts.append(f'<template id="log-{item.offset}">')
        if item.error_type:
            details = _error_details(item, item.traceback_kept)
            parts.append(f'<div class="err s-{item.outcome}"><b>{esc(item.error_type)}</b>: '
                         f"{esc_cut(_first_line(item.error_message), 200)}{details}</div>")  # fmt: skip
        if item.log_total > len(item.logs):
            kept = f"the last {len(item.logs):,} are shown" if item.logs else (
                f"none fit in this report (at most {LOG_CHARS // 1_000_000} M characters of logs)")
            parts.append(f'<p class="note">{item.log_total:,} log lines; {kept}.</p>')
        if item.logs:
            parts.append(_log_lines(item.logs))
        elif not item.log_total:
            parts.append('<p class="note">This item logged nothing.</p>')
        parts.append("</template>")
    parts.append("</div>")
    return "".join(parts)


def render_report(path: str | os.PathLike[str], run: int | None = None) -> str:
    """The HTML report of a recorded run (the latest by default); ``RecordingError`` if unreadable."""
    with open_recording(path) as recording:
        return render(collect(recording, run))


def write_report(path: str | os.PathLike[str], out_path: str | os.PathLike[str], run: int | None = None) -> Path:
    """Write the report of ``path``'s run to ``out_path`` (replaced whole, never half-written)."""
    page = render_report(path, run)
    out = Path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return out
