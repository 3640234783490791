"""Recordings of every released format still read, forever (issue 4; STYLE.md "Data that lives on disk").

The files under ``fixtures/recordings/`` were written once by ``fixtures/make_recordings.py`` and
are never rewritten. The expectations below are spelled out, not recomputed by the writer, so a
change to the reader or the writer that breaks an old recording fails here. When the format
changes: bump FORMAT_VERSION, add ``format-N.db`` with its own test, keep the old ones.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from fixtures import make_recordings
from mpmq.events import Done, Error, Log, Payload, Result, Started
from mpmq.payload import Unpickled, load
from mpmq.recording import open_recording
from mpmq.recording.file import APPLICATION_ID
from mpmq.recording.writer import Recorder
from mpmq.state import RunState, reduce

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "recordings"
FORMAT_1 = RECORDINGS / "format-1.db"
T0 = 1714564800.0
TB = (
    "Traceback (most recent call last):\n"
    '  File "convert.py", line 12, in convert\n'
    '    raise ValueError(f"cannot convert {n}")\n'
    "ValueError: cannot convert 2\n"
)
INPUT_2 = {"n": 2, "nested": {"auth": "[redacted]"}, "servers": [{"host": "h1", "token": "[redacted]"}]}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_format_has_a_fixture():
    assert sorted(p.name for p in RECORDINGS.glob("format-*.db")) == ["format-1.db"]


def test_format_1_runs():
    with open_recording(FORMAT_1) as r:
        assert r.format_version == 1
        first, rerun = r.runs()
    assert (first.id, first.status, first.item_count, first.succeeded, first.failed) == (1, "failed", 4, 3, 1)
    assert (first.function, first.handler, first.start_method, first.processes_to_start) == (
        "convert:convert",
        "mpmq:MPmq",
        "fork",
        2,
    )
    assert (first.started_at, first.ended_at, first.utc_offset) == (T0, T0 + 1, 7200)
    assert first.command_line == ["convert.py", "--api-token=[redacted]", "--verbose"]
    assert first.shared_data == {"region": "eu-west", "api_key": "[redacted]", "limits": "(1, 2)"}
    assert first.shared_data_repr_keys == ["limits"] and first.shared_data_pickle is None
    assert first.options == {"timeout": None} and first.complete
    assert (rerun.id, rerun.parent_run, rerun.status, rerun.item_count) == (2, 1, "succeeded", 1)
    assert pickle.loads(rerun.shared_data_pickle) == {"region": "eu-west", "api_key": "[redacted]", "limits": (1, 2)}


def test_format_1_items():
    with open_recording(FORMAT_1) as r:
        items = r.items(1)
        rerun = r.items(2)
    assert [(i.offset, i.status, i.pid) for i in items] == [
        (0, "succeeded", 4101),
        (1, "succeeded", 4102),
        (2, "failed", 4101),
        (3, "succeeded", 4102),
    ]
    assert items[0].input == Payload(
        json={"n": 0, "db_password": "[redacted]"}, repr="{'n': 0, 'db_password': '[redacted]'}"
    )
    assert load(items[1].input) == Unpickled("{'n': 1, 'tags': ('a', 'b')}")
    assert items[2].input.json == INPUT_2
    assert items[0].result == Payload(json={"n": 0, "double": 0}, repr="{'n': 0, 'double': 0}")
    assert items[1].result == Payload(repr="(1, 'tuple')")
    assert items[2].result is None
    assert items[3].result == Payload(json=None, repr="None")
    assert (items[2].error_type, items[2].error_message, items[2].traceback) == (
        "builtins.ValueError",
        "cannot convert 2",
        TB,
    )
    assert items[2].started_at == pytest.approx(T0 + 0.09) and items[2].duration == pytest.approx(0.04, abs=1e-6)
    # Pickles come back as bytes; only the caller's allow_pickle turns them into objects.
    assert load(rerun[0].input) == INPUT_2 and isinstance(rerun[0].input.pickle, bytes)
    assert load(rerun[0].result, allow_pickle=True) == {"n": 2, "double": 4}


def test_format_1_events():
    a, b, t = 4101, 4102, T0
    expected = [
        Started(offset=0, pid=a, time=t + 0.01),
        Started(offset=1, pid=b, time=t + 0.02),
        Log(offset=0, pid=a, time=t + 0.03, level=20, logger="convert", message="converting 0"),
        Log(offset=1, pid=b, time=t + 0.04, level=30, logger="convert", message="line one\nline two"),
        Result(offset=0, pid=a, time=t + 0.05, value=Payload(json={"n": 0, "double": 0}, repr="{'n': 0, 'double': 0}")),
        Done(offset=0, pid=a, time=t + 0.06),
        Result(offset=1, pid=b, time=t + 0.07, value=Payload(repr="(1, 'tuple')")),
        Done(offset=1, pid=b, time=t + 0.08),
        Started(offset=2, pid=a, time=t + 0.09),
        Started(offset=3, pid=b, time=t + 0.10),
        Log(offset=2, pid=a, time=t + 0.11, level=40, logger="convert", message="failed to convert 2", exc_text=TB),
        Error(offset=2, pid=a, time=t + 0.12, type="builtins.ValueError", message="cannot convert 2", traceback=TB),
        Done(offset=2, pid=a, time=t + 0.13),
        Result(offset=3, pid=b, time=t + 0.14, value=Payload(json=None, repr="None")),
        Done(offset=3, pid=b, time=t + 0.15),
    ]
    with open_recording(FORMAT_1) as r:
        got = list(r.events(1))
        rerun = [event for _, _, event in r.events(2)]
        only_2 = [seq for seq, _, _ in r.events(1, offsets=[2])]
    assert [seq for seq, _, _ in got] == list(range(15))
    assert [received for _, received, _ in got] == pytest.approx([e.time + 0.001 for e in expected])
    assert [event for _, _, event in got] == expected
    assert only_2 == [8, 10, 11, 12]
    assert [msgspec.structs.replace(e, value=None) if isinstance(e, Result) else e for e in rerun] == [
        Started(offset=0, pid=4200, time=t + 60.01),
        Result(offset=0, pid=4200, time=t + 60.02, value=None),
        Done(offset=0, pid=4200, time=t + 60.03),
    ]
    assert pickle.loads(rerun[1].value.pickle) == {"n": 2, "double": 4}


def test_format_1_events_fold_to_its_item_rows():
    """What replay checks for divergence: the reducer over the events gives the recorded items."""
    with open_recording(FORMAT_1) as r:
        state = RunState.new(r.run(1).item_count)
        for _, _, event in r.events(1):
            reduce(state, event)
        items = r.items(1)
    assert [(i.status, i.pid, i.started_at, i.ended_at) for i in state.items] == [
        (i.status, i.pid, i.started_at, i.ended_at) for i in items
    ]
    assert [i.result for i in state.items] == [i.result for i in items]


def test_reading_never_changes_the_fixture():
    before = digest(FORMAT_1)
    with open_recording(FORMAT_1) as r:
        for run in r.runs():
            list(r.events(run.id))
            r.items(run.id)
    assert digest(FORMAT_1) == before
    assert sorted(p.name for p in RECORDINGS.iterdir()) == ["format-1.db"]  # no -wal, -shm or -journal left


def test_a_new_run_appends_to_a_format_1_recording(tmp_path):
    copy = tmp_path / "old.db"
    shutil.copyfile(FORMAT_1, copy)
    rec = Recorder.open(copy, make_recordings.header(item_count=0), [], {})
    rec.finish("succeeded", RunState.new(0))
    with open_recording(copy) as r:
        assert [run.id for run in r.runs()] == [1, 2, 3]


def test_the_writer_still_writes_format_1_as_recorded(tmp_path):
    """Same synthetic run, today's writer: the rows must be those of the fixture.

    If this fails, the writer changed what it stores: that is a format change. Bump
    FORMAT_VERSION, teach the reader both formats, and add a new fixture next to this one.
    """
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh)
    assert make_recordings.rows(fresh) == make_recordings.rows(FORMAT_1)


def schema(path: Path) -> tuple:
    """A file's tables and indexes as SQLite stores their definitions, and its application id."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        return objects, conn.execute("PRAGMA application_id").fetchone()[0]
    finally:
        conn.close()


