"""Real runs of the engine: real worker processes, no mocking."""

import json
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sqlite3
import time

import pytest

from fixtures import tamper, workers
from mpmq import Done, Error, Log, MPmq, Result, RunFailed, Started
from mpmq.backends.chunk_sizes import ChunkSizer
from mpmq.backends.local.pool import WorkerPool
from mpmq.calling import KWARGS
from mpmq.errors import ItemCancelled
from mpmq.events import Ran
from mpmq.mpmq import NoActiveProcesses
from mpmq.state import FOLDS


@pytest.fixture(params=["fork", "spawn"])
def method(request):
    return request.param


class Collector(MPmq):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = []

    def process_message(self, offset, message):
        self.messages.append((offset, message))


def test_results_come_back_in_item_order_when_later_items_finish_first(method):
    data = [{"delay": 0.05 * (4 - i), "value": i} for i in range(4)]
    assert MPmq(workers.sleep_then_return, process_data=data, context=method).execute() == [0, 1, 2, 3]


def test_item_keys_and_shared_data_are_keyword_arguments(method):
    data = [{"pid": i} for i in range(3)]
    assert MPmq(workers.add, process_data=data, shared_data={"number": 10}, context=method).execute() == [10, 11, 12]


def test_functions_with_required_parameters_get_item_and_shared_data_positionally(method):
    results = MPmq(workers.positional, process_data=[{"a": 1}], shared_data={"s": 2}, context=method).execute()
    assert results == [{"item": {"a": 1}, "shared": {"s": 2}}]


def test_an_item_key_named_offset_belongs_to_the_user():
    assert MPmq(workers.takes_offset, process_data=[{"offset": "mine"}, {}]).execute() == ["mine", None]


def test_empty_process_data_runs_nothing():
    assert MPmq(workers.add, process_data=[]).execute() == []


def test_none_process_data_runs_the_function_once_with_shared_data():
    assert MPmq(workers.add, shared_data={"pid": 1, "number": 1}).execute() == [2]


def test_more_items_than_processes_all_run_on_at_most_n_processes(method):
    results = MPmq(workers.pid_of, process_data=[{"value": i} for i in range(20)], processes_to_start=2,
                   context=method).execute()
    assert len(results) == 20 and len(set(results)) <= 2


def test_max_items_per_worker_one_gives_every_item_a_fresh_process(method):
    results = MPmq(workers.pid_of, process_data=[{"value": i} for i in range(4)], processes_to_start=2,
                   max_items_per_worker=1, context=method).execute()
    assert len(set(results)) == 4


def test_log_lines_arrive_fully_formatted_with_upstream_prefixes(method):
    run = Collector(workers.chatty, process_data=[{"name": "a"}], context=method)
    assert run.execute() == ["a"]
    assert run.messages == [
        (0, "debug a"),
        (0, "INFO: x=5"),
        (0, "WARN: careful"),
        (0, "ERROR: bad"),
        (0, "INFO: DONE"),
        (0, "INFO: ERROR"),
        (0, "INFO: line one\nline two"),
        (0, "ERROR: caught it"),
    ]


def test_typed_events_carry_levels_loggers_and_exception_text(method):
    class Typed(MPmq):
        events = []

        def process_event(self, event):
            self.events.append(event)

    run = Typed(workers.chatty, process_data=[{"name": "a"}], context=method)
    assert run.execute() == ["a"]
    kinds = [type(e) for e in run.events]
    assert kinds[0] is Started and kinds[-2:] == [Result, Done] and kinds.count(Log) == 8
    logs = [e for e in run.events if type(e) is Log]
    assert logs[1].level == 20 and logs[1].logger == "fixtures.workers"
    assert "KeyError: 'inner'" in logs[-1].exc_text
    assert {e.pid for e in run.events} == {run.events[0].pid}


