"""When a recording commits (issue 18): the run's row goes in once the workers have started
(``START_DELAY`` after the recorder's thread starts while the first events are a few lines;
at once for items in chunks, a burst of events or the run's end); events wait for the first
commit, due ``COMMIT_INTERVAL`` after the first of them; in a file
created for the run that commit is followed by the switch to WAL mode, and a run over before
it is written whole as it ends, never in WAL mode. A full buffer before the first commit is
turned into rows at once and committed with it.

A real recorder and its thread, real files, plain SQL.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing

from mpmq.events import Done, Log, Ran, Result, Started
from mpmq.recording import open_recording, writer
from mpmq.recording.writer import COMMIT_INTERVAL, MAX_BUFFER, START_BURST, START_DELAY, Recorder
from mpmq.state import RunState, reduce

T0 = 1_700_000_000.0
DEADLINE = 10.0  # seconds any wait below may take on a slow machine


def journal_mode(path: str) -> str:
    """The file's journal mode as its header says (bytes 18-19: 1 rollback, 2 WAL)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return {b"\x01\x01": "rollback", b"\x02\x02": "wal"}[header[18:20]]


def count(path: str, query: str) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(query).fetchone()[0]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s"
        time.sleep(0.005)


def logs(first_seq: int, n: int) -> list:
    return [Log(offset=0, pid=1, time=T0, level=20, logger="w", message=f"line {first_seq + i}") for i in range(n)]


def started_recorder(path: str) -> tuple[Recorder, RunState]:
    state = RunState.new(1)
    header = {"item_count": 1, "function": "tests:f", "handler": "tests:H"}
    rec = Recorder.open(path, lambda: header, [{"n": 0}], {}, start_later=True)
    rec.write_in_background(state)
    return rec, state


def test_a_longer_run_commits_within_the_interval_then_goes_on_in_wal_mode(tmp_path):
    path = str(tmp_path / "long.db")
    rec, state = started_recorder(path)
    wait_for(lambda: count(path, "SELECT count(*) FROM runs") == 1, "run row")  # START_DELAY on
    assert journal_mode(path) == "rollback"
    first = Started(offset=0, pid=1, time=T0)
    rec.append_batch(0, T0, [first])
    reduce(state, first)
    began = time.monotonic()
    wait_for(lambda: rec.committed == 1, "first commit")
    assert time.monotonic() - began >= COMMIT_INTERVAL * 0.9  # due after the interval, not before
    wait_for(lambda: journal_mode(path) == "wal", "switch to WAL mode after the first commit")
    rec.append_batch(1, T0, logs(1, 3))  # readers go on reading while it writes
    wait_for(lambda: count(path, "SELECT count(*) FROM events") == 4, "second commit")
    done = Done(offset=0, pid=1, time=T0)
    rec.append_batch(4, T0, [done])
    reduce(state, done)
    rec.finish("succeeded", state)
    assert rec.failure is None and journal_mode(path) == "rollback"
    assert sorted(os.listdir(tmp_path)) == ["long.db"]
    with open_recording(path) as recording:
        assert [seq for seq, _, _ in recording.events()] == list(range(5))
        assert recording.run().status == "succeeded"


def test_a_full_buffer_before_the_first_commit_becomes_rows_then_and_a_short_run_goes_in_whole(tmp_path,
                                                                                             monkeypatch):
    monkeypatch.setattr(writer, "COMMIT_INTERVAL", 60.0)  # the first commit is not due during this test
    path = str(tmp_path / "short.db")
    rec, state = started_recorder(path)
    wait_for(lambda: count(path, "SELECT count(*) FROM runs") == 1, "run row")
    events = logs(0, 3 * MAX_BUFFER)
    for start in range(0, len(events), 500):
        rec.append_batch(start, T0, events[start : start + 500])
    wait_for(lambda: rec._built, "rows built before the first commit")
    assert rec.committed == 0 and count(path, "SELECT count(*) FROM batches") == 0
    rec.finish("succeeded", state)
    assert rec.failure is None and rec.committed == len(events)
    assert journal_mode(path) == "rollback" and sorted(os.listdir(tmp_path)) == ["short.db"]
    with open_recording(path) as recording:
        got = [(seq, event.message) for seq, _, event in recording.events()]
    assert got == [(seq, f"line {seq}") for seq in range(len(events))]


def test_the_file_is_opened_after_a_start_delay_while_the_first_events_are_a_few_lines(tmp_path, monkeypatch):
    assert 0 < START_DELAY < COMMIT_INTERVAL  # events that wait for it are still committed in time
    monkeypatch.setattr(writer, "START_DELAY", 60.0)  # far longer than any wait below
    runs = "SELECT count(*) FROM runs"
    # A few lines: the file waits (the lines must reach their handlers at once); START_BURST
    # events in all open it.
    path = str(tmp_path / "lines.db")
    rec, state = started_recorder(path)
    rec.append_batch(0, T0, [Started(offset=0, pid=1, time=T0)])
    rec.append_batch(1, T0, logs(1, 3))
    time.sleep(0.3)  # three times what opening the file takes on a slow machine
    assert count(path, runs) == 0  # still the empty recording the file starts as
    rec.append_batch(4, T0, logs(4, START_BURST))
    wait_for(lambda: count(path, runs) == 1, "run row once START_BURST events waited")
    rec.finish("succeeded", state)
    assert rec.failure is None and rec.committed == 4 + START_BURST
    # Items that finished in a chunk: a run of quick items, which needs its recorder at once.
    path = str(tmp_path / "chunk.db")
    rec, state = started_recorder(path)
    chunk = Ran(offset=0, pid=1, time=T0, offsets=[0], starts=[T0], ends=[T0], values=[None])
    rec.append_batch(0, T0, [chunk])
    wait_for(lambda: count(path, runs) == 1, "run row once a chunk of items arrived")
    reduce(state, chunk)
    rec.finish("succeeded", state)
    assert rec.failure is None
    with open_recording(path) as recording:
        assert [type(event) for _, _, event in recording.events()] == [Started, Result, Done]
    # The run ends during the delay: it is written whole as it ends, without waiting.
    path = str(tmp_path / "ended.db")
    rec, state = started_recorder(path)
    events = [Started(offset=0, pid=1, time=T0), Done(offset=0, pid=1, time=T0)]
    rec.append_batch(0, T0, events)
    for event in events:
        reduce(state, event)
    began = time.monotonic()
    rec.finish("succeeded", state)
    assert time.monotonic() - began < DEADLINE and rec.failure is None
    with open_recording(path) as recording:
        assert recording.run().status == "succeeded" and len(list(recording.events())) == 2
