"""The HTML report (issue 8): structure of generated pages, escaping, limits, the command.

Pages are made from real recorded runs (``fixtures/report_jobs.py``) and parsed with
``html.parser``: the numbers a person reads (lanes, bars, colours, counts) are checked
against the recording itself, read through ``mpmq.recording``. The real-browser test is
``test_report_browser.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.report_jobs import SCRIPT, record_every_outcome, record_tiny
from mpmq.recording import RunInfo, open_recording
from replay.report import Report, render, render_report, write_report
from replay.report import data as report_data
from replay.report import timeline as report_timeline
from replay.report.assets import CSS
from replay.report.command import report as report_command
from replay.report.data import ItemView, LogLine, clean

ROOT = Path(__file__).resolve().parent.parent
FORMAT_1 = ROOT / "fixtures" / "recordings" / "format-1.db"
OUTCOMES = {"mpmq.errors.WorkerDied": "crashed", "mpmq.errors.ItemTimeout": "timeout",
            "mpmq.errors.ItemCancelled": "cancelled"}  # fmt: skip
WORST_CASE_LIMIT = 9_000_000  # bytes, for any run (see replay/report/page.py's docstring)
SIZE_LIMIT_5000 = 3_000_000  # bytes; measured 1.7 MB (the figure in the docstring of replay/report/page.py)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <title> and <template>."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.titles: list[str] = []
        self.templates: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("title", "template"):
            self._open.append((tag, attrs.get("id")))
            if tag == "title":
                self.titles.append("")
            else:
                self.templates[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data):
        for tag, ident in self._open:
            if tag == "title":
                self.titles[-1] += data
            else:
                self.templates[ident] += data

    def find(self, tag: str, cls: str | None = None) -> list[dict]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]


def expected_outcome(item) -> str:
    if item.status == "succeeded":
        return "succeeded"
    return OUTCOMES.get(item.error_type, "failed") if item.status == "failed" else item.status


@pytest.fixture(scope="module")
def every_outcome(tmp_path_factory):
    """(recording, page, items): one run in which every outcome happens (fixtures/report_jobs.py)."""
    path = tmp_path_factory.mktemp("report") / "run.db"
    record_every_outcome(path)
    with open_recording(path) as recording:
        items = recording.items()
    return path, render_report(path), items


def test_one_lane_per_worker_pid_and_one_bar_per_started_item(every_outcome):
    _, page, items = every_outcome
    started = [item for item in items if item.started_at is not None]
    tags = Tags(page)
    assert len(tags.find("g", "lane")) == len({item.pid for item in started})
    bars = tags.find("rect", "bar")
    assert sorted(int(bar["data-offset"]) for bar in bars) == [item.offset for item in started]
    assert not tags.find("rect", "merged")


def test_each_bar_is_coloured_by_its_outcome(every_outcome):
    _, page, items = every_outcome
    bars = {int(bar["data-offset"]): bar for bar in Tags(page).find("rect", "bar")}
    seen = set()
    for item in items:
        outcome = expected_outcome(item)
        seen.add(outcome)
        if item.offset in bars:
            assert f"s-{outcome}" in bars[item.offset]["class"].split()
            assert bars[item.offset]["data-status"] == outcome
    assert seen == {"succeeded", "failed", "crashed", "timeout", "cancelled"}
    colours = dict(re.findall(r"\.s-(\w+),\[data-status=\w+\]\{--c:(#[0-9a-f]{6})\}", CSS))
    assert len({colours[outcome] for outcome in seen}) == len(seen)  # five outcomes, five colours


def test_cancelled_items_have_no_bar_but_a_chip_each(every_outcome):
    _, page, items = every_outcome
    cancelled = [item.offset for item in items if expected_outcome(item) == "cancelled"]
    chips = Tags(page).find("a", "s-cancelled")
    assert cancelled and sorted(int(chip["data-offset"]) for chip in chips) == cancelled
    assert "Never started" in page


def test_hover_shows_offset_and_duration_and_the_axis_is_in_seconds(every_outcome):
    _, page, items = every_outcome
    durations = {item.offset: item.duration for item in items}
    bars = re.findall(r'<rect class="bar[^"]*" data-offset="(\d+)"[^>]*><title>([^<]*)</title>', page)
    assert bars
    for offset, title in bars:
        assert title.startswith(f"item {offset} ·")
        assert report_data.seconds(durations[int(offset)]) in title
    ticks = [float(t) for t in re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">([\d.]+)</text>', page)]
    assert ticks[0] == 0 and ticks == sorted(ticks) and len(ticks) >= 3
    assert "seconds since the run started" in page


def test_a_logged_script_tag_is_shown_as_text(every_outcome):
    _, page, _ = every_outcome
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(re.findall(r"<script", page, re.I)) == 1  # ours, at the end
    assert [t for t, _ in Tags(page).tags].count("script") == 1
    (csp,) = [a["content"] for a in Tags(page).find("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp  # and it could not run anyway


def test_summary_counts_failures_and_logs(every_outcome):
    path, page, items = every_outcome
    with open_recording(path) as recording:
        run = recording.run()
    assert f'<span class="pill badge s-{run.status}">{run.status}</span>' in page
    counts = dict(re.findall(r'<span class="count s-(\w+)"><span class="dot"></span>[\w ]+ <b>([\d,]+)</b>', page))
    expected: dict[str, int] = {}
    for item in items:
        expected[expected_outcome(item)] = expected.get(expected_outcome(item), 0) + 1
    assert {k: int(v) for k, v in counts.items()} == expected
    failures = page[page.index('id="failures"') :]
    assert "raise ValueError" in failures and "cannot convert 2" in failures  # the traceback
    assert "SIGKILL" in failures and "timed out after 0.8 s" in failures
    assert "item 2: the input is bad, giving up" in failures  # its last log lines
    templates = Tags(page).templates
    assert "item 3: step 1 of 2" in templates["log-3"] and SCRIPT in templates["log-3"]  # text, unescaped once
    assert "Traceback" in templates["log-2"]


def test_5000_items_render_small_with_lanes_kept_and_bars_merged(tmp_path):
    path = tmp_path / "big.db"
    record_tiny(path, 5_000)
    began = time.perf_counter()
    out = write_report(path, tmp_path / "big.html")
    elapsed = time.perf_counter() - began
    size = out.stat().st_size
    print(f"5,000 items: {size / 1e6:.2f} MB in {elapsed:.2f} s")
    assert size < SIZE_LIMIT_5000 and elapsed < 10
    tags = Tags(out.read_text())
    assert len(tags.find("g", "lane")) == 2
    bars = tags.find("rect", "bar")
    assert len(bars) < 2_000 and sum(int(bar.get("data-items", 1)) for bar in bars) == 5_000
    assert len(tags.find("tr")) == 5_001  # the header and one row per item


def test_logs_are_capped_in_all_failures_first_then_even_shares(monkeypatch):
    def item(offset, outcome, lines):
        logs = [LogLine(float(i), 20, "x", f"{i:06d}") for i in range(lines)]  # 6 + 1 + markup each
        return ItemView(offset, outcome, 1, 0.0, 1.0, "", "", None, None, "", lines, logs)

    size = 6 + 1 + report_data.LINE_MARKUP
    items = [item(0, "failed", 40), item(1, "succeeded", 5), item(2, "succeeded", 40), item(3, "succeeded", 40)]
    monkeypatch.setattr(report_data, "LOG_CHARS", 60 * size)
    report_data._share_log_lines(items)
    kept = [len(i.logs) for i in items]
    assert kept == [40, 5, 7, 8]  # the failure whole, the small log whole, even shares of the rest
    assert items[2].logs[-1].message == "000039"  # the last lines are the ones kept
    assert sum(kept) * size <= 60 * size


def test_tracebacks_are_capped_in_all_keeping_their_end(monkeypatch):
    items = [ItemView(i, "failed", 1, 0.0, 1.0, "", "", "E", "m", "x" * 900 + f"Error {i}\n") for i in range(10)]
    monkeypatch.setattr(report_data, "TRACEBACK_CHARS", 1_000)
    report_data._share_tracebacks(items)
    assert {item.traceback_kept for item in items} == {100}
    page = render(Report("run.db", RunInfo(id=1, status="failed"), [1], 0.0, 1.0, items))
    log = Tags(page).templates["log-3"]
    assert "Error 3" in log and "characters cut" in log


def test_the_caps_bound_a_page_whatever_the_run_logs():
    # 5,000 failed items, each with 30 long lines of "<&>", a long traceback and input, and long
    # errors: everything expands when escaped. No processes: ItemViews as collect() makes them.
    message = ("<&>" * 200)[: report_data.MAX_MESSAGE_CHARS]
    traceback = ('File "x.py", line 1, in <module> & <b>\n' * 400)[-report_data.MAX_TRACEBACK_CHARS :]
    text = "<&" * 500
    items = [
        ItemView(i, "failed", 100 + i % 8, i * 0.01, i * 0.01 + 0.5, text, text, "pkg.Error", text, traceback, 500,
                 [LogLine(0.1, 40, "a.long.logger.name", message)] * 30)
        for i in range(5_000)
    ]  # fmt: skip
    report_data._share_log_lines(items)
    report_data._share_tracebacks(items)
    page = render(Report("run.db", RunInfo(id=1, status="failed"), [1], 0.0, 60.0, items))
    assert len(page.encode()) < WORST_CASE_LIMIT  # measured 7.4 MB


def test_many_short_lived_workers_share_lanes():
    def item(offset, pid, start):
        return ItemView(offset, "succeeded", pid, start, start + 0.9, "", "", None, None, "")

    items = [item(i, 1000 + i, float(i // 2)) for i in range(80)]  # 80 pids, two at a time
    lanes = report_timeline._lanes(items)
    assert len(lanes) == 2 and sum(len(lane[2]) for lane in lanes) == 80
    assert len(report_timeline._lanes(items[:10])) == 10  # few pids: one lane each


def test_recorded_text_is_made_printable():
    assert clean("\x1b[31mred\x1b[0m and \x00 nul") == "red and \\x00 nul"
    assert clean("x" * 50, 10).startswith("x" * 10 + "… [40 more")
    text = "".join(f"line {i}\n" for i in range(30))
    # Tracebacks keep their end, where the exception is.
    assert clean(text, 16, tail=True) == f"[{len(text) - 16} characters cut]\nline 28\nline 29\n"


def test_an_unfinished_run_and_an_empty_run_still_render():
    # A recording whose parent died: the run is still "running", one item was running, one never ran.
    run = RunInfo(id=1, status="running", started_at=100.0, recording_error="disk full")
    items = [ItemView(0, "unfinished", 7, 0.5, 2.0, "", "", None, None, ""),
             ItemView(1, "pending", None, None, None, "", "", None, None, "")]  # fmt: skip
    page = render(Report("run.db", run, [1], 100.0, 2.0, items))
    tags = Tags(page)
    assert [bar["data-status"] for bar in tags.find("rect", "bar")] == ["unfinished"]
    assert [chip["data-offset"] for chip in tags.find("a", "chip")] == ["1"]
    assert "still going" in page and "disk full" in page
    empty = render(Report("run.db", RunInfo(id=2, status="succeeded"), [2], 0.0, 0.0, []))
    assert not Tags(empty).find("rect", "bar") and "0 items on 0 lanes" in empty


def test_a_colleagues_recording_renders_without_importing_its_code(tmp_path):
    # format-1.db names convert:convert, which does not exist here; nothing of the run is imported.
    code = (
        "import sys; from replay.report import render_report; page = render_report(sys.argv[1]);"
        "assert 'convert:convert' in page; assert 'convert' not in sys.modules and 'fixtures' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code, str(FORMAT_1)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    tags = Tags(render_report(FORMAT_1, run=1))
    assert len(tags.find("rect", "bar")) == 4 and len(tags.find("g", "lane")) == 2
    assert "[redacted]" in render_report(FORMAT_1, run=1)


# -- the command ------------------------------------------------------------------------------


def test_report_command_writes_the_page(tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, [str(FORMAT_1), "-o", str(out), "--run", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.read_text().startswith("<!DOCTYPE html>")
    assert "Example:" in report_command.help and "mpmq-replay report" in report_command.help.split("Example:")[1]


def test_report_command_default_output_is_next_to_the_recording(tmp_path):
    copy = tmp_path / "run.db"
    copy.write_bytes(FORMAT_1.read_bytes())
    result = subprocess.run([sys.executable, "-m", "replay.report.command", str(copy)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run.html").exists()


def test_mpmq_replay_report_as_a_real_subprocess(tmp_path):
    command = [str(Path(sys.executable).parent / "mpmq-replay"), "report"]
    out = tmp_path / "report.html"
    result = subprocess.run([*command, str(FORMAT_1), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "run 2" in out.read_text().lower()  # the latest run by default
    bad = subprocess.run([*command, str(ROOT / "README.md")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a SQLite database" in bad.stderr


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", "missing.db: no such file"),
        ("not sqlite", "is not a SQLite database"),
        ("unknown run", "has no run 9 (its runs: 1, 2)"),
        ("no such directory", "no such directory"),
    ],
)
def test_report_command_errors_are_one_line_exit_2(case, words, tmp_path):
    path, out = str(FORMAT_1), str(tmp_path / "out.html")
    args = []
    if case == "missing":
        path = str(tmp_path / "missing.db")
    elif case == "not sqlite":
        path = str(tmp_path / "notes.db")
        Path(path).write_text("not a database\n" * 20)
    elif case == "unknown run":
        args = ["--run", "9"]
    else:
        out = str(tmp_path / "nowhere" / "out.html")
    result = CliRunner().invoke(report_command, [path, "-o", out, *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.output
    assert not Path(out).exists()