def test_logging_set_up_for_one_item_does_not_leak_into_the_next():
    run = Collector(workers.chatty, process_data=[{"name": "a"}, {"name": "b"}], processes_to_start=1)
    run.execute()
    first = [m for o, m in run.messages if o == 0]
    second = [m for o, m in run.messages if o == 1]
    assert len(first) == len(second) == 8 and second[0] == "debug b"


def test_an_item_that_reconfigures_logging_leaves_the_next_item_the_same_set_up(method):
    data = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    run = Collector(workers.reconfigure_logging, process_data=data, processes_to_start=1, context=method)
    first, *later = run.execute()
    assert first[0] == "DEBUG" and later == [first, first]
    assert run.messages == [(0, "debug a"), (1, "debug b"), (2, "debug c")]


def test_a_handler_made_in_an_item_sees_complete_records(method):
    run = Collector(workers.record_details, process_data=[{"own_handler": True}], context=method)
    [seen] = run.execute()
    pid = run.state.items[0].pid
    assert seen["funcName"] == "record_details" and seen["lineno"] > 0
    assert seen["threadName"] == "MainThread" and seen["process"] == pid and seen["processName"].startswith("mpmq")
    assert run.messages == [(0, "INFO: through my own handler")]


def test_records_skip_lookups_only_while_no_other_handler_lives():
    """Under spawn a worker starts with no handler but ours (fork inherits pytest's)."""
    data = [{}, {"own_handler": True}, {}]
    lean, own, lean_again = MPmq(workers.record_details, process_data=data, processes_to_start=1,
                                 context="spawn").execute()
    assert lean == lean_again == {"caller_lookup": False, "thread_lookup": False}
    assert own["caller_lookup"] is False and own["funcName"] == "record_details"


def test_only_overridden_hooks_are_called_and_each_sees_its_event():
    seen = []

    class Done_(MPmq):
        def complete_process(self, offset):
            seen.append(("complete", offset, self.state.items[offset].status))
            super().complete_process(offset)

    Done_(workers.sleep_then_return, process_data=[{"value": i} for i in range(3)], processes_to_start=1).execute()
    assert seen == [("complete", i, "succeeded") for i in range(3)]


def test_failed_items_return_their_exception_with_the_remote_traceback(method):
    data = [{"value": i, "bad": 1} for i in range(3)]
    run = Collector(workers.fail_on, process_data=data, context=method)
    results = run.execute()
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad value 1"
    assert "in fail_on" in results[1].remote_traceback
    assert (1, "ERROR: bad value 1") in run.messages


def test_raise_if_error_names_every_failed_offset():
    data = [{"value": i, "bad": i if i in (1, 3) else -1} for i in range(4)]
    with pytest.raises(RunFailed, match="the process at offset 1, 3 had errors") as caught:
        MPmq(workers.fail_on, process_data=data).execute(raise_if_error=True)
    assert set(caught.value.errors) == {1, 3}
    assert "ValueError: bad value 3" in caught.value.tracebacks[3]


def test_by_default_items_queued_after_a_failure_still_run():
    data = [{"value": i, "bad": 0} for i in range(5)]
    results = MPmq(workers.fail_on, process_data=data, processes_to_start=1).execute()
    assert isinstance(results[0], ValueError) and results[1:] == [1, 2, 3, 4]


def test_stop_on_error_cancels_every_item_that_never_ran():
    data = [{"value": i, "bad": 1} for i in range(5)]
    results = MPmq(workers.fail_on, process_data=data, processes_to_start=1, stop_on_error=True).execute()
    assert results[0] == 0 and isinstance(results[1], ValueError)
    assert all(isinstance(r, ItemCancelled) for r in results[2:])


def test_an_item_holding_a_queue_gets_a_process_of_its_own(method):
    ctx = multiprocessing.get_context(method)
    q = ctx.Queue()
    data = [{"queue": q, "value": i} for i in range(3)]
    assert MPmq(workers.put_on_queue, process_data=data, processes_to_start=2, context=method).execute() == [0, 1, 2]
    assert sorted(q.get(timeout=5) for _ in range(3)) == [0, 1, 2]


