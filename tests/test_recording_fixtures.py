"""Recordings of every released format still read, forever (issue 4; STYLE.md "Data that lives on disk").

The files under ``fixtures/recordings/`` were written once by ``fixtures/make_recordings.py`` and
are never rewritten. The expectations below are spelled out, not recomputed by the writer, so a
change to the reader or the writer that breaks an old recording fails here. When the format
changes: bump FORMAT_VERSION, add ``format-N.db``, keep the old ones.

One contract suite over every format (STYLE.md): each fixture holds the same two runs and goes
through the same tests, parametrized by format; what a newer format adds (format 2's chunk of
items, run 3) has tests of its own below.
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
from mpmq.recording import schema as schema_module
from mpmq.recording.file import APPLICATION_ID, FORMAT_VERSION
from mpmq.recording.writer import Recorder
from mpmq.state import RunState, reduce

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "recordings"
FORMAT_1 = RECORDINGS / "format-1.db"
VERSIONS = list(range(1, FORMAT_VERSION + 1))
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


@pytest.fixture(params=VERSIONS, ids=lambda version: f"format{version}")
def version(request):
    return request.param


@pytest.fixture
def fixture(version):
    return RECORDINGS / f"format-{version}.db"


def test_every_format_has_a_fixture():
    assert sorted(p.name for p in RECORDINGS.glob("format-*.db")) == [f"format-{v}.db" for v in VERSIONS]


def test_runs(fixture, version):
    with open_recording(fixture) as r:
        assert r.format_version == version
        first, rerun = r.runs()[:2]
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
    assert first.format_version == rerun.format_version == version


def test_items(fixture):
    with open_recording(fixture) as r:
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


def received_times(version: int) -> list[float]:
    """When the live parent received each event of run 1: format 1's fixture got them one by
    one, format 2's in batches (``make_recordings.FIRST_RUN_BATCHES``), each at its last's time."""
    events = make_recordings.first_run()
    if version == 1:
        return [e.time + 0.001 for e in events]
    return [
        batch[-1].time + 0.001
        for batch in make_recordings.batched(events, make_recordings.FIRST_RUN_BATCHES)
        for _ in batch
    ]


def test_events(fixture, version):
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
        Error(offset=2, pid=a, time=t + 0.12, type="builtins.ValueError", message="cannot convert 2", traceback=TB,
              args=["cannot convert 2"] if version >= 2 else None),  # format 1 keeps no args
        Done(offset=2, pid=a, time=t + 0.13),
        Result(offset=3, pid=b, time=t + 0.14, value=Payload(json=None, repr="None")),
        Done(offset=3, pid=b, time=t + 0.15),
    ]
    with open_recording(fixture) as r:
        got = list(r.events(1))
        rerun = [event for _, _, event in r.events(2)]
        only_2 = [seq for seq, _, _ in r.events(1, offsets=[2])]
        in_batches = [(seq, [e for e in events]) for seq, _, events in r.batches(1)]
        until = [seq for seq, _, _ in r.events(1, offsets=[2, 3], until=11)]
    assert [seq for seq, _, _ in got] == list(range(15))
    assert [received for _, received, _ in got] == pytest.approx(received_times(version))
    assert [event for _, _, event in got] == expected
    assert only_2 == [8, 10, 11, 12] and until == [8, 9, 10, 11]
    assert [e for _, events in in_batches for e in events] == expected
    assert all(seq == got[i][0] for i, (seq, _) in zip(_starts(in_batches), in_batches))
    assert [msgspec.structs.replace(e, value=None) if isinstance(e, Result) else e for e in rerun] == [
        Started(offset=0, pid=4200, time=t + 60.01),
        Result(offset=0, pid=4200, time=t + 60.02, value=None),
        Done(offset=0, pid=4200, time=t + 60.03),
    ]
    assert pickle.loads(rerun[1].value.pickle) == {"n": 2, "double": 4}


def _starts(batches: list) -> list[int]:
    """The index of each batch's first event in the whole run."""
    starts, at = [], 0
    for _, events in batches:
        starts.append(at)
        at += len(events)
    return starts


