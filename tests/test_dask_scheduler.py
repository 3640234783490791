"""A run on a cluster started by hand: ``dask scheduler`` and two ``dask worker --nthreads 1``
processes on 127.0.0.1 (issue 17), reached by the scheduler's address.

The scheduler runs with ``allowed-failures`` 0, ``worker-saturation`` 1.0 and no Active
Memory Manager, as the README tells users to start one. Only the run's own client is closed
at its end; the cluster keeps running. A worker process killed from outside mid-item fails
only that item. Ctrl-C leaves the cluster running only the items that were running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fixtures import cluster_jobs, faults
from mpmq import MPmq, Started, WorkerDied

pytestmark = pytest.mark.deadline(60)

DASK = str(Path(sys.executable).parent / "dask")
SETTINGS = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    "DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START": "False",
}


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The scheduler's address, with two workers connected; all stopped after the module."""
    from distributed import Client

    directory = tmp_path_factory.mktemp("dask")
    file = directory / "scheduler.json"
    env = {**os.environ, **SETTINGS}
    log = open(directory / "cluster.log", "w")  # noqa: SIM115 (closed with the processes)
    started = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                 "--scheduler-file", str(file)], env=env, stdout=log, stderr=log)]
    try:
        deadline = time.monotonic() + 30
        while not file.exists() and time.monotonic() < deadline:  # bounded: the scheduler writes it at start
            time.sleep(0.05)
        for _ in range(2):
            started.append(subprocess.Popen(
                [DASK, "worker", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--scheduler-file",
                 str(file), "--death-timeout", "30"], env=env, stdout=log, stderr=log,
            ))
        with Client(scheduler_file=str(file), timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=30)
            address = json.loads(file.read_text())["address"]
        yield address
    finally:
        # The workers first, while the scheduler still answers their goodbyes: stopped at
        # the same moment, each waited ~8 s for a scheduler that was gone.
        for group in (started[1:], started[:1]):
            for process in group:
                process.send_signal(signal.SIGTERM)
            for process in group:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        log.close()


