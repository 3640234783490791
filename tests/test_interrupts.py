"""Ctrl-C, SIGTERM and a parent killed outright (issue 3, points 3 and 4).

Each test launches a real interpreter running a slow MPmq job (``JOB`` below), waits until
every worker has started its item (the job prints the worker pids), signals the job, and then
checks by pid that no worker is left. The job's ``final()`` reports the children it still has
at that moment: after a clean shutdown there are none (no orphan, no zombie).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = 3

JOB = '''
import multiprocessing
import multiprocessing.resource_tracker
import os
import sys
from pathlib import Path

from fixtures import faults
from mpmq import MPmq, Started


def children():
    """Every child of this process, zombies included, except spawn's resource tracker."""
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != tracker:
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = text[text.rindex(")") + 2:].split()[:2]
            if int(ppid) == os.getpid():
                found.append(f"{entry.name}:{state}")
    return found


class Job(MPmq):
    def process_event(self, event):
        super().process_event(event)
        if type(event) is Started:
            print(f"PID {event.pid}", flush=True)

    def final(self):
        print(f"FINAL children={children()} active={len(multiprocessing.active_children())}", flush=True)


if __name__ == "__main__":
    options = {}
    if sys.argv[2:] == ["gil"]:  # items stuck in C code that holds the GIL: no worker thread runs
        items = [{"value": value, "fault": "hold_the_gil"} for value in range(__WORKERS__)]
        options["item_timeout"] = 600  # never reached; its workers report starts at once
    else:
        items = [{"value": value, "seconds": 60.0} for value in range(__WORKERS__)]
    job = Job(faults.run_item, process_data=items, processes_to_start=__WORKERS__, context=sys.argv[1], **options)
    try:
        job.execute()
    except KeyboardInterrupt:
        print("KEYBOARD-INTERRUPT", flush=True)
        raise
    print("RETURNED", flush=True)
'''.replace("__WORKERS__", str(WORKERS))

CLEAN_FINAL = "FINAL children=[] active=0"


class Job:
    """The job's interpreter, in a session of its own so a test can signal its whole group
    as a terminal's Ctrl-C does, and can always clean up after itself.

    Workers inherit the job's stdout, so "read to EOF" would wait for any worker left
    behind: the job's own output is read up to its exit and no further.
    """

    def __init__(self, tmp_path: Path, start_method: str, *args: str) -> None:
        script = tmp_path / "job.py"
        script.write_text(JOB)
        self.stderr_path = tmp_path / "stderr.txt"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(script), start_method, *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                bufsize=0,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
        self.fd = self.process.stdout.fileno()
        self.lines: list[str] = []
        self._partial = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def _take(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend(line.decode() for line in complete)

    def worker_pids(self) -> list[int]:
        """Read the job's output until every worker has started its item."""
        while len([line for line in self.lines if line.startswith("PID ")]) < WORKERS:
            data = os.read(self.fd, 65536)  # the test deadline bounds this wait
            assert data, f"job ended early: {self.process.wait()}\n{self.stderr_path.read_text()}"
            self._take(data)
        return [int(line.split()[1]) for line in self.lines if line.startswith("PID ")]

    def finish(self) -> tuple[int, list[str], str]:
        """Wait for the job to exit (the test deadline bounds this): status, lines, stderr."""
        status = self.process.wait()
        os.set_blocking(self.fd, False)
        while True:  # everything the job wrote before it exited is in the pipe now
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            self._take(data)
        return status, self.lines, self.stderr_path.read_text()

    def kill_leftovers(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def job(request, tmp_path, start_method):
    """The job; ``@pytest.mark.parametrize("job", ["gil"], indirect=True)`` picks its items."""
    job = Job(tmp_path, start_method, *([request.param] if getattr(request, "param", "sleep") != "sleep" else []))
    yield job
    job.kill_leftovers()


@pytest.mark.parametrize("target", ["parent", "group"])
def test_ctrl_c_stops_workers_runs_final_and_reraises(target, job, processes):
    """``parent``: SIGINT to the parent alone; ``group``: to the job's whole process group,
    workers included, as a terminal's Ctrl-C does (workers ignore it; the parent decides)."""
    workers = job.worker_pids()

    (os.kill if target == "parent" else os.killpg)(job.pid, signal.SIGINT)
    status, lines, stderr = job.finish()

    assert status == -signal.SIGINT, stderr  # KeyboardInterrupt left the interpreter
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert CLEAN_FINAL in lines, lines
    assert lines.index(CLEAN_FINAL) < lines.index("KEYBOARD-INTERRUPT"), lines
    assert "RETURNED" not in lines
    assert processes.still_running(workers) == []


def test_sigterm_shuts_down_cleanly_then_dies_of_sigterm(job, processes):
    workers = job.worker_pids()

    os.kill(job.pid, signal.SIGTERM)
    status, lines, stderr = job.finish()

    assert status == -signal.SIGTERM, stderr
    assert CLEAN_FINAL in lines, lines
    assert "RETURNED" not in lines
    assert processes.still_running(workers) == []


@pytest.mark.parametrize("job", ["sleep", "gil"], indirect=True)
def test_workers_exit_when_the_parent_is_killed(job, processes):
    """``gil``: items stuck in C code holding the GIL, so no thread of the worker can run to
    notice the parent's death: the kernel must tell it."""
    workers = job.worker_pids()

    os.kill(job.pid, signal.SIGKILL)
    status, lines, stderr = job.finish()

    assert status == -signal.SIGKILL
    assert processes.still_running(workers, within=2.0) == [], "workers outlived their parent by 2 s"


@pytest.mark.parametrize("items", ["sleep", "gil"])
def test_workers_exit_when_the_parent_is_killed_under_forkserver(tmp_path, processes, items):
    """Under forkserver a worker's parent is the fork server, which exits when ours does: the
    kernel ends the worker with it, even one stuck in C code holding the GIL (``gil``), and a
    thread of the worker watches our parent too (worker_channel.Inbox)."""
    job = Job(tmp_path, "forkserver", *([items] if items != "sleep" else []))
    try:
        workers = job.worker_pids()
        os.kill(job.pid, signal.SIGKILL)
        status, _, stderr = job.finish()
        assert status == -signal.SIGKILL, stderr
        assert processes.still_running(workers, within=2.0) == [], "workers outlived their parent by 2 s"
    finally:
        job.kill_leftovers()
