"""The recorder (recording/writer.py) and the reader (recording/reader.py), checked on real files with plain SQL.

No engine and no workers: runs are synthetic event streams fed through the Recorder exactly as
the engine feeds it (append per event, maybe_commit per wake-up, finish with the folded state).

One contract suite over every format (STYLE.md): the ``db`` fixture is a new file, written in
the newest format, and an empty file of every older format, to which the recorder adds runs
in that format. The SQL of these tests reads the ``events`` rows, a table in format 1 and a
view in format 2 (issue 18), with the same queries.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import pickle
import platform
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import msgspec
import pytest

from fixtures import tamper
from mpmq.events import Done, Error, Log, Payload, Ran, Result, Started
from mpmq.payload import for_rest, for_transit, load
from mpmq.recording import FORMAT_VERSION, RecordingError, open_recording
from mpmq.recording.file import create_schema
from mpmq.recording.redact import REDACTED, patterns_for, redact, redact_argv
from mpmq.recording.rows import (
    checked_json_text,
    clean_text,
    flat_input_columns,
    general_rest,
    input_columns,
    item_inputs,
    rest_payload,
    scalar_rest,
)
from mpmq.recording.writer import MAX_BUFFER, Recorder
from mpmq.state import RunState, reduce

T0 = 1_700_000_000.0
TRACEBACK = (
    'Traceback (most recent call last):\n  File "w.py", line 3, in f\n    raise ValueError(x)\nValueError: bad 2\n'
)


def header(**changes):
    base = dict(
        mpmq_version="1.0.0",
        python_version="3.11.9",
        platform="linux",
        start_method="fork",
        function="work:f",
        handler="mpmq:MPmq",
        processes_to_start=2,
        error_policy="continue",
        command_line=["prog", "--db-password=hunter2", "--token", "abc", "-v"],
        started_at=T0,
        utc_offset=3600,
        item_count=None,
        options={"timeout": None},
        parent_run=None,
    )
    base.update(changes)
    return base


DEFAULT = object()


def item_events(offset, logs=2, fail=False, value=DEFAULT):
    """One item's events in the order a worker sends them."""
    pid, t = 100 + offset % 2, T0 + offset
    events = [Started(offset=offset, pid=pid, time=t)]
    for n in range(logs):
        events.append(Log(offset=offset, pid=pid, time=t + 0.1, level=20, logger="work", message=f"item {offset} #{n}"))
    if fail:
        events.append(
            Log(
                offset=offset,
                pid=pid,
                time=t + 0.2,
                level=40,
                logger="work",
                message="failing\nnow",
                exc_text=TRACEBACK,
            )
        )
        exc = pickle.dumps(ValueError(f"bad {offset}"))
        events.append(
            Error(
                offset=offset,
                pid=pid,
                time=t + 0.3,
                type="builtins.ValueError",
                message=f"bad {offset}",
                traceback=TRACEBACK,
                exception=exc,
            )
        )
    else:
        result = {"offset": offset, "square": offset * offset} if value is DEFAULT else value
        events.append(Result(offset=offset, pid=pid, time=t + 0.3, value=for_transit(result)))
    events.append(Done(offset=offset, pid=pid, time=t + 0.4))
    return events


def interleave(*streams):
    """Merge per-item streams round-robin, as events from two workers arrive."""
    out, streams = [], [list(s) for s in streams]
    while any(streams):
        for s in streams:
            if s:
                out.append(s.pop(0))
    return out


def sample_events(items=5, fail=(2,)):
    streams = [item_events(o, fail=o in fail) for o in range(items)]
    return interleave(*streams[:2]) + interleave(*streams[2:])


def record(path, events, items, *, status="succeeded", inputs=None, shared=None, **options):
    """Record a run the way the engine does; returns the recorder (finished) and the state."""
    inputs = [{"n": o} for o in range(items)] if inputs is None else inputs
    rec = Recorder.open(path, header(item_count=items), inputs, shared or {}, **options)
    state = RunState.new(items)
    for seq, event in enumerate(events):
        rec.append(seq, T0 + 10 + seq / 1000, event)
        reduce(state, event)
        rec.maybe_commit(time.monotonic())
    rec.finish(status, state)
    return rec, state


def sql(path, query, *params):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def at_rest(event, keep_pickle=False):
    """What the reader gives back for a live event: results as json/repr, pickles only if kept."""
    if isinstance(event, Result):
        rest = for_rest(load(event.value, allow_pickle=True), keep_pickle)
        pickled = (event.value.pickle or rest.pickle) if keep_pickle else None
        return msgspec.structs.replace(event, value=Payload(pickle=pickled, json=rest.json, repr=rest.repr))
    if isinstance(event, Error) and not keep_pickle:
        return msgspec.structs.replace(event, exception=None)
    return event


@pytest.fixture(params=list(range(FORMAT_VERSION, 0, -1)), ids=lambda version: f"format{version}")
def db(request, tmp_path):
    path = str(tmp_path / "run.db")
    if request.param != FORMAT_VERSION:
        empty_recording(path, request.param)
    return path


def file_format(path):
    return int(sql(path, "SELECT value FROM mpmq_meta WHERE key = 'format_version'")[0][0])