def test_forked_workers_take_items_they_inherited_without_pickling_them():
    """Under fork no item is pickled: items pickle refuses (a lock) run in the regular workers."""
    import threading

    data = [{"resource": threading.Lock(), "value": i} for i in range(6)]
    results = MPmq(workers.pid_holding, process_data=data, processes_to_start=2, context="fork").execute()
    assert [value for value, _ in results] == list(range(6))
    assert len({pid for _, pid in results}) <= 2


def test_hooks_see_counters_already_updated():
    seen = []

    class Hooks(MPmq):
        def on_start_process(self):
            seen.append(("start", self.active_processes, self.completed_processes))

        def on_complete_process(self):
            seen.append(("complete", self.active_processes, self.completed_processes))

    Hooks(workers.sleep_then_return, process_data=[{"value": 1}, {"value": 2}], processes_to_start=1).execute()
    assert seen == [("start", 1, 0), ("complete", 0, 1), ("start", 1, 1), ("complete", 0, 2)]


def test_processes_table_is_filled_for_every_offset_with_a_duration():
    run = MPmq(workers.sleep_then_return, process_data=[{"value": i} for i in range(3)], processes_to_start=1)
    run.execute()
    assert sorted(run.processes) == [0, 1, 2]
    for meta in run.processes.values():
        assert meta["duration"] == "0:00:00" and meta["stop_time"] >= meta["start_time"]


def test_pull_seams_drive_a_run_the_way_mpcurses_does():
    """mpcurses runs its own loop out of start_processes, message_queue.get(False) and
    process_control_message; the strings and the end-of-run signal must be 0.7.0's."""
    run = MPmq(workers.chatty, process_data=[{"name": "a"}, {"name": "b"}], processes_to_start=1)
    run.start_processes()
    received, empties = [], 0
    try:
        while True:
            try:
                message = run.message_queue.get(False)
            except queue.Empty:
                empties += 1
                continue
            received.append(message)
            if message in ("#0-DONE", "#1-DONE", "#0-ERROR", "#1-ERROR"):
                run.process_control_message(int(message[1]), message[3:])
            assert run.process_queue.qsize() in (0, 1)
    except NoActiveProcesses:
        pass
    finally:
        run._end("succeeded")
    assert received[0] == "#0-debug a" and "#0-INFO: DONE" in received and "#0-INFO: ERROR" in received
    assert received[-1] == "#1-DONE" and received.count("#0-DONE") == 1
    assert run.completed_processes == 2 and run.active_processes == 0


def test_get_message_parses_offsets_and_controls():
    run = MPmq(workers.fail_on, process_data=[{"value": 0, "bad": 0}])
    run.start_processes()
    messages = []
    try:
        while True:
            try:
                messages.append(run.get_message())
            except queue.Empty:
                continue
            if messages[-1]["control"] == "DONE":
                break
    finally:
        run._end("failed")
    assert messages == [
        {"offset": 0, "control": None, "message": "ERROR: bad value 0"},
        {"offset": 0, "control": "ERROR", "message": "#0-ERROR"},
        {"offset": 0, "control": "DONE", "message": "#0-DONE"},
    ]


def test_a_subclass_written_for_0_2_gets_results_in_process_data_and_finished_processes():
    class Old(MPmq):
        lines = []

        def process_non_control_message(self, offset, message):
            self.lines.append((offset, message))

    data = [{"pid": 1}, {"pid": 2}]
    run = Old(workers.positional, process_data=data, shared_data={"number": 1})
    run.execute()
    assert data[0]["result"] == {"item": {"pid": 1}, "shared": {"number": 1}}
    assert sorted(run.finished_processes) == [0, 1]
    assert run.finished_processes[0]["duration"] == "0:00:00"