def test_events_fold_to_their_item_rows(fixture):
    """What replay checks for divergence: the reducer over the events gives the recorded items."""
    with open_recording(fixture) as r:
        state = RunState.new(r.run(1).item_count)
        for _, _, event in r.events(1):
            reduce(state, event)
        items = r.items(1)
    assert [(i.status, i.pid, i.started_at, i.ended_at) for i in state.items] == [
        (i.status, i.pid, i.started_at, i.ended_at) for i in items
    ]
    assert [i.result for i in state.items] == [i.result for i in items]


def test_reading_never_changes_the_fixture(fixture):
    before = digest(fixture)
    with open_recording(fixture) as r:
        for run in r.runs():
            list(r.events(run.id))
            list(r.batches(run.id))
            r.items(run.id)
    assert digest(fixture) == before
    # no -wal, -shm or -journal left
    assert sorted(p.name for p in RECORDINGS.iterdir()) == [f"format-{v}.db" for v in VERSIONS]


def test_a_new_run_appends_to_a_recording_in_its_own_format(tmp_path, fixture, version):
    copy = tmp_path / "old.db"
    shutil.copyfile(fixture, copy)
    before = len(open_recording(copy).runs())
    rec = Recorder.open(copy, make_recordings.header(item_count=1), [{"n": 9}], {})
    assert rec.format_version == version
    rec.append_batch(0, T0, [Started(offset=0, pid=1, time=T0), Log(offset=0, pid=1, time=T0, level=20,
                                                                     logger="x", message="appended")])
    state = RunState.new(1)
    rec.finish("interrupted", state)
    with open_recording(copy) as r:
        runs = r.runs()
        assert [run.id for run in runs] == list(range(1, before + 2)) and runs[-1].format_version == version
        assert [e.message for _, _, e in r.events(runs[-1].id) if isinstance(e, Log)] == ["appended"]


def test_the_writer_still_writes_each_format_as_recorded(tmp_path, fixture, version):
    """Same synthetic runs, today's writer: the rows must be those of the fixture.

    If this fails, the writer changed what it stores: that is a format change. Bump
    FORMAT_VERSION, teach the reader every format, and add a new fixture next to this one.
    """
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh, version)
    assert make_recordings.rows(fresh) == make_recordings.rows(fixture)