def empty_recording(path, version):
    """A recording of format ``version`` holding no runs yet, as an older mpmq left it (0600)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path)
    with conn:
        create_schema(conn, version)
    conn.close()


# --- what is written ----------------------------------------------------------------------


def test_every_event_once_in_receive_order(db):
    events = sample_events()
    rec, _ = record(db, events, 5)
    assert rec.failure is None
    query = "SELECT seq, kind, offset, pid, worker_time, received_at FROM events WHERE run_id = ? ORDER BY seq"
    rows = sql(db, query, rec.run_id)
    assert [r[0] for r in rows] == list(range(len(events)))
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (type(e).__struct_config__.tag, e.offset, e.pid, e.time) for e in events
    ]
    assert [r[5] for r in rows] == [T0 + 10 + seq / 1000 for seq in range(len(events))]


def test_item_rows_match_state(db):
    rec, state = record(db, sample_events(), 5, status="failed")
    rows = sql(
        db,
        "SELECT offset, status, pid, started_at, ended_at, duration, json_extract(result, '$.square'),"
        " result_repr, error_type FROM items WHERE run_id = ? ORDER BY offset",
        rec.run_id,
    )
    for row, item in zip(rows, state.items, strict=True):
        square = item.offset**2 if item.offset != 2 else None
        expected_repr = None if item.offset == 2 else repr({"offset": item.offset, "square": square})
        error = "builtins.ValueError" if item.offset == 2 else None
        assert row == (
            item.offset,
            item.status,
            item.pid,
            item.started_at,
            item.ended_at,
            item.duration,
            square,
            expected_repr,
            error,
        )
    assert sql(db, "SELECT status, succeeded, failed, item_count FROM runs") == [("failed", 4, 1, 5)]
    assert sql(db, "SELECT ended_at IS NOT NULL FROM runs") == [(1,)]


def test_errors_carry_tracebacks(db):
    record(db, sample_events(), 5)
    assert sql(db, "SELECT offset, error_type, error_message, traceback FROM items WHERE error_type IS NOT NULL") == [
        (2, "builtins.ValueError", "bad 2", TRACEBACK)
    ]
    query = "SELECT message, json_extract(data, '$.type'), json_extract(data, '$.traceback'), pickle FROM events"
    query += " WHERE kind = 'error'"
    assert sql(db, query) == [("bad 2", "builtins.ValueError", TRACEBACK, None)]


def test_log_rows_keep_level_logger_multiline_message_and_exc_text(db):
    record(db, sample_events(), 5)
    rows = sql(
        db,
        "SELECT level, logger, message, json_extract(data, '$.exc_text') FROM events"
        " WHERE kind = 'log' AND offset = 2 ORDER BY seq",
    )
    assert rows[-1] == (40, "work", "failing\nnow", TRACEBACK)
    assert rows[0] == (20, "work", "item 2 #0", None)


@pytest.mark.parametrize(
    "value, json_column, json_in_data",
    [
        ({"a": [1, 2.5, "x"]}, '{"a":[1,2.5,"x"]}', 1),
        (None, "null", 1),  # JSON null, not SQL NULL: the value was None
        ((1, 2), None, 0),  # a tuple would come back a list: repr only
        ({1: "int key"}, None, 0),
        (float("nan"), None, 0),
    ],
)
def test_results_rest_as_json_when_exact_else_repr(db, value, json_column, json_in_data):
    rec, _ = record(db, item_events(0, value=value), 1)
    assert sql(db, "SELECT result, result_repr, result_pickle FROM items") == [(json_column, repr(value), None)]
    data = sql(db, "SELECT data FROM events WHERE kind = 'result'")[0][0]
    assert ("json" in json.loads(data)) == bool(json_in_data)
    assert json.loads(data)["repr"] == repr(value)


@pytest.mark.parametrize("value", [None, 0, -1, 7, 2**63 - 1, -(2**63), 2**64 - 1])
def test_none_and_counts_rest_exactly_as_the_general_rule_keeps_them(value):
    live = for_transit(value)
    assert live == Payload(json=value)  # they travel as themselves
    assert rest_payload(live, False) == scalar_rest(live) == general_rest(live, False)


# Issue 18: successes returning None or a count are written many rows per UPDATE from the
# state's columns (with SQLite before 3.33, row by row); every other item row by row. 450
# items: two full multi-row statements and a shorter one, other items among them.
BULK_VALUES = [None, 0, -1, 7, 2**63 - 1, -(2**63), 2**64 - 1, True, "text", 2**64, 1.5]


@pytest.mark.parametrize("update_from", [True, False], ids=["update-from", "row-by-row"])
def test_item_rows_of_plain_successes_written_in_bulk_match_the_general_rule(db, monkeypatch, update_from):
    from mpmq.recording import item_outcomes

    monkeypatch.setattr(item_outcomes, "_UPDATE_FROM", update_from and item_outcomes._UPDATE_FROM)
    count = 450
    values = [BULK_VALUES[o % len(BULK_VALUES)] for o in range(count)]
    events = []
    for offset, value in enumerate(values):
        if offset % 50 != 49:  # every 50th item never runs: its row stays pending
            events += item_events(offset, logs=0, fail=offset % 97 == 3, value=value)
    rec, state = record(db, events, count, status="failed")
    rows = sql(db, "SELECT offset, status, pid, started_at, ended_at, duration, result, result_repr, error_type"
                   " FROM items WHERE run_id = ? ORDER BY offset", rec.run_id)  # fmt: skip
    expected = []
    for item in state.items:
        rest = None if item.result is None else general_rest(item.result, False)
        error = item.error.type if item.error is not None else None
        expected.append((item.offset, item.status, item.pid, item.started_at, item.ended_at, item.duration,
                         rest and rest.json, rest and rest.repr, error))  # fmt: skip
    assert rows == expected
    assert [r[1] for r in rows].count("pending") == count // 50 and [r[1] for r in rows].count("failed") == 5


FLAT = [{}, {"n": 1}, {"a": 1.5, "b": -0.0, "c": "x", "d": None, "e": True, "f": 2**64 - 1, "g": -(2**63)},
        {"name": "é\u2028\n\"q\""}, {"s": "x" * 20_000}]
NOT_FLAT = [{"n": 2**64}, {"x": float("nan")}, {"x": float("inf")}, {1: "int key"}, {"t": (1, 2)},
            {"l": [1]}, {"nested": {"a": 1}}, {"db_password": "hunter2"}, {"bad": "\udcff"}, [1, 2], "text", None]


@pytest.mark.parametrize("value", FLAT + NOT_FLAT)
def test_flat_items_inputs_rest_exactly_as_the_general_rule_keeps_them(value):
    patterns = patterns_for(True)
    fast = flat_input_columns(value, patterns)
    assert (fast is not None) == (value in FLAT)
    if fast is not None:
        assert fast == input_columns(value, patterns, False)


def test_the_recorder_thread_writes_the_rows_of_finished_items_as_the_run_goes(db):
    # Issue 18: the rows of items that succeeded plainly are written mid-run from the live
    # state; the rest (a failure, a result JSON cannot hold, items still running) at the end.
    count = 12
    values = [{"not": "plain"} if offset == 5 else offset for offset in range(count)]
    rec = Recorder.open(db, header(item_count=count), [{"n": o} for o in range(count)], {})
    state = RunState.new(count)
    rec.write_in_background(state)
    events = [e for offset in range(8) for e in item_events(offset, logs=1, fail=offset == 3, value=values[offset])]
    events += item_events(8, logs=1)[:2]  # item 8 started and logged: still running
    rec.append_batch(0, T0 + 10, events)
    for event in events:
        reduce(state, event)

    def statuses():
        return [row[0] for row in sql(db, "SELECT status FROM items WHERE run_id = ? ORDER BY offset", rec.run_id)]

    rec.append_batch(len(events), T0 + 11, [])  # the next flush (within 0.1 s) looks at the state
    while statuses().count("succeeded") < 6:  # the test deadline bounds this wait
        time.sleep(0.01)
    succeeded, pending = ["succeeded"], ["pending"]
    assert statuses() == succeeded * 3 + pending + succeeded + pending + succeeded * 2 + pending * 4
    rest = item_events(8, logs=1)[2:] + [e for o in range(9, count) for e in item_events(o, logs=0)]
    rec.append_batch(len(events), T0 + 12, rest)
    for event in rest:
        reduce(state, event)
    rec.finish("failed", state)
    rows = sql(db, "SELECT offset, status, pid, started_at, ended_at, duration, result, result_repr, error_type"
                   " FROM items WHERE run_id = ? ORDER BY offset", rec.run_id)  # fmt: skip
    expected = []
    for item in state.items:
        rest_value = None if item.result is None else general_rest(item.result, False)
        error = item.error.type if item.error is not None else None
        expected.append((item.offset, item.status, item.pid, item.started_at, item.ended_at, item.duration,
                         rest_value and rest_value.json, rest_value and rest_value.repr, error))  # fmt: skip
    assert rows == expected and [r[1] for r in rows].count("succeeded") == count - 1


def test_item_input_rows_rest_exactly_as_the_general_rule_keeps_them():
    # Issue 18: item_inputs checks a run's flat items inline, their keys once per key set;
    # runs of items sharing keys, secret keys and values the fast path must refuse among them.
    patterns = patterns_for(True)
    values = FLAT + NOT_FLAT + [{"n": 1}, {"n": 2}, {"n": 2**64}, {"n": "x"}, {"token": 1}, {"token": 2},
                                {"n": 3}, {"x": -float("inf")}, {"x": 1e300}] + FLAT  # fmt: skip
    statements = item_inputs(7, values, patterns, False, 999)
    flat = [value for _, batches in statements for batch in batches for value in batch]
    rows = [tuple(flat[i : i + 4]) for i in range(0, len(flat), 4)]
    assert rows == [(offset, *input_columns(value, patterns, False)) for offset, value in enumerate(values)]


def test_pickles_only_with_keep_pickle(db, tmp_path):
    events = item_events(0, value=(1, 2)) + item_events(1, fail=True)
    record(db, events, 2)
    assert sql(db, "SELECT count(*) FROM events WHERE pickle IS NOT NULL") == [(0,)]
    assert sql(db, "SELECT count(*) FROM items WHERE result_pickle IS NOT NULL OR input_pickle IS NOT NULL") == [(0,)]
    kept = str(tmp_path / "kept.db")
    record(kept, events, 2, keep_pickle=True)
    assert pickle.loads(sql(kept, "SELECT result_pickle FROM items WHERE offset = 0")[0][0]) == (1, 2)
    exc = pickle.loads(sql(kept, "SELECT pickle FROM events WHERE kind = 'error'")[0][0])
    assert isinstance(exc, ValueError) and str(exc) == "bad 1"
    assert pickle.loads(sql(kept, "SELECT input_pickle FROM items WHERE offset = 1")[0][0]) == {"n": 1}


def test_header_is_written_and_readable_as_plain_json(db):
    rec, _ = record(db, sample_events(), 5, shared={"region": "eu", "when": (1, 2)})
    row = sql(
        db,
        "SELECT format_version, mpmq_version, python_version, platform, start_method, function, handler,"
        " processes_to_start, error_policy, started_at, utc_offset, parent_run, recording_error,"
        " json_extract(options, '$.timeout'), json_extract(command_line, '$[0]'),"
        " json_extract(shared_data, '$.region'), json_extract(shared_data, '$.when'), shared_data_repr_keys"
        " FROM runs",
    )[0]
    assert row == (
        file_format(db),
        "1.0.0",
        "3.11.9",
        "linux",
        "fork",
        "work:f",
        "mpmq:MPmq",
        2,
        "continue",
        T0,
        3600,
        None,
        None,
        None,
        "prog",
        "eu",
        "(1, 2)",
        '["when"]',
    )
    version = sql(db, "SELECT key, value FROM mpmq_meta WHERE key = 'format_version'")
    assert version == [("format_version", str(file_format(db)))] and 1 <= file_format(db) <= FORMAT_VERSION


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="platform.platform() names the OS otherwise")
def test_header_platform_is_platform_platform_without_its_subprocess():
    # platform.platform() runs `uname -p` (7 ms before a recorded run's first worker) for a
    # processor name it leaves out on Linux; the header's name is the same string without it.
    code = (
        "import platform, subprocess\n"
        "from mpmq.recording.session import platform_name\n"
        "def refuse(*a, **k): raise AssertionError('ran a subprocess')\n"
        "subprocess.check_output = refuse\n"
        "print(platform_name())\n"
    )
    name = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert name == platform.platform()


def test_unknown_header_key_is_refused(tmp_path):
    db = str(tmp_path / "run.db")
    with pytest.raises(ValueError, match="unknown run header keys"):
        Recorder.open(db, {"mpmq_version": "1", "colour": "red"}, [], {})
    assert not os.path.exists(db)


# --- secrets ------------------------------------------------------------------------------

SECRET_INPUT = {
    "user": "ann",
    "db_password": "pw",
    "API_TOKEN": "tk-5e2a9c",  # long enough never to appear by chance among the file's bytes
    "nested": {"Auth": {"deep": 1}, "keep": 2, "servers": [{"private_key": "k", "host": "h"}]},
    "pin": "1234",
}


def test_redaction_by_default_nested_and_in_lists(db):
    record(db, [], 1, inputs=[SECRET_INPUT], shared={"smtp_passwd": "x", "list": [{"apikey": 1}], "ok": 1})
    data = json.loads(sql(db, "SELECT input FROM items")[0][0])
    assert data == {
        "user": "ann",
        "db_password": REDACTED,
        "API_TOKEN": REDACTED,
        "nested": {"Auth": REDACTED, "keep": 2, "servers": [{"private_key": REDACTED, "host": "h"}]},
        "pin": "1234",
    }
    assert json.loads(sql(db, "SELECT shared_data FROM runs")[0][0]) == {
        "smtp_passwd": REDACTED,
        "list": [{"apikey": REDACTED}],
        "ok": 1,
    }
    command_line = json.loads(sql(db, "SELECT command_line FROM runs")[0][0])
    assert command_line == ["prog", f"--db-password={REDACTED}", "--token", REDACTED, "-v"]
    text = Path(db).read_bytes()
    assert b"hunter2" not in text and b'"pw"' not in text and b"tk-5e2a9c" not in text


def test_redaction_extended_list_and_pickles_hold_the_redacted_value(db):
    record(db, [], 1, inputs=[SECRET_INPUT], redact=["PIN"], keep_pickle=True)
    data = json.loads(sql(db, "SELECT input FROM items")[0][0])
    assert data["pin"] == REDACTED and data["db_password"] == REDACTED and data["user"] == "ann"
    assert pickle.loads(sql(db, "SELECT input_pickle FROM items")[0][0]) == data


def test_redaction_off(db):
    record(db, [], 1, inputs=[SECRET_INPUT], shared={"token": "t"}, redact=False)
    assert json.loads(sql(db, "SELECT input FROM items")[0][0]) == SECRET_INPUT
    assert json.loads(sql(db, "SELECT shared_data FROM runs")[0][0]) == {"token": "t"}
    assert "hunter2" in sql(db, "SELECT command_line FROM runs")[0][0]


def test_redact_leaves_clean_values_untouched_and_never_mutates():
    clean = {"a": (1, 2), "b": [{"c": 3}]}
    assert redact(clean, patterns_for(True)) is clean
    dirty = {"a": {"secret": 1}}
    assert redact(dirty, patterns_for(True)) == {"a": {"secret": REDACTED}} and dirty == {"a": {"secret": 1}}
    assert redact(({"token": 1}, 2), patterns_for(True)) == ({"token": REDACTED}, 2)


def test_redact_patterns_option():
    assert patterns_for(False) == frozenset() == patterns_for(None)
    assert "pin" in patterns_for("pin") and "p" not in patterns_for("pin")  # a string is one pattern
    with pytest.raises(ValueError, match="non-empty"):
        patterns_for([""])
    assert redact_argv(["--auth-token", "-x", "--Secret=1"], patterns_for(True)) == [
        "--auth-token",
        "-x",
        f"--Secret={REDACTED}",
    ]


def test_key_value_arguments_with_secret_keys_are_redacted_on_the_command_line():
    argv = ["rerun", "--set", "api_token=s3cr3t", "--set", "n=5", "db_password=x=y"]
    assert redact_argv(argv, patterns_for(True)) == [
        "rerun", "--set", f"api_token={REDACTED}", "--set", "n=5", f"db_password={REDACTED}",
    ]


# --- the file -----------------------------------------------------------------------------


def test_new_file_and_its_wal_are_owner_only(db):
    old = os.umask(0o022)  # the usual umask would give 0644
    try:
        rec = Recorder.open(db, header(), [], {})
        rec.append(0, T0, Started(offset=0, pid=1, time=T0))
        rec.maybe_commit(1.0)
        for name in (db, db + "-wal", db + "-shm"):
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
        rec.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert not os.path.exists(db + "-wal")  # closed as a single self-contained file


def test_several_runs_in_one_file(db):
    first, _ = record(db, sample_events(), 5)
    second, _ = record(db, item_events(0), 1, status="interrupted")
    assert (first.run_id, second.run_id) == (1, 2)
    assert sql(db, "SELECT id, status, item_count FROM runs ORDER BY id") == [
        (1, "succeeded", 5),
        (2, "interrupted", 1),
    ]
    assert sql(db, "SELECT run_id, count(*) FROM events GROUP BY run_id") == [(1, len(sample_events())), (2, 5)]
    with open_recording(db) as r:
        assert [run.id for run in r.runs()] == [1, 2]
        assert r.run().id == 2 and len(r.items(1)) == 5 and len(r.items()) == 1


def test_a_reader_open_as_the_run_ends_still_leaves_everything_in_the_file_itself(db, tmp_path):
    """Someone watching a run (``mpmq-replay`` on a live file) keeps the write-ahead log from
    being folded back as the run closes. The file itself must still hold the whole run: people
    copy and share just ``run.db``, not its -wal."""
    events = sample_events()
    rec = Recorder.open(db, header(), [{"n": o} for o in range(5)], {})
    state = RunState.new(5)
    for seq, event in enumerate(events):
        rec.append(seq, T0 + seq, event)
        reduce(state, event)
    rec.maybe_commit(time.monotonic())
    with open_recording(db) as watcher:
        assert len(list(watcher.events())) == len(events)
        rec.finish("succeeded", state)
        shared = tmp_path / "shared.db"
        shutil.copyfile(db, shared)  # the file alone, as it is handed on while the watcher looks
    with open_recording(shared) as r:
        assert r.run().status == "succeeded"
        assert [e for _, _, e in r.events()] == [at_rest(e) for e in events]


def _start_a_run_with_the_others(path, barrier, results):
    barrier.wait()
    try:
        rec, _ = record(path, item_events(0), 1)
        results.put(rec.run_id if rec.failure is None else rec.failure)
    except Exception as exc:
        results.put(repr(exc))


def test_runs_started_at_once_into_one_new_file_are_all_recorded(tmp_path):
    """SQLite refused the switch to WAL ("database is locked") at once instead of waiting, and
    two runs could both find the file empty and both create its tables: most runs failed."""
    context = multiprocessing.get_context("fork")
    for attempt in range(10):  # the collisions are a race: give them several chances
        path = str(tmp_path / f"at-once-{attempt}.db")
        barrier, results = context.Barrier(8), context.Queue()
        runs = [context.Process(target=_start_a_run_with_the_others, args=(path, barrier, results))
                for _ in range(8)]  # fmt: skip
        for run in runs:
            run.start()
        outcomes = [results.get(timeout=60) for _ in runs]
        for run in runs:
            run.join()
        assert [outcome for outcome in outcomes if not isinstance(outcome, int)] == []
        assert sorted(outcomes) == list(range(1, 9))
        assert sql(path, "SELECT id, status FROM runs ORDER BY id") == [(n, "succeeded") for n in range(1, 9)]
        assert sql(path, "SELECT count(*) FROM events") == [(8 * len(item_events(0)),)]


def test_maybe_commit_waits_for_its_interval_and_a_full_buffer_commits(db):
    rec = Recorder.open(db, header(), [], {})
    rec.append(0, T0, Started(offset=0, pid=1, time=T0))
    rec.maybe_commit(100.0)
    rec.append(1, T0, Done(offset=0, pid=1, time=T0))
    assert rec.next_commit_at == pytest.approx(100.1)
    rec.maybe_commit(100.05)  # not due: stays buffered
    assert sql(db, "SELECT count(*) FROM events") == [(1,)] and rec.committed == 1
    rec.maybe_commit(100.1)
    assert sql(db, "SELECT count(*) FROM events") == [(2,)] and rec.next_commit_at is None
    for seq in range(2, 2 + MAX_BUFFER):
        rec.append(seq, T0, Log(offset=0, pid=1, time=T0, level=20, logger="x", message="m"))
    assert rec.committed == 2 + MAX_BUFFER  # never called maybe_commit: the buffer was full
    rec.close()
    rec.close()  # idempotent


def test_append_batch_is_append_per_event(db, tmp_path):
    events = sample_events()
    rec = Recorder.open(db, header(), [{}] * 5, {})
    rec.append_batch(0, T0, events[:7])
    rec.append_batch(7, T0 + 1, events[7:])
    rec.close()
    with open_recording(db) as r:
        got = list(r.events())
    assert got == [(seq, T0 if seq < 7 else T0 + 1, at_rest(e)) for seq, e in enumerate(events)]


def log_lines(offset, pid, count, t=T0):
    return [Log(offset=offset, pid=pid, time=t + n / 1e6, level=10 + n % 3, logger=f"lg{n % 2}", message=f"#{n}")
            for n in range(count)]  # fmt: skip


@pytest.mark.parametrize("batch", [1, 7, 500, 10_000])
def test_batches_write_the_rows_one_event_at_a_time_writes(db, batch):
    """Rows are packed by shape into multi-row INSERTs (rows.py): however the events come in
    batches, and wherever a statement is cut, the rows are those of events appended one by one."""
    events = (
        item_events(0, logs=3)[:-2]
        + log_lines(0, 100, 700)  # more than a full statement's worth (200 rows)
        + [Log(offset=0, pid=100, time=T0, level=40, logger="work", message="x", exc_text=TRACEBACK)]
        + log_lines(0, 100, 9)
        + log_lines(1, 101, 5)
        + log_lines(1, 4242, 40)  # another pid: a process the item forked
        + log_lines(0, 100, 8)
        + item_events(0, logs=0)[1:]
        + log_lines(1, 101, 300)
        + [Done(offset=1, pid=101, time=T0 + 2)]
    )
    one_by_one = str(Path(db).with_name("one.db"))
    if os.path.exists(db):  # an older format's file: compare with one of the same format
        empty_recording(one_by_one, file_format(db))
    rec = Recorder.open(one_by_one, header(), [{}] * 2, {})
    for seq, event in enumerate(events):
        rec.append(seq, T0 + 1 + seq // batch, event)
    rec.close()
    rec = Recorder.open(db, header(), [{}] * 2, {})
    for first in range(0, len(events), batch):
        rec.append_batch(first, T0 + 1 + first // batch, events[first : first + batch])
    rec.close()
    query = "SELECT * FROM events ORDER BY seq"
    assert sql(db, query) == sql(one_by_one, query)
    assert [row[0] for row in sql(db, "SELECT seq FROM events ORDER BY seq")] == list(range(len(events)))
    with open_recording(db) as r:
        assert [e for _, _, e in r.events()] == [at_rest(e) for e in events]


def test_lone_surrogates_are_stored_escaped_not_lost(db):
    name = os.fsdecode(b"caf\xe9.txt")  # an undecodable file name, as os.listdir gives it
    events = [Log(offset=0, pid=1, time=T0, level=20, logger="w", message=f"opened {name}", exc_text=name)]
    rec, _ = record(db, events, 1, inputs=[{"file": name}])
    assert rec.failure is None
    assert sql(db, "SELECT message, json_extract(data, '$.exc_text') FROM events") == [
        ("opened caf\\udce9.txt", "caf\\udce9.txt")
    ]
    assert sql(db, "SELECT input, input_repr FROM items") == [(None, repr({"file": name}))]


# --- refused before anything starts -------------------------------------------------------


def foreign_db(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()


def newer_recording(path):
    record(path, [], 0)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE mpmq_meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()


BAD_TARGETS = {
    "missing directory": (lambda p: None, "nowhere/run.db", "does not exist"),
    "a directory": (lambda p: os.mkdir(p), "run.db", "is a directory"),
    "parent is a file": (lambda p: Path(p).write_text("x"), "run.db", "does not exist"),
    "text file": (lambda p: Path(p).write_text("hello\n" * 50), "run.db", "is not a SQLite database"),
    "foreign SQLite": (foreign_db, "run.db", "is a SQLite database but not an mpmq recording"),
    "newer format": (newer_recording, "run.db", f"format {FORMAT_VERSION + 1}, newer than this mpmq"),
}


@pytest.mark.parametrize("case", BAD_TARGETS)
def test_bad_targets_are_refused_before_anything_is_written(tmp_path, case):
    make, name, message = BAD_TARGETS[case]
    made = tmp_path / "run.db"
    make(str(made))
    path = tmp_path / name if case != "parent is a file" else made / "inner.db"
    before = made.read_bytes() if made.is_file() else None
    with pytest.raises(RecordingError, match=message) as info:
        Recorder.open(path, header(), [1, 2], {})
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert (made.read_bytes() if made.is_file() else None) == before  # untouched
    assert not os.path.exists(str(path) + "-wal")


def test_empty_path_is_refused():
    with pytest.raises(RecordingError, match="empty"):
        Recorder.open("", header(), [], {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RecordingError, match="Permission denied"):
        Recorder.open(locked / "run.db", header(), [], {})


# --- failures mid-run ---------------------------------------------------------------------


def log(seq):
    return Log(offset=0, pid=1, time=T0, level=20, logger="w", message=f"a line of some length, number {seq}")


def test_disk_full_mid_run_stops_recording_without_raising(db):
    rec = Recorder.open(db, header(), [{}], {})
    conn = rec._conn  # a tiny page budget is how we fill a disk in a test
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 3}")
    state = RunState.new(1)
    for seq in range(3 * MAX_BUFFER):
        rec.append(seq, T0, log(seq))
        rec.maybe_commit(T0 + seq)
    assert rec.failure is not None and "full" in rec.failure and db in rec.failure
    assert "\n" not in rec.failure
    rec.finish("succeeded", state)  # does not raise either
    with open_recording(db) as r:
        run = r.run()  # the failure made it into the file after all: the update needed no new page
    assert (run.status, run.recording_error, run.complete) == ("succeeded", rec.failure, False)


def test_connection_lost_mid_run_stops_recording_without_raising(db):
    rec = Recorder.open(db, header(), [{}], {})
    rec.append(0, T0, Started(offset=0, pid=1, time=T0))
    rec.maybe_commit(0.0)
    rec._conn.close()  # the file goes away under the recorder
    rec.append(1, T0, log(1))
    rec.maybe_commit(1.0)
    assert rec.failure.startswith(f"recording to {db} stopped at event 1:")
    rec.append(2, T0, log(2))  # ignored from now on
    rec.finish("succeeded", RunState.new(1))
    rec.close()
    assert sql(db, "SELECT count(*) FROM events") == [(1,)]


KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from mpmq.events import Log, Started
    from mpmq.recording.writer import Recorder
    rec = Recorder.open(sys.argv[1], {"item_count": 1}, [{"n": 0}], {})
    rec.append(0, time.time(), Started(offset=0, pid=1, time=time.time()))
    seq, commits = 0, 0
    while commits < 3 or sys.argv[2] == "busy":  # busy: killed in the middle of writing
        seq += 1
        rec.append(seq, time.time(), Log(offset=0, pid=1, time=time.time(), level=20, logger="w", message=str(seq)))
        before = rec.committed
        rec.maybe_commit(time.monotonic())
        if rec.committed != before:
            commits += 1
            print(rec.committed, flush=True)
    for seq in range(seq + 1, seq + 100):  # idle: these stay buffered, uncommitted
        rec.append(seq, time.time(), Log(offset=0, pid=1, time=time.time(), level=20, logger="w", message=str(seq)))
    time.sleep(60)
    """
)


