"""The failure matrix on a Dask cluster (issue 17): failures mean what they mean locally.

The same faults as tests/test_faults.py (``fixtures.faults``), run on real Dask worker
processes: four items on two one-thread workers with the fault in item 1. Each case asserts
item 1's exact outcome, that every other item's result and log lines are intact, that no
item started twice, and that nothing of the run is left on the cluster. Differences from a
local run are the cluster's own: a dead worker is named by its address, and its exit code is
unknown to the client.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest
from dask_cluster import close_shared, kept_batches, run_keys, shared_client, wait_for_workers
from test_faults import LAST_LINES, Watch, healthy_logs

from fixtures import faults
from mpmq import (
    ItemCancelled,
    ItemTimeout,
    RemoteError,
    RunFailed,
    Started,
    UnpicklableResult,
    WorkerDied,
)

pytestmark = pytest.mark.deadline(60)

FAULTY = 1
ITEMS = 4
DIED = (r"Dask worker tcp://127\.0\.0\.1:\d+ died while running item 1", r"exit code is unknown on a cluster")


@pytest.fixture(scope="module")
def dask_client():
    yield shared_client()
    close_shared()


@pytest.fixture
def cluster(dask_client):
    """The shared cluster with both its workers up, before and after the test (a worker a
    fault killed is restarted by its nanny)."""
    wait_for_workers(dask_client)
    yield dask_client
    wait_for_workers(dask_client)


class Starts(Watch):
    """Counts the starts of each item: none may run twice."""

    def __init__(self, function, **options: Any) -> None:
        super().__init__(function, **options)
        self.starts: Counter = Counter()

    def process_event(self, event) -> None:
        if type(event) is Started:
            self.starts[event.offset] += 1
        super().process_event(event)


MATRIX = [
    ("raise_error", ValueError, (r"^boom in item 1$",), {}),
    ("exit_3", SystemExit, (), {}),
    ("os_exit_7", WorkerDied, (*DIED, LAST_LINES), {}),
    ("sigkill_self", WorkerDied, (*DIED, LAST_LINES), {}),
    ("lambda_result", UnpicklableResult, (r"\btype function\b",), {}),
    ("unpicklable_exception", RemoteError, (r"cannot travel from item 1",), {}),
    ("sleep_past_timeout", ItemTimeout, (r"timed out after 1(\.0)? ?s", r"Dask worker tcp://"), {"item_timeout": 1.0}),
    ("log_flood", None, (), {}),
]


@pytest.mark.parametrize("fault, outcome, says, options", MATRIX, ids=[case[0] for case in MATRIX])
def test_fault(fault, outcome, says, options, cluster, tmp_path):
    items = [{"value": offset} for offset in range(ITEMS)]
    items[FAULTY]["fault"] = fault
    run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)}, processes_to_start=2,
                 sync_dir=tmp_path, cluster=cluster, **options)

    results = run.execute()

    for offset in range(ITEMS):
        if offset != FAULTY:
            assert results[offset] == offset * 10, f"item {offset}"
            assert run.messages[offset] == healthy_logs(offset), f"item {offset}"
    entry = results[FAULTY]
    if outcome is None:
        assert entry == FAULTY * 10
        flood = [line for line in run.messages[FAULTY] if line.startswith("INFO: flood")]
        assert flood == [f"INFO: flood {FAULTY} {number}" for number in range(faults.FLOOD_MESSAGES)]
    else:
        assert type(entry) is outcome, repr(entry)
        for pattern in says:
            assert re.search(pattern, str(entry)), (pattern, str(entry))
        with pytest.raises(RunFailed):
            run.check_results(results)
    if fault == "exit_3":
        assert entry.code == 3
    assert run.starts == Counter(range(ITEMS)), "every item started exactly once"
    assert run.final_ran
    assert run_keys(cluster) == []


def test_a_dead_workers_items_that_had_not_started_run_elsewhere_once(cluster, tmp_path):
    """One worker, twelve items in chunks: the worker dies on item 2; only item 2 fails, the
    items its task held but had not started run on the restarted worker, each once."""
    items = [{"value": offset} for offset in range(12)]
    items[2]["fault"] = "sigkill_self"
    run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)}, processes_to_start=1,
                 sync_dir=tmp_path, cluster=cluster)

    results = run.execute()

    assert type(results[2]) is WorkerDied, repr(results[2])
    assert [r for offset, r in enumerate(results) if offset != 2] == [v * 10 for v in range(12) if v != 2]
    assert run.starts == Counter(range(12))
    assert run_keys(cluster) == []


@pytest.mark.parametrize("fault, failure", [("raise_error", ValueError), ("os_exit_7", WorkerDied)])
def test_stop_on_error_finishes_running_items_and_cancels_the_rest(fault, failure, cluster, tmp_path):
    items = [{"value": offset} for offset in range(6)]
    items[0]["fault"] = fault
    items[1]["wait_for"] = "failed-0"
    run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)}, processes_to_start=2,
                 sync_dir=tmp_path, stop_on_error=True, cluster=cluster)

    results = run.execute()

    assert type(results[0]) is failure, repr(results[0])
    assert results[1] == 10
    assert [type(r) for r in results[2:]] == [ItemCancelled] * 4, results[2:]
    assert sorted(run.starts) == [0, 1], "items after the failure never started"
    assert run_keys(cluster) == []


def test_shared_data_lost_with_the_only_worker_is_sent_again(tmp_path):
    """A cluster of one worker: when it dies, so does the only copy of shared_data. The items
    after the dead one still run, on the restarted worker, with shared_data sent again."""
    import dask
    from distributed import Client, LocalCluster

    from mpmq.backends.dask.link import OWNED_CONFIG

    items = [{"value": offset} for offset in range(4)]
    items[1]["fault"] = "sigkill_self"
    with dask.config.set(OWNED_CONFIG), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as alone, \
            Client(alone, set_as_default=False) as client:
        run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)},
                     processes_to_start=1, sync_dir=tmp_path, stop_on_error=False, cluster=client)
        results = run.execute()

    assert type(results[1]) is WorkerDied, repr(results[1])
    assert [results[0], *results[2:]] == [0, 20, 30]
    assert run.starts == Counter(range(4))


def test_a_scheduler_that_reruns_cannot_when_the_dead_worker_held_the_last_shared_data(tmp_path):
    """allowed-failures 1, one worker: item 1's death takes the only copy of shared_data with
    it, so the scheduler cancels the task instead of running it again. The item fails then,
    after one run: run again as a task of its own, the scheduler would count its deaths from
    0 each time, and the item would kill its worker without end."""
    import dask
    from distributed import Client, LocalCluster

    from mpmq.backends.dask.link import OWNED_CONFIG

    items = [{"value": offset} for offset in range(4)]
    items[1]["fault"] = "sigkill_self"
    with dask.config.set({**OWNED_CONFIG, "distributed.scheduler.allowed-failures": 1}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as alone, \
            Client(alone, set_as_default=False) as client:
        run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)},
                     processes_to_start=1, sync_dir=tmp_path, cluster=client)
        results = run.execute()

    assert type(results[1]) is WorkerDied, repr(results[1])
    for pattern in (*DIED, r"last copy of shared_data", LAST_LINES):
        assert re.search(pattern, str(results[1])), (pattern, str(results[1]))
    assert [results[0], *results[2:]] == [0, 20, 30]
    assert run.starts == Counter(range(4)), "item 1 ran once"


@pytest.mark.parametrize("in_flight, saturation", [(1, 1.0), (2, 1.5)])
def test_an_item_that_kills_its_worker_before_a_word_fails_not_without_end(in_flight, saturation, tmp_path):
    """As above, but item 0 kills its worker before any of its events can leave (its start
    is never heard of): the scheduler's record of the removed worker says the task was
    there. Its first item not ended is blamed at its second such death, as for a
    ``KilledWorker``; before, it was run again as long as the cluster restarted workers.
    With two tasks on the one worker at once (``in_flight`` 2, ``worker-saturation`` 1.5)
    the record cannot say which of them ran: neither is blamed then, and the item is once
    it is the only one left; an item that only waited behind it never fails."""
    import dask
    from distributed import Client, LocalCluster

    from fixtures import cluster_jobs
    from mpmq.backends.dask.link import OWNED_CONFIG

    items = [{"value": offset} for offset in range(4)]
    config = {**OWNED_CONFIG, "distributed.scheduler.allowed-failures": 1,
              "distributed.scheduler.worker-saturation": saturation}
    with dask.config.set(config), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as alone, \
            Client(alone, set_as_default=False) as client:
        run = Starts(cluster_jobs.die_at_once_or_run, process_data=items, processes_to_start=in_flight,
                     shared_data={"sync_dir": str(tmp_path), "dies": 0}, sync_dir=tmp_path, cluster=client)
        results = run.execute()
        deaths = sum(event.get("action") == "remove-worker" for _, event in client.run_on_scheduler(
            lambda dask_scheduler: [(t, {"action": e.get("action")}) for t, e in dask_scheduler.get_events("all")]))

    assert type(results[0]) is WorkerDied, repr(results[0])
    assert re.search(r"Dask worker tcp://127\.0\.0\.1:\d+ died while running item 0", str(results[0])), results[0]
    assert results[1:] == [10, 20, 30]
    if in_flight == 1:
        assert deaths == 2, "blamed at its second death"
    assert run.starts == Counter({1: 1, 2: 1, 3: 1}), "item 0 never said it started; the others ran once"


JOIN_WAIT = 10.0  # seconds for a worker to join the cluster, and to hold shared_data


class Grows(Starts):
    """Grows a cluster of one worker by one once item 0 runs, and lets item 0 end (the file
    ``joined``) once the new worker holds data (only shared_data can reach it before item 0
    ends), or after ``JOIN_WAIT`` s. ``joined``: the new worker's address."""

    def __init__(self, function, *, growing: Any, **options: Any) -> None:
        super().__init__(function, **options)
        self.growing, self.client = growing, options["cluster"]  # the LocalCluster, its client
        self.workers: dict[int, str] = {}
        self.joined: str | None = None

    def process_event(self, event) -> None:
        if type(event) is Started:
            self.workers[event.offset] = event.worker
            if event.offset == 0:
                self.growing.scale(2)
                self.client.wait_for_workers(2, timeout=JOIN_WAIT)
                [self.joined] = set(self.client.nthreads()) - {event.worker}
                deadline = time.monotonic() + JOIN_WAIT
                while not self.client.has_what([self.joined])[self.joined] and time.monotonic() < deadline:
                    time.sleep(0.01)
                (self.sync_dir / "joined").touch()
        super().process_event(event)