class KindsByItem(MPmq):
    """Notes the kind of every event ``process_event`` receives, per item."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kinds = {}

    def process_event(self, event):
        self.kinds.setdefault(event.offset, []).append(type(event).__name__)
        super().process_event(event)


def test_every_event_reaches_process_event_in_order_per_item(method):
    run = KindsByItem(workers.fail_on, process_data=[{"value": i, "bad": 2} for i in range(4)], context=method)
    run.execute()
    for offset, kinds in run.kinds.items():
        last = ["Error", "Done"] if offset == 2 else ["Result", "Done"]
        assert kinds[0] == "Started" and kinds[-2:] == last


def test_state_is_derived_from_events():
    run = MPmq(workers.fail_on, process_data=[{"value": i, "bad": 1} for i in range(3)])
    run.execute()
    assert run.state.counts() == {"pending": 0, "running": 0, "succeeded": 2, "failed": 1}
    assert isinstance(run.state.items[1].error, Error)


def test_forkserver_runs_items_like_the_other_start_methods():
    """Python 3.14 made forkserver the Linux default."""
    data = [{"pid": i} for i in range(3)]
    assert MPmq(workers.add, process_data=data, shared_data={"number": 1}, context="forkserver").execute() == [1, 2, 3]


def test_start_method_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("MPMQ_START_METHOD", "spawn")
    run = MPmq(workers.add, process_data=[{"pid": 1}], shared_data={"number": 1})
    assert run.context.get_start_method() == "spawn" and run.execute() == [2]


def test_a_0_2_subclass_gets_results_in_process_data_after_a_replay_too(tmp_path):
    class Old(MPmq):
        def process_non_control_message(self, offset, message):
            pass

    path = str(tmp_path / "run.db")
    Old(workers.positional, process_data=[{"pid": 1}]).execute(record=path)
    data = [{"pid": 1}]
    Old(workers.positional, process_data=data).replay(path)
    assert data[0]["result"] == {"item": {"pid": 1}, "shared": {}}


def test_parent_run_links_a_recorded_run_to_the_one_it_re_runs(tmp_path):
    import sqlite3

    path = str(tmp_path / "run.db")
    MPmq(workers.add, process_data=[{"pid": 1}], shared_data={"number": 1}).execute(record=path)
    MPmq(workers.add, process_data=[{"pid": 1}], shared_data={"number": 1}).execute(record=path, parent_run=1)
    rows = sqlite3.connect(path).execute("SELECT id, parent_run FROM runs ORDER BY id").fetchall()
    assert rows == [(1, None), (2, 1)]


def test_an_item_may_start_processes_of_its_own():
    assert MPmq(workers.start_a_child, process_data=[{"value": 1}]).execute() == [1]


@pytest.mark.parametrize("lines", [10, 5000])  # within one batch; several, one of them partial
def test_what_a_process_forked_by_the_item_logs_arrives_once(lines):
    """It inherits the worker's logging. Before, it also sent the worker's unsent events again
    (each arrived twice) and lost its own last batch."""

    class Messages(MPmq):
        def process_message(self, offset, message):
            self.got.setdefault(offset, []).append(message)

    run = Messages(workers.child_logs, process_data=[{"value": v, "lines": lines} for v in range(4)],
                   processes_to_start=2, item_timeout=30, context="fork")
    run.got = {}
    assert run.execute() == [0, 0, 0, 0]
    for value in range(4):
        child = [f"INFO: child{value} line {line}" for line in range(lines)]
        assert run.got[value] == [f"INFO: item {value} before", *child, f"INFO: item {value} after"]


@pytest.mark.parametrize("lines, pad", [(30_000, 0), (3_000, 300)])  # pad: frames beyond the reader's buffer
def test_an_item_and_the_process_it_forked_may_log_at_the_same_time(lines, pad):
    """Both sent to the worker's connection: their frames interleaved mid-frame and the parent
    waited for ever on a length that was not one. Now every line arrives once, in order."""

    class Lines(MPmq):
        def process_message(self, offset, message):
            source, number = message.removeprefix("INFO: ").split(" line ")
            self.got.setdefault((offset, source), []).append(int(number.split()[0]))

    data = [{"value": v, "lines": lines, "pad": pad} for v in range(2)]
    run = Lines(workers.child_logs_meanwhile, process_data=data, processes_to_start=2, context="fork")
    run.got = {}
    assert run.execute() == [0, 0]
    assert sorted(run.got) == [(0, "child0"), (0, "item0"), (1, "child1"), (1, "item1")]
    assert all(numbers == list(range(lines)) for numbers in run.got.values())


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_what_a_process_forked_by_the_item_logs_arrives_while_it_runs(start_method):
    """It has a flusher of its own, like its worker: a line it logs reaches the handler
    promptly, not when it next fills a batch or exits (here 2 s later)."""

    class Arrivals(MPmq):
        def process_message(self, offset, message):
            self.arrived[message] = time.time()

    run = Arrivals(workers.child_logs_then_sleeps, process_data=[{"value": 0, "seconds": 2.0}],
                   context=start_method)  # fmt: skip
    run.arrived = {}
    [child_ended] = run.execute()
    assert run.arrived["INFO: child0 logged"] < child_ended - 1.0


def test_a_process_the_item_forked_killed_while_logging_leaves_the_stream_whole():
    class Lines(MPmq):
        def process_message(self, offset, message):
            source = message.removeprefix("INFO: ").split(" line ")[0]
            self.got[source] = self.got.get(source, 0) + 1

    run = Lines(workers.child_killed_while_logging, process_data=[{"value": 0, "lines": 1000}], context="fork")
    run.got = {}
    assert run.execute() == [-signal.SIGKILL]
    assert run.got["item0"] == run.got["item0 after"] == 1000 and run.got["child0"] > 0


def test_a_process_the_item_forked_and_left_running_does_not_hold_the_run():
    """It holds the worker's pipe and multiprocessing's exit sentinel open; the run still ends
    when the workers do, and leaves that process alone."""
    pids = MPmq(workers.fork_and_leave, process_data=[{"value": 0}, {"value": 1}], processes_to_start=1,
                context="fork").execute()
    try:
        for pid in pids:
            os.kill(pid, 0)  # still running: the run did not wait for it
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


def test_code_after_super_process_event_runs_for_the_last_event_too():
    class After(MPmq):
        seen = []

        def process_event(self, event):
            super().process_event(event)
            self.seen.append(type(event).__name__)

    After(workers.add, process_data=[{"pid": 1}], shared_data={"number": 1}).execute()
    assert After.seen[-1] == "Done"


def test_with_stop_on_error_the_error_comes_before_the_cancellations_it_caused():
    class Order(MPmq):
        kinds = []

        def process_event(self, event):
            self.kinds.append((type(event).__name__, event.offset))

    data = [{"value": i, "bad": 0} for i in range(3)]
    Order(workers.fail_on, process_data=data, processes_to_start=1, stop_on_error=True).execute()
    errors = [offset for kind, offset in Order.kinds if kind == "Error"]
    assert errors == [0, 1, 2]


def test_remote_tracebacks_start_in_the_items_function():
    results = MPmq(workers.fail_on, process_data=[{"value": 1, "bad": 1}]).execute()
    lines = results[0].remote_traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "in fail_on" in lines[1]


def test_terminate_processes_mid_run_ends_a_0_7_loop_instead_of_hanging():
    class Impatient(MPmq):
        def on_start_process(self):
            self.terminate_processes()

    results = Impatient(workers.sleep_then_return, process_data=[{"delay": 5, "value": 1}] * 2).execute()
    assert all(isinstance(r, Exception) for r in results)


def test_replay_reports_a_divergence_in_any_recorded_item_field(tmp_path):
    import sqlite3

    from mpmq.replaying import ReplayDiverged

    path = str(tmp_path / "run.db")
    MPmq(workers.add, process_data=[{"pid": i} for i in range(3)], shared_data={"number": 1}).execute(record=path)
    with sqlite3.connect(path) as conn:
        tamper.set_item_field(conn, 2, "pid", 1)  # item 2 logged: its outcome is a row of its own
    with pytest.raises(ReplayDiverged, match=r"item 2\): pid \d+, recorded 1") as diverged:
        MPmq(workers.add, process_data=[{"pid": i} for i in range(3)]).replay(path)
    assert diverged.value.offset == 2 and diverged.value.seq > 0


def test_trivial_items_before_a_crash_in_the_same_worker_keep_their_results(method):
    """Events of trivial items may still be in the dying worker's batch: they are re-run."""
    from mpmq import WorkerDied

    data = [{"value": i, "bad": 3} for i in range(10)]
    results = MPmq(workers.exit_on, process_data=data, processes_to_start=1, context=method).execute()
    assert isinstance(results[3], WorkerDied) and "code 7" in str(results[3])
    assert results[:3] + results[4:] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_items_that_log_nothing_travel_in_chunks_folded_at_once_when_nobody_watches_them(method, monkeypatch):
    """Issue 18: a worker reports a run of trivial items as one Ran chunk, folded in one step."""
    folded = []
    fold_ran = FOLDS[Ran]
    monkeypatch.setitem(FOLDS, Ran, lambda state, event: (folded.append(event.offsets), fold_ran(state, event)))
    run = MPmq(workers.pid_of, process_data=[{"value": i} for i in range(200)], processes_to_start=2, context=method)
    results = run.execute()
    assert sorted(set(results)) == sorted({item.pid for item in run.state.items}) and len(set(results)) <= 2
    offsets = sorted(offset for chunk in folded for offset in chunk)
    assert len(offsets) > 100 and len(set(offsets)) == len(offsets)  # most items, once each
    assert len(folded) < len(offsets) / 4  # in chunks, not one by one
    assert all(chunk == list(range(chunk[0], chunk[0] + len(chunk))) for chunk in folded)
    assert run.state.succeeded == 200 and run.state.events == 600
    assert all(item.started_at <= item.ended_at for item in run.state.items)