@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_sigkilled_parent_leaves_a_readable_running_run(db, mode):
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, db, mode], stdout=subprocess.PIPE, text=True)
    try:
        committed = []
        while len(committed) < 3:
            ready, _, _ = select.select([child.stdout], [], [], 10)
            assert ready, "the child recorded nothing"
            committed.append(int(child.stdout.readline()))
        time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.stdout.close()
    with open_recording(db) as r:
        run = r.run()
        assert run.status == "running" and not run.complete and run.ended_at is None
        seqs = [seq for seq, _, _ in r.events()]
    if mode == "idle":
        assert len(seqs) == committed[-1]  # exactly what was committed, none of what was buffered
    else:
        assert len(seqs) >= committed[-1]
    assert seqs == list(range(len(seqs)))
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]


# --- the reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep_pickle", [False, True])
def test_reader_gives_back_what_was_appended(db, keep_pickle):
    events = sample_events() + item_events(5, value=(1, "tuple"))
    record(db, events, 6, keep_pickle=keep_pickle)
    with open_recording(db) as r:
        got = list(r.events())
    assert [seq for seq, _, _ in got] == list(range(len(events)))
    assert [received for _, received, _ in got] == [T0 + 10 + seq / 1000 for seq in range(len(events))]
    assert [event for _, _, event in got] == [at_rest(e, keep_pickle) for e in events]


