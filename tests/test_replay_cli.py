"""``mpmq-replay``, always as a real subprocess, on real recordings (issue 5).

Recordings are made by running real MPmq jobs with ``execute(record=...)``: in this process,
or through ``python -m fixtures.replay_jobs`` when the live run needs an interpreter of its own
(another time zone, a SIGKILL, a function in ``__main__``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

import replay
from fixtures import tamper
from fixtures.replay_cli import ROOT, cli, one_error_line
from fixtures.replay_workers import exploit, work
from mpmq import MPmq
from mpmq.events import AnyEvent

FORMAT_1 = ROOT / "fixtures" / "recordings" / "format-1.db"
HANDLERS = "fixtures.replay_handlers"


def job(name: str, db: Path, handler: str, tz: str, calls: Path, start_method: str = "fork") -> None:
    """A live recorded run in an interpreter of its own, in time zone ``tz``."""
    subprocess.run(
        [sys.executable, "-m", "fixtures.replay_jobs", name, str(db), "--handler", handler,
         "--start-method", start_method],
        cwd=ROOT, check=True, timeout=30, env={**os.environ, "TZ": tz, "REPLAY_CALLS": str(calls)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """Six items on two workers, item 3 fails; logs at every level, one spanning two lines."""
    db = tmp_path_factory.mktemp("rec") / "run.db"
    MPmq(work, process_data=[{"n": n} for n in range(6)], shared_data={"bad": 3}, processes_to_start=2,
         context="fork").execute(record=str(db))  # fmt: skip
    return db


@pytest.fixture
def copy(recorded, tmp_path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copy(recorded, target)
    return target


# --- replay ---------------------------------------------------------------------------------


def test_default_replay_prints_messages_results_then_summary(recorded):
    result = cli(str(recorded))
    assert result.returncode == 0, result.stderr  # a failed run still replays completely
    out = result.stdout
    assert "[3] INFO: item 3 starting\n" in out
    assert "[3] WARN: odd item 3\n    second line\n" in out
    assert "[3] ERROR: bad item 3\n" in out
    assert "[0] result: {'n': 0, 'square': 0}\n" in out
    assert f"run 1 of {recorded}: failed" in out
    assert "items:     6: 5 succeeded, 1 failed, 0 running, 0 pending" in out
    assert "item 3 failed" in out and 'raise ValueError(f"bad item {n}")' in out
    assert cli("replay", str(recorded)).stdout == out  # the explicit command is the same


def test_offset_until_and_speed(recorded):
    only = cli(str(recorded), "--offset", "1", "--offset", "4")
    assert {line[:3] for line in only.stdout.split("\n\n")[0].splitlines() if line.startswith("[")} == {"[1]", "[4]"}
    assert "replayed only: items 1, 4" in only.stdout
    until = cli("--until", "2", str(recorded))  # options may come before the file
    assert until.returncode == 0, until.stderr
    # live seqs start at 1
    assert "events:    2" in until.stdout and "replayed only: events up to seq 2" in until.stdout
    assert cli(str(recorded), "--speed", "1000").returncode == 0
    bad_speed = cli(str(recorded), "--speed", "0")
    assert bad_speed.returncode == 2 and "--speed" in bad_speed.stderr


def test_speed_paces_the_replay(tmp_path):
    db = tmp_path / "paced.db"
    MPmq(work, process_data=[{"n": 0, "delay": 0.3}], processes_to_start=1).execute(record=str(db))
    stamps = [s.received_at for s in replay.load(db).stamped]
    span = stamps[-1] - stamps[0]
    assert span >= 0.25
    started = time.monotonic()
    assert cli(str(db), "--speed", "2").returncode == 0
    assert time.monotonic() - started >= span / 2


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("handler", ["StringCollector", "TypedCollector"])
def test_handler_calls_equal_live_calls(tmp_path, handler, start_method):
    db, live, again = tmp_path / "run.db", tmp_path / "live.json", tmp_path / "replayed.json"
    job("mixed", db, handler, "UTC0", live, start_method)
    result = cli(str(db), "--handler", f"{HANDLERS}:{handler}", env={"REPLAY_CALLS": str(again)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the user's handler is the display
    assert json.loads(again.read_text()) == json.loads(live.read_text()) != []


def test_clock_reads_live_receive_times_in_the_live_time_zone(tmp_path):
    db, live, again = tmp_path / "run.db", tmp_path / "live.json", tmp_path / "replayed.json"
    job("mixed", db, "TimeReader", "IST-5:30", live)  # live: UTC+5:30
    result = cli(str(db), "--handler", f"{HANDLERS}:TimeReader", env={"REPLAY_CALLS": str(again), "TZ": "EST+5"})
    assert result.returncode == 0, result.stderr
    replayed, lived = json.loads(again.read_text()), json.loads(live.read_text())
    stamps = replay.load(db).stamped
    kinds = [[type(s.event).__name__, s.event.offset] for s in stamps]
    assert [c[:2] for c in replayed] == [c[:2] for c in lived] == kinds
    india = timezone(timedelta(hours=5, minutes=30))
    for call, live_call, stamp in zip(replayed, lived, stamps):
        assert call[2] == pytest.approx(stamp.received_at, abs=1e-6)  # time.time()
        now = datetime.fromisoformat(call[3])  # datetime.now(), in the live time zone
        assert abs(now - datetime.fromtimestamp(stamp.received_at, india).replace(tzinfo=None)) <= timedelta(
            microseconds=1
        )
        assert abs(now - datetime.fromisoformat(live_call[3])) < timedelta(seconds=1)
    unfrozen = cli(str(db), "--handler", f"{HANDLERS}:TimeReader", "--no-clock", env={"REPLAY_CALLS": str(again)})
    assert unfrozen.returncode == 0
    assert min(c[2] for c in json.loads(again.read_text())) > max(s.received_at for s in stamps)


def test_zero_argument_factory_handler(recorded, tmp_path):
    calls = tmp_path / "calls.json"
    result = cli(str(recorded), "--handler", f"{HANDLERS}:make_collector", env={"REPLAY_CALLS": str(calls)})
    assert result.returncode == 0, result.stderr
    assert [3, "ERROR: bad item 3"] in json.loads(calls.read_text())


def test_handler_that_raises_exits_1_with_its_traceback(recorded):
    result = cli(str(recorded), "--handler", f"{HANDLERS}:Raising")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "handler bug at message" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"Error: handler {HANDLERS}:Raising raised at seq ")


def test_divergence_exits_1_naming_the_seq(copy):
    with sqlite3.connect(copy) as conn:
        tamper.set_item_field(conn, 3, "status", "succeeded")
    result = cli(str(copy))
    one_error_line(result, 1, str(copy), "replay diverged at seq", "(item 3)")


def test_untrusted_pickle_is_never_loaded_without_allow_pickle(tmp_path):
    db, marker = tmp_path / "run.db", tmp_path / "pwned"
    MPmq(exploit, process_data=[{"path": str(marker)}]).execute(record=str(db), record_pickle=True)
    marker.unlink()  # the live parent unpickled its own worker's result; a replay must not
    for command in ([str(db)], ["summary", str(db)], ["events", str(db), "--pickles"], ["logs", str(db)]):
        result = cli(*command)
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), command
    assert f"[0] result: <not unpickled: Touched({str(marker)!r})>" in cli(str(db)).stdout
    assert cli(str(db), "--allow-pickle").returncode == 0
    assert marker.exists()  # the test has teeth: allowed, the pickle does run


def test_killed_parent_recording_replays_and_is_incomplete(tmp_path):
    db = tmp_path / "run.db"
    live = subprocess.Popen(
        [sys.executable, "-m", "fixtures.replay_jobs", "slow", str(db), "--handler", "ReadySignal"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert live.stdout.readline() == "READY\n"
        time.sleep(0.5)  # the recorder commits every 0.1 s
        live.send_signal(signal.SIGKILL)
        live.wait(10)
    finally:
        live.kill()
        live.stdout.close()
    result = cli(str(db))
    assert result.returncode == 0, result.stderr
    assert "[0] result: {'n': 0, 'square': 0}" in result.stdout
    assert "INCOMPLETE (recorded status 'running')" in result.stdout
    summary = cli("summary", str(db))
    assert summary.returncode == 0 and "INCOMPLETE" in summary.stdout
    assert "never finished: items 1" in summary.stdout
    assert "running (incomplete)" in cli("runs", str(db)).stdout


# --- the other commands ---------------------------------------------------------------------


def test_runs_lists_each_run(copy):
    MPmq(work, process_data=[{"n": 1}]).execute(record=str(copy))
    result = cli("runs", str(copy))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "started", "status", "items"]
    assert lines[2].split()[0] == "1" and " failed " in lines[2]
    assert lines[3].split()[0] == "2" and " succeeded " in lines[3]


def test_summary_names_failures_with_traceback_and_last_logs(recorded):
    result = cli("summary", str(recorded))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "function:  fixtures.replay_workers:work" in out and "wall time: " in out
    assert "slowest items:" in out
    failure = out[out.index("item 3 failed") :]
    assert "ValueError: bad item 3" in failure
    assert "last log lines:" in failure and "ERROR fixtures.replay_workers: about to fail on 3" in failure


def test_logs_by_offset_and_level(recorded):
    result = cli("logs", str(recorded), "--level", "warning")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("    ")]
    assert lines and all(" WARNING " in line or " ERROR " in line for line in lines)
    assert {line.split()[1] for line in lines} == {"[1]", "[3]", "[5]"}
    only = cli("logs", str(recorded), "--offset", "2").stdout.splitlines()
    assert [line.split(" ", 2)[1:] for line in only] == [
        ["[2]", "INFO fixtures.replay_workers: item 2 starting"],
        ["[2]", "DEBUG fixtures.replay_workers: item 2 done"],
    ]
    assert cli("logs", str(recorded), "--level", "loud").returncode == 2


def test_events_export_json_lines_that_decode_as_events(recorded):
    result = cli("events", str(recorded))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [s.seq for s in replay.load(recorded).stamped]
    events = [msgspec.json.decode(line, type=AnyEvent) for line in result.stdout.splitlines()]
    assert events[0] == replay.load(recorded).events[0]
    errors = cli("events", str(recorded), "--kind", "error").stdout.splitlines()
    assert [json.loads(line)["message"] for line in errors] == ["bad item 3"]


def test_fixture_recordings_replay_identically():
    """format-1.db (fixtures/make_recordings.py): every message and result, at its recorded time."""
    result = cli(str(FORMAT_1.relative_to(ROOT)), "--run", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n\n")[0] == (
        "[0] INFO: converting 0\n"
        "[1] WARN: line one\n"
        "    line two\n"
        "[0] result: {'n': 0, 'double': 0}\n"
        "[1] result: <not unpickled: (1, 'tuple')>\n"
        "[2] ERROR: failed to convert 2\n"
        "[2] ERROR: cannot convert 2\n"
        "[3] result: None"
    )
    assert "started:   2024-05-01 14:00:00.000+02:00 (fork, 2 processes)" in result.stdout
    rerun = cli(str(FORMAT_1.relative_to(ROOT)))
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith("[0] result: {'n': 2, 'double': 4}\n")
    assert "re-run of: run 1" in rerun.stdout


def test_fixture_recording_clock(tmp_path):
    calls = tmp_path / "calls.json"
    result = cli(str(FORMAT_1), "--run", "1", "--handler", f"{HANDLERS}:TimeReader",
                 env={"REPLAY_CALLS": str(calls), "TZ": "EST+5"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    t0 = 1714564800.0
    for (_, _, now, local), event in zip(json.loads(calls.read_text()), replay.load(FORMAT_1, run=1).events):
        assert now == pytest.approx(event.time + 0.001, abs=1e-6)  # the fixture received each 1 ms later
        assert datetime.fromisoformat(local) == datetime(2024, 5, 1, 14) + timedelta(seconds=now - t0)


def test_every_command_is_documented_with_an_example():
    from replay.cli import main

    assert main.help and "Example:" in main.help
    for name, command in main.commands.items():
        assert command.help and "Example:" in command.help, name
        example = command.help.split("Example:")[1]
        assert "mpmq-replay" in example, name
    result = subprocess.run([Path(sys.executable).parent / "mpmq-replay", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Example:" in result.stdout
    for name in main.commands:
        assert "Example:" in cli(name, "--help").stdout, name


def test_version():
    result = subprocess.run([Path(sys.executable).parent / "mpmq-replay", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("mpmq-replay, version ")


# --- errors: one line on stderr, exit status 2 ----------------------------------------------


def not_sqlite(path: Path, good: Path) -> None:
    path.write_text("id,name\n1,ann\n")


def foreign(path: Path, good: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trees (id INTEGER)")
    conn.close()


def altered(sql: str, *params: Any) -> Callable[[Path, Path], None]:
    """A maker of a copy of the good recording with one statement applied."""

    def make(path: Path, good: Path) -> None:
        shutil.copy(good, path)
        with sqlite3.connect(path) as conn:
            conn.execute(sql, params)
        conn.close()

    return make


def truncated(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def garbled(path: Path, good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page after the first
    path.write_bytes(bytes(data))


def event_field(seq: int, field: str, value: Any) -> Callable[[Path, Path], None]:
    """A copy of the good recording whose event ``seq`` has ``field`` set to ``value``, in the
    batch that holds it (a recording keeps a batch's events as one JSON array, issue 18)."""
    return altered(
        "UPDATE batches SET events = json_set(events, '$[' || (? - seq) || '].' || ?, ?)"
        " WHERE seqs IS NULL AND seq <= ? AND ? < seq + count", seq, field, value, seq, seq,
    )  # fmt: skip


def event_of_item(offset: int) -> Callable[[Path, Path], None]:
    return event_field(5, "offset", offset)


BAD_FILES = {
    "missing": (lambda path, good: None, "no such file"),
    "directory": (lambda path, good: path.mkdir(), "is a directory"),
    "empty": (lambda path, good: path.write_bytes(b""), "empty SQLite database"),
    "not SQLite": (not_sqlite, "is not a SQLite database"),
    "not a recording": (foreign, "not an mpmq recording"),
    "newer format": (
        altered("UPDATE mpmq_meta SET value = '99' WHERE key = 'format_version'"), "newer than this mpmq reads"
    ),
    "truncated": (truncated, "truncated or corrupted"),
    "corrupted pages": (garbled, "truncated or corrupted"),
    "corrupted event": (event_field(5, "kind", "teleported"), "event 5 has kind 'teleported'"),
    # an offset the run does not have: the state would fail deep inside (or, -1, fold silently
    # into the last item)
    "event of no item": (event_of_item(99), "corrupted: event 5 is for item 99, but the run has 6 items"),
    "event of item -1": (event_of_item(-1), "corrupted: event 5 is for item -1, but the run has 6 items"),
    # replay sizes the run's state from the count: a crafted one must not ask for any memory
    "crafted item count": (
        altered("UPDATE runs SET item_count = ?", 10**12), "run 1 says it has 1000000000000 items, but 6 are recorded"
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_one_line_exit_2(case, recorded, tmp_path):
    make, words = BAD_FILES[case]
    path = tmp_path / "bad.db"
    make(path, recorded)
    one_error_line(cli(str(path)), 2, str(path), words)


@pytest.mark.parametrize("command", ["replay", "logs", "events"])
def test_an_offset_beyond_a_run_whose_header_has_no_count_is_refused(command, recorded, tmp_path):
    path = tmp_path / "crashed-header.db"
    altered("UPDATE runs SET item_count = NULL")(path, recorded)  # the count comes from the item rows
    one_error_line(cli(command, str(path), "--offset", "7"), 2, str(path), "has no item 7 (it has 6 items: 0 to 5)")


@pytest.mark.parametrize("command", ["summary", "logs", "events", "report"])
def test_every_reading_command_refuses_an_event_of_no_item_in_one_line(command, recorded, tmp_path):
    path = tmp_path / "bad.db"
    event_of_item(6)(path, recorded)
    one_error_line(cli(command, str(path)), 2, str(path), "event 5 is for item 6, but the run has 6 items")


@pytest.mark.parametrize("command", ["runs", "summary", "logs", "events", "rerun"])
def test_every_command_refuses_a_missing_file_in_one_line(command, tmp_path):
    missing = tmp_path / "missing.db"
    extra = ["--failed"] if command == "rerun" else []
    one_error_line(cli(command, str(missing), *extra), 2, f"{missing}: no such file")


@pytest.mark.parametrize("command", ["replay", "summary", "logs", "events", "rerun"])
def test_unknown_run_is_one_line_exit_2(command, recorded):
    extra = ["--failed"] if command == "rerun" else []
    one_error_line(cli(command, str(recorded), "--run", "9", *extra), 2, str(recorded), "has no run 9 (its runs: 1)")


@pytest.mark.parametrize(
    "spec, words",
    [
        ("no_such_module:Handler", ["cannot import handler no_such_module:Handler", "No module named"]),
        (f"{HANDLERS}:Missing", [f"cannot import handler {HANDLERS}:Missing", "no attribute 'Missing'"]),
        ("justaname", ["must be written module:attr"]),
        (f"{HANDLERS}:not_a_handler", ["returned str, not an MPmq instance"]),
    ],
)
def test_handler_that_cannot_be_loaded_is_one_line_exit_2(spec, words, recorded):
    one_error_line(cli(str(recorded), "--handler", spec), 2, *words)
