"""A run on a Dask cluster is the same run, item for item, as on this machine (issue 17).

Real Dask worker processes (one ``LocalCluster`` shared by the module, see dask_cluster.py,
and ``cluster="local"`` clusters the runs own), no mocks: the same results, the same events
in per-item order reaching the same handlers, logs captured as locally, every event naming
its worker, shared_data sent once per run, and a recording that replays with the cluster gone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict

import pytest
from dask_cluster import close_shared, kept_batches, run_keys, shared_client

from fixtures import cluster_jobs
from mpmq import Done, Log, MPmq, Result, Started

pytestmark = pytest.mark.deadline(60)


@pytest.fixture(scope="module")
def dask_client():
    yield shared_client()
    close_shared()


class Watch(MPmq):
    """Keeps every event and every 0.7.0 message, per item and in order."""

    def __init__(self, function, **options) -> None:
        super().__init__(function, **options)
        self.events: list = []
        self.messages: dict[int, list[str]] = defaultdict(list)
        self.final_ran = False

    def process_event(self, event) -> None:
        self.events.append(event)
        super().process_event(event)

    def process_message(self, offset: int, message: str) -> None:
        self.messages[offset].append(message)

    def final(self) -> None:
        self.final_ran = True


def kinds_per_item(events: list) -> dict[int, list[str]]:
    kinds: dict[int, list[str]] = defaultdict(list)
    for event in events:
        kinds[event.offset].append(type(event).__name__)
    return kinds


def test_same_results_messages_and_event_order_as_a_local_run(dask_client):
    items = [{"value": value, "lines": value % 4} for value in range(30)]
    local = Watch(cluster_jobs.chatty, process_data=items, shared_data={"base": 100}, processes_to_start=2)
    remote = Watch(cluster_jobs.chatty, process_data=items, shared_data={"base": 100}, processes_to_start=2,
                   cluster=dask_client)

    assert remote.execute() == local.execute() == [value + 100 for value in range(30)]

    assert dict(remote.messages) == dict(local.messages)  # the same 0.7.0 lines, item by item
    assert remote.messages[3][0] == "INFO: item 3 line 0"
    assert "ERROR: caught in item 3" in remote.messages[3]
    [caught] = [e for e in remote.events if type(e) is Log and e.offset == 3 and e.exc_text]
    assert "KeyError: 3" in caught.exc_text
    for offset, kinds in kinds_per_item(remote.events).items():
        assert kinds[0] == "Started" and kinds[-2:] == ["Result", "Done"], (offset, kinds)
        assert set(kinds[1:-2]) <= {"Log"}, (offset, kinds)
    assert kinds_per_item(remote.events) == kinds_per_item(local.events)
    assert remote.state.complete and remote.state.succeeded == 30
    assert remote.final_ran
    assert run_keys(dask_client) == []  # nothing of the run left on the cluster
    assert kept_batches(dask_client, remote) == 0, "the scheduler still keeps the run's event batches"


def test_every_event_names_its_worker_and_process(dask_client):
    workers = dask_client.nthreads()
    run = Watch(cluster_jobs.where, process_data=[{"value": v} for v in range(8)], processes_to_start=2,
                cluster=dask_client)

    pids = run.execute()

    assert {event.worker for event in run.events} <= set(workers)
    assert all(event.worker for event in run.events)
    for event in run.events:
        assert event.pid == pids[event.offset]  # the pid of the Dask worker process that ran it
    assert set(pids) <= set(dask_client.run(os.getpid).values())
    assert all(item.pid == pids[item.offset] for item in run.state.items)


def test_processes_to_start_caps_the_items_running_at_once(dask_client):
    running, most = 0, 0

    class Count(Watch):
        def process_event(self, event):
            nonlocal running, most
            if type(event) is Started:
                running += 1
                most = max(most, running)
            elif type(event) is Done:
                running -= 1
            super().process_event(event)

    run = Count(cluster_jobs.nap, process_data=[{"value": v, "seconds": 0.05} for v in range(6)],
                processes_to_start=1, cluster=dask_client)

    assert run.execute() == list(range(6))
    assert most == 1


def test_shared_data_reaches_each_worker_once_not_once_per_item(dask_client, tmp_path):
    counted = cluster_jobs.Counted(str(tmp_path))
    # stop_on_error makes every item a task of its own: 12 tasks, each needing shared_data
    run = Watch(cluster_jobs.uses_counted, process_data=[{"value": v} for v in range(12)],
                shared_data={"counted": counted}, processes_to_start=2, stop_on_error=True, cluster=dask_client)

    assert run.execute() == [v * 2 for v in range(12)]
    unpickled = list(tmp_path.glob("unpickled-*"))
    assert 1 <= len(unpickled) <= len(dask_client.nthreads()), unpickled


def test_many_small_items_travel_in_chunks(dask_client):
    run = Watch(cluster_jobs.trivial, process_data=[{"value": v} for v in range(2000)], processes_to_start=2,
                cluster=dask_client)

    assert run.execute() == list(range(2000))
    assert run.state.succeeded == 2000
    submitted = {event.offset for event in run.events if type(event) is Started}
    assert submitted == set(range(2000))


def test_a_run_owns_its_local_cluster_and_closes_it(processes):
    run = Watch(cluster_jobs.where, process_data=[{"value": v} for v in range(4)], processes_to_start=2,
                cluster="local")

    pids = run.execute()

    assert len(set(pids)) in (1, 2) and os.getpid() not in pids
    assert processes.still_running(set(pids), within=10) == []  # the cluster's workers are gone


def test_mpmq_cluster_environment_variable_is_the_default(monkeypatch):
    monkeypatch.setenv("MPMQ_CLUSTER", "local")
    run = Watch(cluster_jobs.where, process_data=[{"value": v} for v in range(2)], processes_to_start=1)

    pids = run.execute()

    assert os.getpid() not in pids and all(event.worker for event in run.events)


def test_recorded_cluster_run_replays_with_the_cluster_gone(tmp_path):
    path = tmp_path / "run.db"
    items = [{"value": value, "lines": 2} for value in range(6)]
    live = Watch(cluster_jobs.chatty, process_data=items, processes_to_start=2, cluster="local")
    live.execute(record=path)  # an owned cluster: closed when the run ends
    with sqlite3.connect(path) as db:
        options, start_method = db.execute("SELECT options, start_method FROM runs").fetchone()
    options = json.loads(options)
    assert options["backend"] == "dask" and options["cluster"] == "local"
    assert options["scheduler"].startswith("tcp://127.0.0.1:")
    assert start_method is None  # no local process was started: fork or spawn would be untrue

    replayed = Watch(cluster_jobs.chatty, process_data=items, processes_to_start=2)
    assert replayed.replay(path) == live.results() == list(range(6))
    assert dict(replayed.messages) == dict(live.messages)
    assert [type(e) for e in replayed.events] == [type(e) for e in live.events]

    # and in a process that never imported Dask: the CLI reads it
    code = ("import sys; from replay.cli import main; sys.argv = ['mpmq-replay', 'logs', sys.argv[1]]; "
            "main.main(sys.argv[1:], standalone_mode=False); assert 'distributed' not in sys.modules")
    shown = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "item 5 line 1" in shown.stdout
    summary = subprocess.run([sys.executable, "-m", "replay.cli", "summary", str(path)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    assert "(dask cluster, 2 processes)" in summary.stdout, summary.stdout


def test_import_mpmq_never_imports_distributed():
    code = "import sys, mpmq; print('distributed' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out


def test_results_and_errors_are_read_like_local_ones(dask_client):
    run = Watch(cluster_jobs.chatty, process_data=[{"value": 1}, {"value": "x", "base": None}],
                processes_to_start=2, cluster=dask_client)

    results = run.execute()

    assert results[0] == 1
    assert isinstance(results[1], TypeError)
    assert "Traceback" in run.state.items[1].error.traceback
    assert [type(e) for e in run.events if e.offset == 1][-2:] != [Result, Done]
    assert any(type(e) is Log for e in run.events if e.offset == 1)


def test_retries_on_a_cluster_are_mpmqs_attempts_as_locally(dask_client, tmp_path):
    """Issue 19 on the Dask backend: mpmq owns retries there too, attempt by attempt."""
    from fixtures import retry_workers

    data = [{"counter": str(tmp_path / "flaky"), "fails": 2, "value": 7},
            {"counter": str(tmp_path / "down"), "fails": 9, "value": 8},
            {"counter": str(tmp_path / "steady"), "value": 1}]
    run = Watch(retry_workers.flaky, process_data=data, processes_to_start=2, retries=2, cluster=dask_client)
    results = run.execute(record=str(tmp_path / "run.db"))

    assert results[0] == 7 and results[2] == 1
    assert type(results[1]) is ValueError and str(results[1]) == "call 3 failed"
    assert [str(exc) for exc in results[1].attempts] == ["call 1 failed", "call 2 failed"]
    starts = [(e.offset, e.attempt) for e in run.events if type(e) is Started]
    assert sorted(starts) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1)]
    assert [m for m in run.messages[0] if m.startswith("WARN")] == [
        "WARN: attempt 1 of 3 failed, retrying: call 1 failed", "WARN: attempt 2 of 3 failed, retrying: call 2 failed"]
    assert run.messages[1][-1] == "ERROR: call 3 failed" and run.completed_processes == 3
    assert [os.path.getsize(tmp_path / name) for name in ("flaky", "down", "steady")] == [3, 3, 1]
    replayed = Watch(retry_workers.flaky, process_data=data)
    replayed.replay(str(tmp_path / "run.db"))
    assert replayed.messages == run.messages


def test_resume_on_a_cluster_runs_only_what_did_not_succeed(dask_client, tmp_path):
    """Issue 19 on the Dask backend: a resumed run takes the recorded successes and gives the
    cluster only the rest, recorded as one complete run."""
    from fixtures import retry_workers

    db = str(tmp_path / "run.db")
    data = [{"counter": str(tmp_path / f"calls-{i}"), "number": i} for i in range(6)]
    first = MPmq(retry_workers.counted, process_data=data, processes_to_start=2, cluster=dask_client)
    assert first.execute(record=db) == [0, 2, 4, 6, 8, 10]
    data[4] = dict(data[4], number=40)  # a changed input runs again

    run = Watch(retry_workers.counted, process_data=data, processes_to_start=2, cluster=dask_client)
    assert run.execute(record=db, resume=True) == [0, 2, 4, 6, 80, 10]

    assert (run.resumed_from, run.resumed_items) == (1, [0, 1, 2, 3, 5])
    assert [retry_workers.calls(item["counter"]) for item in data] == [1, 1, 1, 1, 2, 1]
    assert run.completed_processes == 6 and sorted(run.messages) == list(range(6))
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM items WHERE run_id = 2 GROUP BY status").fetchall()
    assert rows == [("succeeded", 6)]


def test_the_report_of_a_cluster_run_draws_a_lane_per_cluster_worker(dask_client, tmp_path):
    """Issue 17, point 4: a worker is its address and pid (two machines may share a pid)."""
    db = str(tmp_path / "run.db")
    MPmq(cluster_jobs.chatty, process_data=[{"value": n} for n in range(6)], processes_to_start=2,
         cluster=dask_client).execute(record=db)
    with sqlite3.connect(db) as conn:
        workers = {row[0] for row in conn.execute(
            "SELECT DISTINCT json_extract(data, '$.worker') FROM events WHERE kind = 'started'")}
    page = subprocess.run([sys.executable, "-m", "replay.cli", "report", db, "-o", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=60)
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "r.html").read_text()
    assert workers and None not in workers
    for worker in workers:
        assert f">{worker.split('://')[-1]} pid " in html  # the lane's label