def test_reader_items_and_run(db):
    rec, state = record(db, sample_events(), 5, shared={"when": (1, 2), "x": 1}, keep_pickle=True)
    with open_recording(db) as r:
        run = r.run(rec.run_id)
        items = r.items(rec.run_id)
    assert run.status == "succeeded" and run.complete and run.command_line[0] == "prog"
    assert run.shared_data == {"when": "(1, 2)", "x": 1} and run.shared_data_repr_keys == ["when"]
    assert pickle.loads(run.shared_data_pickle) == {"when": (1, 2), "x": 1}
    assert [i.status for i in items] == [i.status for i in state.items]
    assert items[0].input == Payload(pickle=pickle.dumps({"n": 0}, protocol=5), json={"n": 0}, repr="{'n': 0}")
    assert items[1].result.json == {"offset": 1, "square": 1} and items[2].result is None
    assert (items[2].error_type, items[2].error_message, items[2].traceback) == (
        "builtins.ValueError",
        "bad 2",
        TRACEBACK,
    )


def test_reader_filters_by_offset_and_until(db):
    events = sample_events()
    record(db, events, 5)
    with open_recording(db) as r:
        assert [e for _, _, e in r.events(offsets=[1, 3])] == [at_rest(e) for e in events if e.offset in (1, 3)]
        assert [seq for seq, _, _ in r.events(until=4)] == [0, 1, 2, 3, 4]
        assert [e for _, _, e in r.events(offsets=range(1000), until=2)] == [at_rest(e) for e in events[:3]]


