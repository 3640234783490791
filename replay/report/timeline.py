"""The report's timeline: an inline SVG with one lane per worker and one bar per item.

A worker is a pid on this machine, or a pid on a cluster worker's host (issue 17: pids of two
machines may be equal, so a lane is a worker's address and pid).

    started items --by worker--> lanes (packed when there are more than MAX_LANES workers)
                  --per lane, in start order--> bars (merged beyond MAX_BARS) -> <rect> + <title>
    items that never started (cancelled, ...) --> a row of chips under the chart

x is seconds from the run's start on a fixed 1,200-unit viewBox scaled to the page width, so
the SVG's size does not grow with the run's length, only with its number of bars. Every bar
and chip carries ``data-offset`` (a click shows that item's log) and ``data-status`` (the
status filter); a merged bar also carries ``data-items``, how many items it stands for.
"""

from __future__ import annotations

import math

from .data import LABELS, MAX_BARS, MAX_LANES, ItemView, Report, esc, seconds

WIDTH = 1200
X0, X1 = 150.0, 1186.0  # the plot area; lane labels end at X0 - 8
TOP, AXIS = 4, 36
MIN_BAR = 1.2  # units: the shortest item stays visible
MERGE_GAP = 1.0  # units: bars closer than this look joined anyway
MERGE_WIDTH = 24.0  # units: a merged bar stays narrow enough for its tooltip to be local
MAX_CHIPS = 200  # per outcome, for items that never started