def test_whoever_watches_gets_started_result_and_done_of_every_item_in_order(method, tmp_path):
    data = [{"value": i} for i in range(100)]
    typed = KindsByItem(workers.pid_of, process_data=data, processes_to_start=2, context=method)
    typed.execute()
    assert typed.kinds == {i: ["Started", "Result", "Done"] for i in range(100)}

    path = tmp_path / "run.db"
    MPmq(workers.pid_of, process_data=data, processes_to_start=2, context=method).execute(record=path)
    with sqlite3.connect(path) as db:
        rows = db.execute('SELECT "offset", kind FROM events ORDER BY "offset", seq').fetchall()
        seqs = [seq for (seq,) in db.execute("SELECT seq FROM events ORDER BY seq")]
    assert rows == [(i, kind) for i in range(100) for kind in ("started", "result", "done")]
    assert seqs == list(range(1, 301))


def test_a_chunk_sent_to_a_worker_that_just_died_goes_back_to_the_queue(method):
    """The parent may hand out work before it has read a worker's exit: never an error."""
    context = multiprocessing.get_context(method)
    pool = WorkerPool(workers.add, [{"a": i, "b": 1} for i in range(4)], {}, workers=1, context=context, style=KWARGS)
    try:
        worker = pool._spawn(first=None)
        worker.process.kill()
        worker.process.join()
        offsets = [pool.pending.popleft(), pool.pending.popleft()]
        pool._send(worker, offsets)  # the dead worker's end of the pipe is closed
        assert list(worker.held) == [0, 1]
        events: list = []
        pool._reap(worker, events)  # what reading its sentinel does
        assert sorted(pool.pending) == [0, 1, 2, 3] and not pool.workers
    finally:
        pool.close()