def test_throughput_200k_events_round_trip(db):
    """Time lives in `make bench`; this only shows that 200,000 events go in and come back."""
    rec = Recorder.open(db, header(), [{}], {})
    first = Started(offset=0, pid=1, time=T0)
    rec.append(0, T0, first)
    for seq in range(1, 200_000):
        rec.append(seq, T0, log(seq))
        if seq % 100 == 0:
            rec.maybe_commit(time.monotonic())
    rec.close()
    assert rec.failure is None
    with open_recording(db) as r:
        count, last = 0, None
        for count, (_, _, last) in enumerate(r.events(), 1):  # noqa: B007 (both are read after the loop)
            pass
    assert count == 200_000 and last == log(199_999)


def test_a_checkpoint_cut_short_is_completed_from_the_log_not_refused(db, tmp_path):
    """A writer killed mid-checkpoint can leave the file shorter than its header says, with
    the write-ahead log beside it holding every page: SQLite completes it on open."""
    rec = Recorder.open(db, header(), [{}], {})
    rec._conn.execute("PRAGMA wal_autocheckpoint = 0")  # every page stays in the log
    for seq in range(20_000):
        rec.append(seq, T0, log(seq))
    rec._flush()
    copy = tmp_path / "copy.db"
    Path(str(copy) + "-wal").write_bytes(Path(db + "-wal").read_bytes())
    Path(copy).write_bytes(Path(db).read_bytes())
    rec.close()
    # What the checkpoint wrote first: the newest page 1 from the log, which states the new size.
    wal = Path(str(copy) + "-wal").read_bytes()
    page_size = int.from_bytes(wal[8:12], "big")
    frames = range(32, len(wal) - page_size, 24 + page_size)
    newest_page_1 = [f for f in frames if int.from_bytes(wal[f : f + 4], "big") == 1][-1]
    page_1 = wal[newest_page_1 + 24 : newest_page_1 + 24 + page_size]
    with open(copy, "r+b") as main:
        main.write(page_1)
    assert os.path.getsize(copy) < int.from_bytes(page_1[28:32], "big") * page_size  # "truncated"
    with open_recording(str(copy)) as r:
        assert sum(1 for _ in r.events()) == 20_000


