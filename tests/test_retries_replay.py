"""Retried attempts as the offline tools show them (issue 19): ``summary``, ``logs``,
``events`` and the report's timeline (one bar per attempt), from a real recorded run."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from fixtures import retry_workers
from mpmq import MPmq
from replay.cli import main
from replay.report import render_report


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Item 0 fails twice then succeeds, item 1 fails on all three attempts, item 2 is fine."""
    folder = tmp_path_factory.mktemp("retried")
    data = [
        {"counter": str(folder / "0"), "fails": 2, "value": 7},
        {"counter": str(folder / "1"), "fails": 9},
        {"counter": str(folder / "2"), "value": 3},
    ]
    db = str(folder / "run.db")
    MPmq(retry_workers.flaky, process_data=data, retries=2, processes_to_start=1).execute(record=db)
    return db


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_summary_lists_each_retried_item_and_why_each_attempt_failed(recorded):
    out = invoke("summary", recorded)

    assert "  retried:   2 items, 4 failed attempts run again" in out
    retried = out.split("retried items:\n", 1)[1].split("\n\n", 1)[0]
    lines = [re.sub(r"\(pid \d+\)", "(pid N)", line) for line in retried.splitlines()]
    assert lines == [
        "  item 0: succeeded on attempt 3",
        "    attempt 1 failed (pid N): builtins.ValueError: call 1 failed",
        "    attempt 2 failed (pid N): builtins.ValueError: call 2 failed",
        "  item 1: failed on attempt 3",
        "    attempt 1 failed (pid N): builtins.ValueError: call 1 failed",
        "    attempt 2 failed (pid N): builtins.ValueError: call 2 failed",
    ]
    assert "item 1 failed (pid " in out and "builtins.ValueError: call 3 failed" in out


def test_logs_say_which_attempt_each_line_belongs_to(recorded):
    out = invoke("logs", recorded, "--offset", "0")

    lines = [line.split(" ", 1)[1] for line in out.splitlines()]  # without the time
    assert lines == [
        "[0] INFO fixtures.retry_workers: call 1",
        "[0] WARNING mpmq: attempt 1 failed, retrying: builtins.ValueError: call 1 failed",
        "[0, attempt 2] INFO fixtures.retry_workers: call 2",
        "[0, attempt 2] WARNING mpmq: attempt 2 failed, retrying: builtins.ValueError: call 2 failed",
        "[0, attempt 3] INFO fixtures.retry_workers: call 3",
    ]
    assert "WARNING" not in invoke("logs", recorded, "--offset", "2")
    assert "attempt" not in invoke("logs", recorded, "--level", "error")


def test_events_carry_the_attempt_of_each_start_and_the_retrying_mark(recorded):
    out = invoke("events", recorded, "--offset", "1", "--kind", "started", "--kind", "error")

    story = [(e["kind"], e.get("attempt"), e.get("retrying")) for e in map(json.loads, out.splitlines())]
    assert story == [("started", 1, None), ("error", None, True), ("started", 2, None), ("error", None, True),
                     ("started", 3, None), ("error", None, False)]


def test_the_report_draws_one_bar_per_attempt(recorded):
    page = render_report(recorded)

    bars = re.findall(r'<rect class="bar[^"]*" data-offset="(\d+)" data-status="(\w+)"[^>]*><title>([^<]*)</title>',
                      page)
    per_item = {offset: [(status, title.split("\n")[0]) for o, status, title in bars if o == offset]
                for offset in "012"}
    assert [status for status, _ in per_item["0"]].count("failed") == 2 and len(per_item["0"]) == 3
    assert [status for status, _ in per_item["1"]] == ["failed"] * 3
    assert len(per_item["2"]) == 1
    titles = sorted(re.sub(r" · pid \d+", "", title) for _, title in per_item["0"])
    assert titles == ["item 0 · attempt 1, retried · failed", "item 0 · attempt 2, retried · failed",
                      "item 0 · attempt 3 · succeeded"]