def test_an_item_stuck_holding_the_gil_times_out_even_with_large_items_queued_behind_it():
    """The parent must never block handing a busy worker more than its pipe holds: it could not
    enforce the timeout (the stuck worker cannot drain the pipe)."""
    from mpmq import ItemTimeout

    # item 15's start makes the parent top up the worker's queue with megabytes of items
    data = [{"value": i, "payload": b"x" * 200_000, "hang": 15} for i in range(40)]
    results = MPmq(workers.hang_holding_the_gil, process_data=data, processes_to_start=1, item_timeout=1).execute()
    assert isinstance(results[15], ItemTimeout)
    assert results[:15] + results[16:] == [i for i in range(40) if i != 15]


def test_chunks_shrink_with_the_queue_but_never_below_two_ms_of_work_up_to_a_limit():
    def sizer(seconds=None, items=100, quick_limit=2048):
        sized = ChunkSizer(2, 0.002, 512, quick_limit)
        if seconds is not None:
            sized.timed(items, seconds)
        return sized

    assert sizer().size(10_000) == 512  # a share of 10,000 is 2,500: capped
    assert sizer().size(100) == 25  # item times unknown: a quarter per worker pair
    assert sizer(0.001).size(600) == 200  # 10 us items: 200 make 2 ms, more than a share of 600
    assert sizer(10.0).size(100) == 25  # 100 ms items: guided again
    assert sizer(0.0001).size(10_000) == 2000  # 1 us items: 2,000 make 2 ms, more than 512 (issue 18)
    assert sizer(0.00001).size(10_000) == 2048  # 0.1 us items: capped
    assert sizer(0.00001, quick_limit=512).size(10_000) == 512
    # but never more than a worker's fair share of what is left: the end of a run is shared ...
    assert sizer(0.0001).size(1000) == 500
    # ... down to a fifth of the least work: smaller chunks cost more than they balance
    assert sizer(0.0001).size(600) == 400
    for method, quick_limit in (("fork", 16_384), ("spawn", 512)):
        # under fork a chunk is offsets alone; pickled items must fit what a busy worker may be sent
        pool = WorkerPool(workers.add, [{}] * 10, {}, workers=2, context=multiprocessing.get_context(method),
                          style=KWARGS)
        try:
            assert (pool._sizer.limit, pool._sizer.quick_limit) == (512, quick_limit)
        finally:
            pool.close()
    stopping = WorkerPool(workers.add, [{}] * 10_000, {}, workers=2, context=multiprocessing.get_context(),
                          style=KWARGS, stop_on_error=True)
    try:
        assert stopping._chunk_size() == 1  # never hold items another failure could have cancelled
    finally:
        stopping.close()