def truncated(path):
    record(path, sample_events(), 5)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def not_sqlite(path):
    Path(path).write_bytes(b"PK\x03\x04" + bytes(200))


BAD_RECORDINGS = {
    "missing": (lambda p: None, "no such file"),
    "empty": (lambda p: Path(p).write_bytes(b""), "empty SQLite database, not an mpmq recording"),
    "not SQLite": (not_sqlite, "is not a SQLite database"),
    "foreign SQLite": (foreign_db, "is a SQLite database but not an mpmq recording"),
    "newer format": (newer_recording, "newer than this mpmq"),
    "truncated": (truncated, "is truncated or corrupted"),
}


@pytest.mark.parametrize("case", BAD_RECORDINGS)
def test_reader_refuses_bad_files_in_one_line(tmp_path, case):
    db = str(tmp_path / "run.db")
    make, message = BAD_RECORDINGS[case]
    make(db)
    before = sorted(os.listdir(os.path.dirname(db)))
    with pytest.raises(RecordingError, match=message) as info:
        open_recording(db)
    assert db in str(info.value) and "\n" not in str(info.value)
    assert sorted(os.listdir(os.path.dirname(db))) == before  # never creates a file


def test_reader_unknown_run_names_the_run_and_file(db):
    record(db, [], 0)
    with open_recording(db) as r, pytest.raises(RecordingError, match=r"has no run 7 \(its runs: 1\)") as info:
        r.run(7)
    assert db in str(info.value)