@pytest.fixture
def observer(scheduler):
    """A client of the test's own, to look at the cluster; both workers up before the test."""
    from distributed import Client

    with Client(scheduler, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        yield client
        client.wait_for_workers(2, timeout=30)


class Watch(MPmq):
    def __init__(self, function, **options) -> None:
        super().__init__(function, **options)
        self.starts: Counter = Counter()
        self.workers: dict[int, str] = {}
        self.kill_offset: int | None = None
        self.messages: list[tuple[int, str]] = []

        self.sync_dir: Path | None = None

    def process_message(self, offset: int, message: str) -> None:
        self.messages.append((offset, message))
        if self.sync_dir is not None and "last words of run" in message:
            (self.sync_dir / f"ack-{offset}-{message.split()[-1]}").touch()  # it may die now: its line arrived

    def process_event(self, event) -> None:
        if type(event) is Started:
            self.starts[event.offset] += 1
            self.workers[event.offset] = event.worker
            if event.offset == self.kill_offset:
                os.kill(event.pid, signal.SIGKILL)  # the worker process, from outside, mid-item
        super().process_event(event)


def test_a_run_on_a_scheduler_by_its_address_closes_only_its_own_client(scheduler, observer, tmp_path):
    workers = set(observer.nthreads())
    clients_before = observer.run_on_scheduler(cluster_jobs.client_count)
    run = Watch(faults.run_item, process_data=[{"value": v} for v in range(10)], processes_to_start=2,
                cluster=scheduler)

    assert run.execute(record=tmp_path / "run.db") == [v * 10 for v in range(10)]

    assert set(run.workers.values()) <= workers
    assert run.starts == Counter(range(10))
    deadline = time.monotonic() + 10
    while observer.run_on_scheduler(cluster_jobs.client_count) != clients_before and time.monotonic() < deadline:
        time.sleep(0.05)  # the run's client says goodbye a moment after the run
    assert observer.run_on_scheduler(cluster_jobs.client_count) == clients_before
    assert set(observer.nthreads()) == workers  # the cluster itself keeps running
    with sqlite3.connect(tmp_path / "run.db") as db:
        options = json.loads(db.execute("SELECT options FROM runs").fetchone()[0])
    assert options["backend"] == "dask" and options["cluster"] == "address"
    assert options["scheduler"] == scheduler


def test_a_worker_killed_mid_item_fails_only_that_item(scheduler, observer, tmp_path):
    items = [{"value": v} for v in range(6)]
    items[1].update(sync_dir=str(tmp_path), wait_for="never")  # still running when it is killed
    run = Watch(faults.run_item, process_data=items, processes_to_start=2, cluster=scheduler)
    run.kill_offset = 1

    results = run.execute()

    assert type(results[1]) is WorkerDied, repr(results[1])
    assert f"Dask worker {run.workers[1]} died while running item 1" in str(results[1])
    assert "exit code is unknown on a cluster" in str(results[1])
    assert [r for offset, r in enumerate(results) if offset != 1] == [v * 10 for v in range(6) if v != 1]
    assert run.starts == Counter(range(6)), "nothing ran twice"


def test_a_scheduler_that_reruns_a_dead_workers_task_shows_each_run_as_a_new_attempt(scheduler, observer, tmp_path):
    """allowed-failures 1: the scheduler runs the task of a worker that died once more, on
    another worker, before it gives up. The item is announced as a new attempt between its
    two starts (never two runs interleaved), fails once the scheduler gives up, and no other
    item runs twice (every item is a task of its own on such a scheduler).

    The first death must leave a copy of shared_data on the other worker, as it does with the
    Active Memory Manager off: with it on, ReduceReplicas could leave the only copy on the worker
    item 1 kills, and the scheduler cancels the task rather than run it again (one start, see
    test_dask_faults.py); before that was handled, mpmq ran the item again without end."""
    items = [{"value": v} for v in range(4)]
    run = Watch(cluster_jobs.die_or_run, process_data=items, processes_to_start=2, cluster=scheduler,
                shared_data={"sync_dir": str(tmp_path), "dies": 1})
    run.sync_dir = tmp_path
    observer.run_on_scheduler(cluster_jobs.allow_failures, count=1)
    try:
        results = run.execute()
    finally:
        observer.run_on_scheduler(cluster_jobs.allow_failures, count=0)

    assert type(results[1]) is WorkerDied, repr(results[1])
    assert [r for offset, r in enumerate(results) if offset != 1] == [0, 2, 3]
    assert run.starts[1] == 2 and all(run.starts[offset] == 1 for offset in (0, 2, 3)), run.starts
    item = [message for offset, message in run.messages if offset == 1]
    announced = [m for m in item if "the scheduler runs the item again, as attempt 2" in m]
    assert len(announced) == 1 and announced[0].startswith("WARN"), item


INTERRUPTED_JOB = """
import sys

from fixtures import cluster_jobs
from mpmq import MPmq

address, sync_dir, record = sys.argv[1:]


class Job(MPmq):
    def final(self):
        print("FINAL", flush=True)


items = [{"value": value, "sync_dir": sync_dir, "seconds": 3.0} for value in range(20)]
job = Job(cluster_jobs.marked_nap, process_data=items, processes_to_start=2, cluster=address)
try:
    job.execute(record=record)
except KeyboardInterrupt:
    print("KEYBOARD-INTERRUPT", flush=True)
    raise
print("RETURNED", flush=True)
"""


def markers(directory: Path, kind: str) -> set[int]:
    return {int(path.name.split("-")[1]) for path in directory.glob(f"{kind}-*")}


def test_ctrl_c_leaves_only_the_items_that_were_running_to_run_to_their_end(scheduler, observer, tmp_path):
    """Dask cannot stop a running task, and a run's first tasks hold chunks of items (20 items
    on 2 workers: 5 a task): each task stops after its running item, and nothing else of the
    run is left on the cluster, which keeps running."""
    workers = set(observer.nthreads())
    sync = tmp_path / "sync"
    sync.mkdir()
    script = tmp_path / "job.py"
    script.write_text(INTERRUPTED_JOB)
    with open(tmp_path / "stderr.txt", "w") as stderr:  # a file: Dask's logging never fills a pipe
        job = subprocess.Popen([sys.executable, str(script), scheduler, str(sync), str(tmp_path / "run.db")],
                               stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
                               cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 30
        while len(markers(sync, "started")) < 2:
            assert job.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "two items did not start"
            time.sleep(0.02)
        running = markers(sync, "started")
        os.kill(job.pid, signal.SIGINT)
        out, _ = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    err = (tmp_path / "stderr.txt").read_text()
    assert job.returncode == -signal.SIGINT, err[-2000:]
    assert out.splitlines() == ["FINAL", "KEYBOARD-INTERRUPT"], out

    deadline = time.monotonic() + 30
    while markers(sync, "ended") != running or any(observer.run(cluster_jobs.executing).values()):
        assert time.monotonic() < deadline, (f"running {running}, then started {markers(sync, 'started')}, "
                                             f"ended {markers(sync, 'ended')}")
        time.sleep(0.05)
    assert markers(sync, "started") == running, "only the items that were running ran"
    assert set(observer.nthreads()) == workers
    with sqlite3.connect(tmp_path / "run.db") as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