def schema(path: Path) -> tuple:
    """A file's tables and indexes as SQLite stores their definitions, its views' names, and
    its application id. A view's SQL may change (``schema.refresh_views``); its rows may not."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type != 'view' ORDER BY name").fetchall()
        views = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")]
        return objects, views, conn.execute("PRAGMA application_id").fetchone()[0]
    finally:
        conn.close()


def test_the_writer_still_creates_each_format_s_tables_as_recorded(tmp_path, fixture, version):
    """The same table definitions, word for word, whatever sqlite-utils is installed (3.x would
    have declared FLOAT and [names] where the fixture, made with 4.x, has REAL and "names")."""
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh, version)
    assert schema(fresh) == schema(fixture)
    assert schema(fresh)[2] == APPLICATION_ID


def rows_of_views(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")]
        return {name: conn.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}
    finally:
        conn.close()


def view_sql(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
    finally:
        conn.close()


def test_a_run_added_to_a_recording_gives_it_today_s_views_with_the_same_rows(tmp_path, fixture, version):
    """The fixtures keep the views they were written with (format 2 and 3's first ones made a
    chunk's JSON travel with each of its items' rows); adding a run replaces them, and every
    row the old views gave, in the order they gave it, is still there."""
    copy = tmp_path / "old.db"
    shutil.copyfile(fixture, copy)
    before = rows_of_views(copy)
    new_run = len(open_recording(fixture).runs()) + 1
    rec = Recorder.open(copy, make_recordings.header(item_count=1), [{"n": 9}], {})
    rec.finish("interrupted", RunState.new(1))
    assert view_sql(copy) == schema_module.VIEWS[version]
    after = rows_of_views(copy)
    assert sorted(after) == sorted(before) == sorted(schema_module.VIEWS[version])
    for name, rows in before.items():  # column 0 of each view is run_id
        assert [row for row in after[name] if row[0] != new_run] == rows


def sqlite_utils(*args: str) -> list:
    done = subprocess.run([sys.executable, "-m", "sqlite_utils", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_format_reads_with_the_sqlite_utils_cli(tmp_path, version):
    """The README's promise, through the real command: plain tables, JSON queryable in SQL, and
    the README's query of the events rows, a table in format 1 and a view in format 2."""
    fresh = tmp_path / "fresh.db"
    make_recordings.build(fresh, version)
    failed = sqlite_utils("query", str(fresh), "SELECT offset, json_extract(input, '$.n') AS n, error_type FROM items"
                          " WHERE run_id = 1 AND status = 'failed'")  # fmt: skip
    assert failed == [{"offset": 2, "n": 2, "error_type": "builtins.ValueError"}]
    logs = sqlite_utils("query", str(fresh), "SELECT message FROM events WHERE \"offset\" = 2 AND kind = 'log'"
                        " AND run_id = 1")  # fmt: skip
    assert logs == [{"message": "failed to convert 2"}]
    counts = {t["table"]: t["count"] for t in sqlite_utils("tables", str(fresh), "--counts")}
    if version == 1:
        assert counts == {"mpmq_meta": 2, "runs": 2, "items": 5, "events": 18}
        indexes = {i["index_name"] for i in sqlite_utils("indexes", str(fresh), "events")}
        assert indexes == {"events_by_item", "sqlite_autoindex_events_1"}
    elif version == 2:
        assert counts == {"mpmq_meta": 2, "runs": 3, "items": 8, "batches": 10, "pickles": 1}
        assert [v["view"] for v in sqlite_utils("views", str(fresh))] == ["events"]
    else:  # format 3: items in chunks too, their rows a view
        assert counts == {"mpmq_meta": 2, "runs": 4, "batches": 11, "pickles": 1, "inputs": 4, "outcomes": 3,
                          "item_pickles": 2}  # fmt: skip
        assert [v["view"] for v in sqlite_utils("views", str(fresh))] == ["items", "events"]
        per_run = sqlite_utils("query", str(fresh), "SELECT run_id, count(*) AS n FROM items GROUP BY run_id")
        assert per_run == [{"run_id": 1, "n": 4}, {"run_id": 2, "n": 1}, {"run_id": 3, "n": 3}, {"run_id": 4, "n": 3}]
    if version >= 2:
        per_run = sqlite_utils("query", str(fresh), "SELECT run_id, count(*) AS n FROM events WHERE run_id < 4"
                               " GROUP BY run_id")  # fmt: skip
        assert per_run == [{"run_id": 1, "n": 15}, {"run_id": 2, "n": 3}, {"run_id": 3, "n": 10}]


# --- format 2's chunk of items (issue 18) ----------------------------------------------------

FORMAT_2 = RECORDINGS / "format-2.db"
CHUNKED_RUN = [
    Started(offset=0, pid=4300, time=T0 + 120.01),
    Result(offset=0, pid=4300, time=T0 + 120.02, value=Payload(json=10, repr="10")),
    Done(offset=0, pid=4300, time=T0 + 120.02),
    Started(offset=1, pid=4300, time=T0 + 120.03),
    Result(offset=1, pid=4300, time=T0 + 120.04, value=Payload(json={"k": [1, 2]}, repr="{'k': [1, 2]}")),
    Done(offset=1, pid=4300, time=T0 + 120.04),
    Started(offset=2, pid=4301, time=T0 + 120.05),
    Log(offset=2, pid=4301, time=T0 + 120.06, level=20, logger="convert", message="converting 3"),
    Result(offset=2, pid=4301, time=T0 + 120.07, value=Payload(json=3, repr="3")),
    Done(offset=2, pid=4301, time=T0 + 120.08),
]