def test_reader_corrupted_rows_are_recording_errors(db):
    record(db, sample_events(), 5)  # appended one event at a time: batch N holds event N
    conn = sqlite3.connect(db)
    if file_format(db) == 1:
        conn.execute("UPDATE events SET message = NULL WHERE seq = 3 AND kind = 'log'")
        conn.execute("UPDATE events SET kind = 'teleported' WHERE seq = 0")
    else:
        conn.execute("UPDATE batches SET events = json_set(events, '$[0].message', NULL) WHERE seq = 3")
        conn.execute("UPDATE batches SET events = json_set(events, '$[0].kind', 'teleported') WHERE seq = 0")
    conn.commit()
    conn.close()
    with open_recording(db) as r:
        with pytest.raises(RecordingError, match="is corrupted: (event|batch) 3"):
            list(r.events(offsets=[1]))
        unknown = "event 0 has kind 'teleported', unknown to this mpmq"
        with pytest.raises(RecordingError, match=unknown):
            list(r.events(until=0))


def test_reader_item_count_is_the_item_rows_and_a_header_that_disagrees_is_refused(db):
    record(db, sample_events(), 5)
    with open_recording(db) as r:
        assert r.item_count() == 5
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET item_count = NULL")  # a header its writer never completed
    conn.commit()
    with open_recording(db) as r:
        assert r.item_count() == 5
        assert len(list(r.events())) == len(sample_events())
    conn.execute("UPDATE runs SET item_count = 4")
    conn.commit()
    conn.close()
    with open_recording(db) as r, pytest.raises(RecordingError, match="run 1 says it has 4 items, but 5 are recorded"):
        r.item_count()


