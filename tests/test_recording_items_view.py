"""Format 3's ``items`` view and the reader join the same rows two ways (issue 18): over a live
run with every kind of outcome, they must agree with each other and with the run itself."""

from __future__ import annotations

import json
import sqlite3

import msgspec
import pytest

from fixtures.recording_workers import mixed
from mpmq import MPmq
from mpmq.recording import open_recording

COLUMNS = '"offset", input, input_repr, status, pid, started_at, ended_at, result, result_repr, error_type'


@pytest.fixture(params=["fork", "spawn"])
def method(request):
    return request.param


def test_the_items_view_and_the_reader_agree_on_a_live_run_of_every_outcome(method, tmp_path):
    path = str(tmp_path / "run.db")
    items = [{"n": n} for n in range(300)] + [{"n": 999, "when": {1, 2}}]  # the last: JSON cannot hold it
    results = MPmq(mixed, process_data=items, processes_to_start=2, context=method).execute(record=path)
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f'SELECT {COLUMNS} FROM items ORDER BY "offset"').fetchall()
        chunked = conn.execute("SELECT count(*) FROM batches WHERE seqs IS NOT NULL").fetchone()[0]
    conn.close()
    with open_recording(path) as recording:
        records = recording.items()
    assert chunked and len(rows) == len(records) == len(items)  # some items came in chunks
    for row, record, live in zip(rows, records, results, strict=True):
        offset, given, given_repr, status, pid, started, ended, result, shown, error_type = row
        assert (offset, status, pid, started, ended) == (record.offset, record.status, record.pid,
                                                         record.started_at, record.ended_at)
        if record.input.json is msgspec.UNSET:
            assert given is None and given_repr == record.input.repr
        else:
            assert json.loads(given) == record.input.json == items[offset] and given_repr is None
        if isinstance(live, Exception):
            assert status == "failed" and error_type == "builtins.ValueError" == record.error_type
            assert result is None and record.result is None
            continue
        assert status == "succeeded" and shown == record.result.repr == repr(live)
        if record.result.json is msgspec.UNSET:  # the tuple: its repr alone
            assert result is None
        else:
            assert json.loads(result) == record.result.json == live