def timeline(report: Report) -> str:
    started = [item for item in report.items if item.start is not None] + report.attempts  # issue 19
    lanes = _lanes(started)
    merge = len(started) > MAX_BARS
    count = len(lanes)
    lane_h = 30 if count <= 8 else 22 if count <= 16 else max(6, 352 // count)
    pad = max(1, lane_h // 6)
    height = TOP + count * lane_h + AXIS
    span = report.span or 1.0

    def scale(t: float) -> float:
        return X0 + (X1 - X0) * max(t, 0.0) / span

    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{len(started)} items on {count} worker lanes over {esc(seconds(report.span))}">',
        "".join(f'<rect class="lane-bg{" odd" if index % 2 else ""}" x="{X0}" y="{TOP + index * lane_h}" '
                f'width="{X1 - X0}" height="{lane_h}"/>' for index in range(count)),
        _axis(span, scale, TOP, TOP + count * lane_h),
    ]  # fmt: skip
    bars = 0
    for index, (label, title, items) in enumerate(lanes):
        y = TOP + index * lane_h
        parts.append(
            f'<g class="lane"><text class="lane-label" x="{X0 - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end">'
            f"{esc(label)}<title>{esc(title)}</title></text>"
        )
        for group in _groups(items, scale) if merge else [[item] for item in items]:
            parts.append(_bar(group, scale, y + pad, lane_h - 2 * pad))
            bars += 1
        parts.append("</g>")
    parts.append("</svg>")
    merged = f" Beyond {MAX_BARS:,} items, neighbouring bars of one outcome merge: {bars:,} bars." if merge else ""
    legend = "".join(
        f'<span><span class="dot s-{key}"></span> {esc(label)}</span>'
        for key, label in LABELS.items()
        if report.count(key)
    )
    return "".join([
        f'<section class="card" id="timeline"><h2>Timeline <span class="muted">({len(started):,} items on '
        f"{count} lane{'s' if count != 1 else ''}, seconds from the run's start)</span></h2>",
        '<div class="timeline-wrap">', *parts, "</div>",
        f'<div class="legend">{legend}<span>Hover a bar for its times, click it for its log.{merged}</span></div>',
        _never_started(report), "</section>",
    ])  # fmt: skip


def _lanes(started: list[ItemView]) -> list[tuple[str, str, list[ItemView]]]:
    """(label, tooltip, items in start order) per lane: one per worker, or packed beyond MAX_LANES."""
    by_pid: dict[tuple[str | None, int | None], list[ItemView]] = {}
    for item in sorted(started, key=lambda item: (item.start, item.offset)):
        by_pid.setdefault((item.worker, item.pid), []).append(item)
    if len(by_pid) <= MAX_LANES:
        return [(_lane_label(worker, pid), _lane_title([(worker, pid)], items), items)
                for (worker, pid), items in by_pid.items()]
    # Too many pids to give each a lane (workers restarted often): a worker that started after
    # another ended shares its lane, first fit, which needs as many lanes as workers ever ran at once.
    packed: list[tuple[list[float], list[tuple[str | None, int | None]], list[ItemView]]] = []
    for worker, items in by_pid.items():
        first, last = items[0].start or 0.0, max(item.end or 0.0 for item in items)
        lane = next((lane for lane in packed if lane[0][0] <= first), None)
        if lane is None:
            lane = ([last], [], [])
            packed.append(lane)
        lane[0][0] = last
        lane[1].append(worker)
        lane[2].extend(items)
    return [(f"{len(pids)} pids", _lane_title(pids, items), items) for _, pids, items in packed]


def _lane_label(worker: str | None, pid: int | None) -> str:
    where = f"pid {pid}" if pid else "pid ?"
    return where if worker is None else f"{worker.split('://')[-1]} {where}"


def _lane_title(pids: list[tuple[str | None, int | None]], items: list[ItemView]) -> str:
    busy = sum(item.duration or 0.0 for item in items)
    names = ", ".join(_lane_label(worker, pid) for worker, pid in pids[:12]) + (" …" if len(pids) > 12 else "")
    return f"worker {names}: {len(items):,} items, busy {seconds(busy)}"


def _groups(items: list[ItemView], scale) -> list[list[ItemView]]:
    """Consecutive items of one outcome with no visible gap between them, at most MERGE_WIDTH wide."""
    groups: list[list[ItemView]] = []
    left = right = 0.0
    for item in items:
        x0, x1 = scale(item.start or 0.0), scale(item.end or item.start or 0.0)
        last = groups[-1] if groups else None
        if last and last[0].outcome == item.outcome and x0 - right <= MERGE_GAP and x1 - left <= MERGE_WIDTH:
            last.append(item)
            right = max(right, x1)
        else:
            groups.append([item])
            left, right = x0, x1
    return groups


def _bar(group: list[ItemView], scale, y: float, h: float) -> str:
    first = group[0]
    x = scale(first.start or 0.0)
    end = max(item.end if item.end is not None else item.start or 0.0 for item in group)
    width = max(scale(end) - x, MIN_BAR)
    outcome, label = first.outcome, LABELS[first.outcome]
    if len(group) == 1:
        attempt = ""  # issue 19: a retried item has a bar per attempt
        if first.attempt > 1 or first.retried:
            attempt = f" · attempt {first.attempt}" + (", retried" if first.retried else "")
        title = f"item {first.offset}{attempt} · {label} · pid {first.pid or '?'}\nstarted +{first.start:.3f} s, ran "
        title += seconds(first.duration) + (f"\n{first.error_line}" if first.error_type else "")
        extra, css = "", "bar"
    else:
        slowest = max(group, key=lambda item: item.duration or 0.0)
        title = (f"{len(group):,} items {label}, +{first.start:.3f} s to +{end:.3f} s\n"
                 f"slowest: item {slowest.offset}, {seconds(slowest.duration)} (click to see its log)")  # fmt: skip
        first, extra, css = slowest, f' data-items="{len(group)}"', "bar merged"
    return (
        f'<rect class="{css} s-{outcome}" data-offset="{first.offset}" data-status="{outcome}"{extra} '
        f'x="{x:.1f}" y="{y:g}" width="{width:.1f}" height="{h:g}" rx="{min(3.0, h / 4):g}">'
        f"<title>{esc(title)}</title></rect>"
    )


def _axis(span: float, scale, top: float, bottom: float) -> str:
    """Vertical grid lines with labels in seconds, at 1, 2, 2.5 or 5 times a power of ten."""
    raw = span / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [i * step for i in range(int(span / step + 1e-9) + 1)]
    lines = [
        f'<line x1="{scale(t):.1f}" y1="{top}" x2="{scale(t):.1f}" y2="{bottom + 4}"/>'
        f'<text x="{scale(t):.1f}" y="{bottom + 17}" text-anchor="middle">{round(t, 6):g}</text>'
        for t in ticks
    ]
    title = (
        f'<text class="axis-title" x="{X1}" y="{bottom + 32}" text-anchor="end">seconds since the run started</text>'
    )
    return f'<g class="grid">{"".join(lines)}</g>{title}'


def _never_started(report: Report) -> str:
    """Items with no bar (cancelled, or ended before their worker said it started), as chips."""
    waiting: dict[str, list[ItemView]] = {}
    for item in report.items:
        if item.start is None:
            waiting.setdefault(item.outcome, []).append(item)
    rows = []
    for outcome, items in waiting.items():
        chips = "".join(
            f'<a class="chip s-{outcome}" href="#item-{item.offset}" data-offset="{item.offset}" '
            f'data-status="{outcome}" title="item {item.offset}">{item.offset}</a>'
            for item in items[:MAX_CHIPS]
        )
        more = f' <span class="muted">and {len(items) - MAX_CHIPS:,} more</span>' if len(items) > MAX_CHIPS else ""
        label = esc(LABELS[outcome])
        rows.append(f'<div class="never"><b>Never started</b> · {len(items):,} {label}: {chips}{more}</div>')
    return "".join(rows)