SCALARS = [True, 0, -(2**63), 2**64 - 1, 2**70, 1.5, -0.0, float("inf"), "short", "x" * 5000, None,
           workers.Colour.RED]


def test_results_keep_their_exact_type_however_they_travel(method):
    data = [{"value": v} for v in SCALARS] + [{"value": float("nan")}]
    *results, nan = MPmq(workers.sleep_then_return, process_data=data, processes_to_start=2, context=method).execute()
    assert results == SCALARS and [type(r) for r in results] == [type(v) for v in SCALARS]
    assert math.copysign(1, results[6]) == -1 and math.isnan(nan)


def test_scalar_results_are_recorded_like_any_other(tmp_path):
    db = str(tmp_path / "run.db")
    values = [True, 7, 1.5, "text", None, 2**70]
    MPmq(workers.sleep_then_return, process_data=[{"value": v} for v in values]).execute(record=db, record_pickle=True)
    with sqlite3.connect(db) as conn:
        rows = conn.execute('SELECT result, result_repr, result_pickle FROM items ORDER BY "offset"').fetchall()
        data = [json.loads(d) for (d,) in conn.execute("SELECT data FROM events WHERE kind = 'result' ORDER BY seq")]
    assert [json.loads(r[0]) for r in rows] == values
    assert [r[1] for r in rows] == [repr(v) for v in values]
    assert [pickle.loads(r[2]) for r in rows] == values
    assert sorted(d["repr"] for d in data) == sorted(repr(v) for v in values)