def test_the_writer_still_creates_format_1_tables_as_recorded(tmp_path):
    """The same table definitions, word for word, whatever sqlite-utils is installed (3.x would
    have declared FLOAT and [names] where the fixture, made with 4.x, has REAL and "names")."""
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh)
    assert schema(fresh) == schema(FORMAT_1)
    assert schema(fresh)[1] == APPLICATION_ID


def test_a_fresh_recording_reads_with_the_sqlite_utils_cli(tmp_path):
    """The README's promise, through the real command: plain tables, JSON queryable in SQL."""
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh)

    def cli(*args: str) -> list:
        done = subprocess.run([sys.executable, "-m", "sqlite_utils", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    counts = {t["table"]: t["count"] for t in cli("tables", str(fresh), "--counts")}
    assert counts == {"mpmq_meta": 2, "runs": 2, "items": 5, "events": 18}
    failed = cli("query", str(fresh), "SELECT offset, json_extract(input, '$.n') AS n, error_type FROM items"
                 " WHERE run_id = 1 AND status = 'failed'")  # fmt: skip
    assert failed == [{"offset": 2, "n": 2, "error_type": "builtins.ValueError"}]
    indexes = {i["index_name"] for i in cli("indexes", str(fresh), "events")}
    assert indexes == {"events_by_item", "sqlite_autoindex_events_1"}
