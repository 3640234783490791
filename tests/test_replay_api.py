"""``replay.load`` / ``replay.runs``, and live-versus-replay equality of handler calls (issue 5).

Live runs record with ``execute(record=...)`` under fork and spawn; the same handler class is
then re-driven from the recording with ``MPmq.replay`` and must receive the same calls in the
same order.
"""

from __future__ import annotations

import datetime
import os

import pytest

import replay
from fixtures import replay_handlers, tamper
from fixtures.replay_workers import work
from mpmq import MPmq
from mpmq.events import Done, Error, Log, Result, Started
from mpmq.payload import Unpickled
from mpmq.recording import RecordingError
from mpmq.replaying import ReplayDiverged

DATA = [{"n": n} for n in range(5)]
SHARED = {"bad": 3}


def record(db, handler=MPmq, start_method="fork", data=DATA, **options):
    live = handler(work, process_data=data, shared_data=SHARED, processes_to_start=2, context=start_method)
    results = live.execute(record=str(db), **options)
    return live, results


def test_load_gives_header_events_items_results_and_state(tmp_path):
    db = tmp_path / "run.db"
    live, results = record(db)
    run = replay.load(db)
    assert (run.header.id, run.header.status, run.header.item_count) == (1, "failed", 5)
    assert run.header.function == "fixtures.replay_workers:work" and run.complete
    assert [s.seq for s in run.stamped] == sorted(s.seq for s in run.stamped)
    assert [type(e) for e in run.events if e.offset == 0] == [Started, Log, Log, Result, Done]
    assert [type(e) for e in run.events if e.offset == 3][-2:] == [Error, Done]
    assert [item.status for item in run.items] == ["succeeded"] * 3 + ["failed", "succeeded"]
    assert run.results[:3] == results[:3] == [{"n": n, "square": n * n} for n in range(3)]
    # a builtin exception, rebuilt from its recorded args without unpickling (issue 19)
    assert type(run.results[3]) is ValueError and str(run.results[3]) == "bad item 3"
    assert run.state.counts() == {"pending": 0, "running": 0, "succeeded": 4, "failed": 1}
    assert run.state.events == len(run.events) == live.state.events
    assert [i.status for i in run.state.items] == [i.status for i in live.state.items]


def test_runs_lists_every_run_and_load_picks_one(tmp_path):
    db = tmp_path / "run.db"
    record(db)
    record(db, data=DATA[:2])
    assert [(r.id, r.item_count) for r in replay.runs(db)] == [(1, 5), (2, 2)]
    assert replay.load(db).header.id == 2
    assert len(replay.load(db, run=1).items) == 5
    with pytest.raises(RecordingError, match=r"has no run 7 \(its runs: 1, 2\)"):
        replay.load(db, run=7)


def test_pickles_only_with_allow_pickle(tmp_path):
    db = tmp_path / "run.db"
    data = [{"n": 0}]
    live = MPmq(tuple_result, process_data=data)
    live.execute(record=str(db), record_pickle=True)
    assert replay.load(db).results == [Unpickled("(0, 'tuple')")]
    assert replay.load(db, allow_pickle=True).results == [(0, "tuple")]


def tuple_result(n=0):
    return (n, "tuple")


def test_errors_are_one_line_recording_errors(tmp_path):
    with pytest.raises(RecordingError) as info:
        replay.load(tmp_path / "missing.db")
    assert "missing.db: no such file" in str(info.value) and "\n" not in str(info.value)


# --- live versus replay ---------------------------------------------------------------------

HANDLERS = [replay_handlers.StringCollector, replay_handlers.TypedCollector, replay_handlers.TimeReader]


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda h: h.__name__)
def test_replay_calls_equal_live_calls(tmp_path, start_method, handler):
    db = tmp_path / "run.db"
    live, results = record(db, handler, start_method)
    again = handler(work, process_data=[{}])
    replayed_results = again.replay(db)
    if handler is replay_handlers.TimeReader:
        # The clock reads each event's live receive time, not the live handler's own reading.
        stamps = replay.load(db).stamped
        assert [c[:2] for c in again.calls] == [c[:2] for c in live.calls]
        assert [c[:2] for c in again.calls] == [[type(s.event).__name__, s.event.offset] for s in stamps]
        for call, stamp in zip(again.calls, stamps):
            assert call[2] == pytest.approx(stamp.received_at, abs=1e-6)
            local = datetime.datetime.fromtimestamp(stamp.received_at)  # this process is the live one
            assert abs(datetime.datetime.fromisoformat(call[3]) - local) <= datetime.timedelta(microseconds=1)
    else:
        assert again.calls == live.calls and live.calls
    assert replayed_results[:3] == results[:3]