def test_a_worker_that_joins_mid_run_gets_shared_data_and_takes_items(tmp_path):
    """A cluster of one worker grows by one while item 0 runs, item 1 queued behind it. The
    new worker missed the scatter of shared_data; it is given a copy, and item 2, submitted as
    item 0 ends, runs there instead of queueing behind item 1 on the busy worker. Work stealing
    is off: it may move a queued task to an idle worker by itself, and the run must not need it."""
    import dask
    from distributed import Client, LocalCluster

    from mpmq.backends.dask.link import OWNED_CONFIG

    items = [{"value": offset} for offset in range(4)]
    items[0]["wait_for"] = "joined"
    # stop_on_error: every item a task of its own, submitted as a task ends
    with dask.config.set({**OWNED_CONFIG, "distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as growing, \
            Client(growing, set_as_default=False) as client:
        run = Grows(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)},
                    processes_to_start=2, sync_dir=tmp_path, stop_on_error=True, cluster=client, growing=growing)
        results = run.execute()

    assert results == [0, 10, 20, 30]
    assert run.joined is not None and run.workers[0] != run.joined
    assert run.workers[2] == run.joined, run.workers
    assert run.starts == Counter(range(4))


def drain(backend, until) -> list:
    """Events from ``backend.receive`` until ``until(events)`` holds (the test deadline bounds it)."""
    events: list = []
    while not until(events):
        events += backend.receive(None)
    return events