def test_format_2_a_chunk_of_items_reads_as_each_item_s_three_events():
    with open_recording(FORMAT_2) as r:
        got = list(r.events(3))
        only_1 = [(seq, e) for seq, _, e in r.events(3, offsets=[1])]
        items = r.items(3)
        run = r.run(3)
    assert [event for _, _, event in got] == CHUNKED_RUN
    assert [seq for seq, _, _ in got] == list(range(10))
    assert [received for _, received, _ in got] == pytest.approx([T0 + 120.051] * 7 + [T0 + 120.081] * 3)
    assert only_1 == [(3, CHUNKED_RUN[3]), (4, CHUNKED_RUN[4]), (5, CHUNKED_RUN[5])]
    assert run.status == "succeeded" and [i.result.json for i in items] == [10, {"k": [1, 2]}, 3]


def test_format_2_the_events_view_expands_a_chunk_into_rows():
    conn = sqlite3.connect(f"file:{FORMAT_2}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            'SELECT seq, kind, "offset", pid, worker_time, json_extract(data, \'$.json\') FROM events'
            " WHERE run_id = 3 ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [
        (seq, e.__struct_config__.tag, e.offset, e.pid, pytest.approx(e.time),
         json.dumps(e.value.json, separators=(",", ":")) if isinstance(e.value.json, dict)
         else e.value.json) if isinstance(e, Result) else
        (seq, e.__struct_config__.tag, e.offset, e.pid, pytest.approx(e.time), None)
        for seq, e in enumerate(CHUNKED_RUN)
    ]  # fmt: skip


# --- format 3: items in chunks, their rows a view (issue 18) --------------------------------

FORMAT_3 = RECORDINGS / "format-3.db"
ITEM_COLUMNS = ('"offset", input, input_repr, status, pid, started_at, ended_at, result, result_repr,'
                " error_type, error_message, traceback")  # fmt: skip
PLAIN_CHUNK = [  # run 4: None, True and 7, a chunk stored as it came
    (0, '{"n":0}', None, "succeeded", 4400, T0 + 180.01, T0 + 180.02, "null", "None", None, None, None),
    (1, '{"n":1}', None, "succeeded", 4400, T0 + 180.03, T0 + 180.04, "true", "True", None, None, None),
    (2, '{"n":2}', None, "succeeded", 4400, T0 + 180.05, T0 + 180.06, "7", "7", None, None, None),
]


def view_rows(path: Path, run: int) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f'SELECT {ITEM_COLUMNS} FROM items WHERE run_id = ? ORDER BY "offset"', (run,)).fetchall()
    finally:
        conn.close()


def test_format_3_a_chunk_of_plain_values_is_its_items_outcomes_in_the_view_and_the_reader():
    assert view_rows(FORMAT_3, 4) == PLAIN_CHUNK
    with open_recording(FORMAT_3) as r:
        items = r.items(4)
        results = [e.value for _, _, e in r.events(4) if isinstance(e, Result)]
    assert [(i.status, i.pid, i.started_at, i.ended_at, i.result) for i in items] == [
        ("succeeded", 4400, row[5], row[6], Payload(json=value, repr=repr(value)))
        for row, value in zip(PLAIN_CHUNK, [None, True, 7], strict=True)
    ]
    assert results == [Payload(json=value, repr=repr(value)) for value in (None, True, 7)]
    assert [i.input for i in items] == [Payload(json={"n": n}, repr=repr({"n": n})) for n in range(3)]


@pytest.mark.parametrize("run", [1, 2, 3])
def test_format_3_the_items_view_says_what_the_reader_says(run):
    """Every item row of the view agrees with ``Recording.items``: one join, written twice."""
    with open_recording(FORMAT_3) as r:
        items = r.items(run)
    rows = view_rows(FORMAT_3, run)
    assert [row[0] for row in rows] == [item.offset for item in items]
    for row, item in zip(rows, items, strict=True):
        result = item.result
        assert row[3:7] == (item.status, item.pid, item.started_at, item.ended_at)
        assert row[8] == (result.repr if result is not None else None)
        assert row[7] == (json.dumps(result.json, separators=(",", ":")) if result is not None and
                          result.json is not msgspec.UNSET else None)  # fmt: skip
        assert row[9:] == (item.error_type, item.error_message, item.traceback)
        assert row[2] == (item.input.repr if item.input.json is msgspec.UNSET else None)
