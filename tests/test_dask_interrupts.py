"""Ctrl-C and SIGTERM during a run on a cluster the run owns (issue 17).

A real interpreter runs a slow job on ``cluster="local"`` (``JOB``), prints the pid of each
Dask worker process as its item starts, and is signalled: its futures are cancelled, its
cluster closed, ``final()`` runs with no process of the cluster left (it lists every
descendant it still has), and the signal is re-raised as on a local run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.deadline(60)

JOB = '''
import multiprocessing.resource_tracker
import os
from pathlib import Path

from fixtures import faults
from mpmq import MPmq, Started


def descendants(root):
    """Every process under ``root``, zombies included, except spawn's resource tracker."""
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = text[text.rindex(")") + 2:].split()[:2]
            children.setdefault(int(ppid), []).append((int(entry.name), state))
    found, todo = [], [root]
    while todo:
        for pid, state in children.get(todo.pop(), []):
            if pid != tracker:
                found.append(f"{pid}:{state}")
                todo.append(pid)
    return found


class Job(MPmq):
    def process_event(self, event):
        super().process_event(event)
        if type(event) is Started:
            print(f"PID {event.pid}", flush=True)

    def final(self):
        print(f"FINAL descendants={descendants(os.getpid())}", flush=True)


if __name__ == "__main__":
    items = [{"value": value, "seconds": 60.0} for value in range(2)]
    job = Job(faults.run_item, process_data=items, processes_to_start=2, cluster="local")
    try:
        job.execute()
    except KeyboardInterrupt:
        print("KEYBOARD-INTERRUPT", flush=True)
        raise
    print("RETURNED", flush=True)
'''

CLEAN_FINAL = "FINAL descendants=[]"


@pytest.fixture
def job(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    with open(tmp_path / "stderr.txt", "w") as stderr:  # a file: Dask's logging never fills a pipe
        process = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr, text=True,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
    process.stderr_path = tmp_path / "stderr.txt"
    yield process
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    process.stdout.close()


def worker_pids(job) -> list[int]:
    """Read the job's output until both items started (the test deadline bounds the wait)."""
    pids = []
    while len(pids) < 2:
        line = job.stdout.readline()
        assert line, f"job ended early: {job.wait()}\n{job.stderr_path.read_text()}"
        if line.startswith("PID "):
            pids.append(int(line.split()[1]))
    return pids


@pytest.mark.parametrize("target", ["parent", "group"])
def test_ctrl_c_cancels_closes_the_owned_cluster_runs_final_and_reraises(target, job, processes):
    workers = worker_pids(job)

    (os.kill if target == "parent" else os.killpg)(job.pid, signal.SIGINT)
    out, _ = job.communicate()
    err = job.stderr_path.read_text()

    lines = out.splitlines()
    assert job.returncode == -signal.SIGINT, err
    assert err.rstrip().endswith("KeyboardInterrupt"), err[-2000:]
    assert CLEAN_FINAL in lines, lines
    assert lines.index(CLEAN_FINAL) < lines.index("KEYBOARD-INTERRUPT")
    assert "RETURNED" not in lines
    assert processes.still_running(workers) == []


def test_sigterm_closes_the_owned_cluster_then_dies_of_sigterm(job, processes):
    workers = worker_pids(job)

    os.kill(job.pid, signal.SIGTERM)
    out, _ = job.communicate()
    err = job.stderr_path.read_text()

    assert job.returncode == -signal.SIGTERM, err[-2000:]
    assert CLEAN_FINAL in out.splitlines(), out
    assert "RETURNED" not in out
    assert processes.still_running(workers) == []
