"""A recording's thread never lets this process fork while it is inside SQLite.

A worker forked then inherits SQLite's process-wide mutexes held, and hangs in its own first
SQLite call. Fork-only by nature: spawned workers start from a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fixtures import workers
from mpmq import MPmq, fork_guard
from mpmq.recording.writer import Recorder

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
ROOT = Path(__file__).resolve().parent.parent


def test_a_fork_waits_for_the_write_in_progress_and_the_child_gets_the_lock_free(tmp_path):
    rec = Recorder.open(tmp_path / "run.db", {}, [{}], {})
    rec.write_in_background()
    writing, wrote = threading.Event(), []

    def write():  # what the recorder's thread does: hold its lock while inside SQLite
        with rec._write_lock:
            writing.set()
            time.sleep(0.2)
            wrote.append("done")

    writer = threading.Thread(target=write)
    writer.start()
    assert writing.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: its copy of the lock must be free
        os._exit(0 if rec._write_lock.acquire(blocking=False) else 1)
    _, status = os.waitpid(pid, 0)
    assert wrote == ["done"], "the fork happened while the write was in progress"
    assert os.waitstatus_to_exitcode(status) == 0, "the child inherited the lock held"
    writer.join()
    rec.close()
    assert rec._write_lock not in fork_guard._guarded  # a closed recorder holds no fork back


def test_workers_forked_while_the_recording_is_written_can_use_sqlite(tmp_path):
    """Before the guard, about one item in 300 hung here until its timeout."""
    items = [{"value": value} for value in range(200)]
    run = MPmq(workers.log_then_use_sqlite, process_data=items, processes_to_start=2,
               max_items_per_worker=1, item_timeout=5, context="fork")  # a fork per item
    results = run.execute(record=tmp_path / "run.db")
    assert results == [value + 45 for value in range(200)]


FORKS_WHILE_RECORDING = """
import sys, threading
from fixtures import workers
from mpmq import MPmq

if sys.argv[2] == "with-a-thread-of-mine":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
# one item per worker: four of the six workers are forked while the recorder's thread runs
runner = MPmq(workers.sleep_then_return, process_data=[{"value": i} for i in range(6)], processes_to_start=2,
              context="fork", max_items_per_worker=1)
print(runner.execute(record=sys.argv[1]))
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Python 3.12 added the warning at a fork with threads")
@pytest.mark.parametrize("threads", ["only-mpmq-s", "with-a-thread-of-mine"])
def test_python_warns_at_a_fork_only_for_threads_that_are_not_the_recorders(tmp_path, threads):
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", FORKS_WHILE_RECORDING,
         str(tmp_path / "run.db"), threads],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(list(range(6)))
    warned = "is multi-threaded, use of fork() may lead to deadlocks" in done.stderr
    assert warned == (threads == "with-a-thread-of-mine"), done.stderr