def test_the_engine_decides_retries_and_the_stop_through_run_again_and_cancel_not_started(cluster, tmp_path):
    """The seam issue 19's engine drives (engine_decides): after a failure under
    stop_on_error the backend submits nothing until told; run_again runs the item again;
    cancel_not_started cancels what was not submitted, its events coming with the next receive."""
    from mpmq import Done, Error
    from mpmq.backends import cluster_backend, connect_cluster
    from mpmq.calling import KWARGS

    items = [{"value": v, "sync_dir": str(tmp_path)} for v in range(5)]
    items[0]["fault"] = "raise_error"
    backend = cluster_backend(connect_cluster(cluster, 1), faults.run_item, items, {}, workers=1, style=KWARGS,
                              item_timeout=None, stop_on_error=True, engine_decides=True)
    backend.start()
    try:
        first = drain(backend, lambda got: any(type(e) is Done for e in got))
        assert [type(e).__name__ for e in first if e.offset == 0][-2:] == ["Error", "Done"]
        assert {e.offset for e in first} == {0}  # nothing else submitted: the engine decides
        assert backend.unfinished == 4 and not backend.exhausted

        backend.run_again(0, 2)  # "retry it": it runs again, and fails again
        again = drain(backend, lambda got: any(type(e) is Done for e in got))
        assert [type(e).__name__ for e in again] == ["Started", "Error", "Done"]
        assert {e.offset for e in again} == {0}

        backend.cancel_not_started()  # "stop": items 1-4 never started
        cancelled = drain(backend, lambda got: sum(type(e) is Done for e in got) == 4)
        assert sorted(e.offset for e in cancelled if type(e) is Error) == [1, 2, 3, 4]
        assert all("cancelled" in e.message for e in cancelled if type(e) is Error)
        assert backend.exhausted
    finally:
        backend.close()


def test_a_100_mb_result_comes_back_whole(cluster, tmp_path):
    items = [{"value": offset} for offset in range(3)]
    items[1]["fault"] = "huge_result"
    run = Starts(faults.run_item, process_data=items, shared_data={"sync_dir": str(tmp_path)}, processes_to_start=2,
                 sync_dir=tmp_path, cluster=cluster)

    results = run.execute()

    assert results[0] == 0 and results[2] == 20
    assert results[1] == faults.huge_value()
    assert kept_batches(cluster, run) == 0  # the scheduler let go of its copy