def test_replay_of_a_tampered_recording_diverges(tmp_path):
    import sqlite3

    db = tmp_path / "run.db"
    record(db)
    with sqlite3.connect(db) as conn:
        tamper.set_item_field(conn, 3, "status", "succeeded")
    with pytest.raises(ReplayDiverged, match=r"replay diverged at seq \d+ \(item 3\)"):
        MPmq(work).replay(db)


def test_fixture_recording_loads_with_expected_results():
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "recordings", "format-1.db")
    first = replay.load(path, run=1)
    assert first.results[0] == {"n": 0, "double": 0}
    assert first.results[1] == Unpickled("(1, 'tuple')")
    # format 1 recorded no args: a builtin comes back from its message when that says the same
    assert type(first.results[2]) is ValueError and str(first.results[2]) == "cannot convert 2"
    assert first.results[3] is None
    assert [s.seq for s in first.stamped] == list(range(15))
    rerun = replay.load(path, run=2, allow_pickle=True)
    assert rerun.header.parent_run == 1 and rerun.results == [{"n": 2, "double": 4}]


def test_handler_is_built_from_the_recorded_run_and_never_imports_what_the_file_names(tmp_path):
    import sqlite3
    import sys

    from replay.handlers import build_handler, stand_in

    db = tmp_path / "run.db"
    record(db)
    run = replay.load(db)
    handler = build_handler("fixtures.replay_handlers:StringCollector", run.header, run.items, False)
    assert handler.function is work  # its module is imported already: the real function
    assert (handler.process_data, handler.shared_data, handler.processes_to_start) == (DATA, SHARED, 2)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET function = 'antigravity:fly'")  # importing it opens a browser
    conn.close()
    crafted = replay.load(db)
    handler = build_handler("fixtures.replay_handlers:StringCollector", crafted.header, crafted.items, False)
    assert handler.function is stand_in and "antigravity" not in sys.modules


BAD_REPLAY_OPTIONS = [
    pytest.param({"speed": 0}, ValueError, r"speed must be a positive number .*, not 0", id="speed-0"),
    pytest.param({"speed": -2}, ValueError, r"speed must be a positive number .*, not -2", id="speed-negative"),
    pytest.param({"speed": "fast"}, ValueError, r"speed must be a positive number .*, not 'fast'", id="speed-str"),
    pytest.param({"speed": float("nan")}, ValueError, r"speed must be a positive number", id="speed-nan"),
    pytest.param({"until": "x"}, TypeError, r"until must be an event sequence number \(an int\), not 'x'", id="until"),
    pytest.param({"offsets": 3}, TypeError, r"offsets must be a collection of item offsets, not 3", id="offsets-int"),
    pytest.param({"offsets": [1.5]}, TypeError, r"offsets must be item offsets \(ints\), not 1.5", id="offset-float"),
    pytest.param({"offsets": [1, 5]}, ValueError, r"run 1 has no item 5 \(it has 5 items: 0 to 4\)", id="offset-5"),
    pytest.param({"offsets": [-1]}, ValueError, r"run 1 has no item -1", id="offset-negative"),
]


@pytest.mark.parametrize("options, error, says", BAD_REPLAY_OPTIONS)
def test_bad_replay_options_are_refused_before_any_handler_call(options, error, says, tmp_path):
    """Each was silently wrong (speed <= 0 ignored, an unknown item replayed as nothing at all)
    or failed deep inside with a message naming none of them."""
    db = tmp_path / "run.db"
    record(db)
    handler = replay_handlers.StringCollector(work, process_data=DATA, shared_data=SHARED)
    with pytest.raises(error, match=says):
        handler.replay(str(db), **options)
    assert handler.calls == []