def test_reader_never_unpickles_a_crafted_pickle(db, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    record(db, item_events(0), 1, keep_pickle=True)
    conn = sqlite3.connect(db)
    if file_format(db) == 1:
        conn.execute("UPDATE events SET pickle = ? WHERE kind = 'result'", (pickle.dumps(Exploit()),))
    else:
        assert conn.execute("UPDATE pickles SET pickle = ?", (pickle.dumps(Exploit()),)).rowcount == 1
    tamper.set_item_pickles(conn, pickle.dumps(Exploit()))
    conn.commit()
    conn.close()
    with open_recording(db) as r:
        events = list(r.events())
        items = r.items()
        r.runs()
    assert isinstance(events[-2][2].value.pickle, bytes) and isinstance(items[0].result.pickle, bytes)
    assert not marker.exists()


# --- starting the run in the file later (issue 18: not before the first item) --------------


def test_a_run_started_later_is_checked_now_and_written_by_the_recorder_s_thread(db):
    existing = os.path.exists(db)
    rec = Recorder.open(db, header(item_count=5), [{"n": o} for o in range(5)], {}, start_later=True)
    assert rec.run_id is None  # nothing written yet, beyond creating a new file (0600)
    if not existing:  # the empty recording every new file starts as (recording/template.py)
        assert stat.S_IMODE(os.stat(db).st_mode) == 0o600 and sql(db, "SELECT count(*) FROM runs") == [(0,)]
    events = sample_events()
    state = RunState.new(5)
    rec.append_batch(1, T0, events[:4])  # events before the run's rows exist are kept
    rec.write_in_background()
    rec.append_batch(5, T0 + 1, events[4:])
    for event in events:
        reduce(state, event)
    rec.finish("failed", state)
    assert rec.failure is None and rec.run_id == 1
    with open_recording(db) as r:
        assert [e for _, _, e in r.events()] == [at_rest(e) for e in events]
        assert r.run().status == "failed" and [i.status for i in r.items()] == [i.status for i in state.items]


def test_a_run_started_later_that_cannot_start_is_a_recording_failure_not_an_error(db):
    def broken_header():
        raise OSError(28, "No space left on device")

    rec = Recorder.open(db, broken_header, [{}], {}, start_later=True)
    rec.write_in_background()
    rec.append(1, T0, Started(offset=0, pid=1, time=T0))
    rec.finish("succeeded", RunState.new(1))  # never raises into the run
    assert "recording to" in rec.failure and "as the run started: RecordingError" in rec.failure
    assert "No space left on device" in rec.failure
    existed = os.path.exists(db) and file_format(db) < FORMAT_VERSION  # the format 1 file made beforehand
    if existed:
        assert sql(db, "SELECT count(*) FROM runs") == [(0,)]  # it keeps no trace of the run
    else:
        assert not os.path.exists(db)  # a file created for it goes again


def test_a_run_started_later_refuses_a_bad_target_at_once(tmp_path):
    foreign = str(tmp_path / "foreign.db")
    foreign_db(foreign)
    with pytest.raises(RecordingError, match="is a SQLite database but not an mpmq recording"):
        Recorder.open(foreign, header(), [{}], {}, start_later=True)


def _nested(depth, leaf):
    value = leaf
    for _ in range(depth):
        value = {"k": [value]}
    return value


ONE_PASS_VALUES = [
    {"n": 1}, {"a": {"b": [1, 2.5, "x", None, True]}}, {"db_password": "x", "n": 1}, {"t": (1, {"token": 2})},
    [{"auth": 1}, ({"secret": 2},)], ({"ok": 1},), {1: "int key"}, {"x": float("nan")}, {"big": 2**70},
    {"s": "\udcff"}, {"b": b"bytes"}, {"set": {1, 2}}, collections.OrderedDict(a=1),
    collections.OrderedDict(token=1), types.MappingProxyType({"a": [1]}), types.MappingProxyType({"api_key": 1}),
    _nested(30, {"token": 1}), _nested(60, {"token": 1}), _nested(60, 1), _nested(120, 1), "text", None, 3.5,
]  # fmt: skip


@pytest.mark.parametrize("patterns", [patterns_for(True), patterns_for(False)], ids=["redact", "no redaction"])
@pytest.mark.parametrize("keep_pickle", [False, True])
@pytest.mark.parametrize("value", ONE_PASS_VALUES, ids=range(len(ONE_PASS_VALUES)))
def test_an_input_in_one_pass_rests_exactly_as_redact_then_for_rest_kept_it(value, patterns, keep_pickle):
    """Issue 18, point 6: one walk redacts an input and judges its JSON; the columns are those
    the separate steps (redact, then payload.for_rest, then encode) gave."""
    rest = for_rest(redact(value, patterns), keep_pickle)
    old = (checked_json_text(rest.json), clean_text(rest.repr), rest.pickle)
    assert input_columns(value, patterns, keep_pickle) == old


# --- format 3: items in chunks (issue 18) ----------------------------------------------------


def test_format_3_a_quiet_run_s_items_are_their_chunks_each_once(tmp_path):
    """Trivial items travel in chunks: their outcomes are those chunks, never a row of their
    own, and each item is in the view once, with its result."""
    from bench.workloads import inc
    from mpmq import MPmq

    path = str(tmp_path / "run.db")
    results = MPmq(inc, process_data=[{"i": i} for i in range(3000)], processes_to_start=2).execute(record=path)
    assert results == list(range(1, 3001))
    assert sql(path, "SELECT count(*) FROM outcomes") == [(0,)]
    counts = sql(path, 'SELECT count(*), count(DISTINCT "offset"), sum(status = \'succeeded\'),'
                       ' sum(CAST(result AS INTEGER) = "offset" + 1) FROM items')  # fmt: skip
    assert counts == [(3000, 3000, 3000, 3000)]
    with open_recording(path) as recording:
        assert [item.result.json for item in recording.items()] == results


def test_format_3_an_item_of_a_chunk_failed_afterwards_has_an_outcome_of_its_own(tmp_path):
    """The run's state has the last word: an item the parent failed after its chunk came (a
    death noticed late) gets an outcome row, which the view and the reader take over the chunk."""
    path = str(tmp_path / "run.db")
    rec = Recorder.open(path, header(item_count=3), [{"n": n} for n in range(3)], {})
    state = RunState.new(3)
    chunk = Ran(offset=0, pid=7, time=T0, offsets=[0, 1, 2], starts=[T0, T0 + 1, T0 + 2],
                ends=[T0 + 0.5, T0 + 1.5, T0 + 2.5], values=[None, 1, 2])  # fmt: skip
    late = Error(offset=1, pid=7, time=T0 + 4, type="mpmq.errors.WorkerDied", message="died", traceback="")
    for seq, batch in ((0, [chunk]), (9, [late])):
        rec.append_batch(seq, T0 + 5, batch)
        for event in batch:
            reduce(state, event)
    rec.finish("failed", state)
    assert sql(path, 'SELECT "offset", status, result, error_type FROM items ORDER BY "offset"') == [
        (0, "succeeded", "null", None), (1, "succeeded", "1", "mpmq.errors.WorkerDied"), (2, "succeeded", "2", None)]
    with open_recording(path) as recording:
        items = recording.items()
    assert [(i.result.json, i.error_type) for i in items] == [(None, None), (1, "mpmq.errors.WorkerDied"), (2, None)]


def test_format_3_a_chunk_out_of_order_is_found_by_each_of_its_items(tmp_path):
    """A chunk's offsets need not run in order (items put back after a death): its batch row
    still spans them all, and each item's events and outcome are found by its offset."""
    path = str(tmp_path / "run.db")
    rec = Recorder.open(path, header(item_count=6), [{"n": n} for n in range(6)], {})
    state = RunState.new(6)
    chunk = Ran(offset=0, pid=7, time=T0, offsets=[0, 5, 2], starts=[T0, T0 + 1, T0 + 2],
                ends=[T0 + 0.5, T0 + 1.5, T0 + 2.5], values=[10, 15, 12])  # fmt: skip
    rec.append_batch(0, T0 + 3, [chunk])
    reduce(state, chunk)
    rec.finish("interrupted", state)
    assert sql(path, "SELECT first_offset, last_offset FROM batches") == [(0, 5)]
    assert sql(path, 'SELECT "offset", status, result FROM items WHERE status = \'succeeded\' ORDER BY "offset"') == [
        (0, "succeeded", "10"), (2, "succeeded", "12"), (5, "succeeded", "15")]
    with open_recording(path) as recording:
        assert [(e.offset, type(e).__name__) for _, _, e in recording.events(offsets=[5])] == [
            (5, "Started"), (5, "Result"), (5, "Done")]
        assert [i.status for i in recording.items()] == ["succeeded", "pending", "succeeded", "pending", "pending",
                                                        "succeeded"]  # fmt: skip
