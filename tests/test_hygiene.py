"""Nothing is left behind (issue 3, point 9): no child process, thread or file descriptor
remains once ``execute()`` returns, whether the run succeeded, failed or was refused, and many
runs in one process do not grow any of them.

The caller still holds its ``MPmq`` object when the check is made, as real callers do (the
object is how they read the run afterwards); nothing is garbage-collected on the engine's
behalf: a descriptor that only a collection of reference cycles would close is still open.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from dataclasses import dataclass

import pytest

from fixtures import faults
from mpmq import MPmq


@dataclass(frozen=True)
class Resources:
    fds: dict[int, str]
    threads: tuple[str, ...]
    tasks: int  # OS threads, including any started outside the threading module
    children: tuple[str, ...]

    def growth(self, before: Resources) -> dict:
        """What exists now and did not before (an empty dict when nothing leaked)."""
        grown = {}
        if len(self.fds) > len(before.fds):
            new = [f"{fd}: {target}" for fd, target in sorted(self.fds.items()) if before.fds.get(fd) != target]
            grown["fds"] = f"{len(self.fds)} open, {len(before.fds)} before; new: {', '.join(new[:6])}" + (
                ", ..." if len(new) > 6 else ""
            )
        if len(self.threads) > len(before.threads):
            grown["threads"] = sorted(set(self.threads) - set(before.threads)) or self.threads
        if self.tasks > before.tasks:
            grown["os threads"] = self.tasks - before.tasks
        if self.children:
            grown["children"] = self.children
        return grown


def resources(processes) -> Resources:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    return Resources(
        fds=fds,
        threads=tuple(sorted(t.name for t in threading.enumerate())),
        tasks=len(os.listdir("/proc/self/task")),
        children=tuple(processes.children()) + tuple(p.name for p in multiprocessing.active_children()),
    )


def warm_up(start_method: str) -> None:
    """What the first run of a start method creates once for the whole process (spawn's
    resource tracker, imports, logging) is not a leak: create it before the baseline."""
    MPmq(faults.run_item, process_data=[{"value": 0}], processes_to_start=1, context=start_method).execute()


class RaisingHandler(MPmq):
    def on_complete_process(self) -> None:
        raise RuntimeError("handler failed")


def run_once(outcome: str, start_method: str) -> MPmq:
    """One run ending as ``outcome``; returns the MPmq object, which the caller keeps."""
    items = [{"value": offset} for offset in range(3)]
    options = {}
    cls = MPmq
    if outcome == "item-raised":
        items[1]["fault"] = "raise_error"
    elif outcome == "worker-died":
        items[1]["fault"] = "sigkill_self"
    elif outcome == "timed-out":
        items[1]["fault"] = "sleep_past_timeout"
        options["item_timeout"] = 0.5
    elif outcome == "handler-raised":
        cls = RaisingHandler
        items[1]["seconds"] = 60.0
    elif outcome == "bad-input":
        items[2] = 5
    run = cls(faults.run_item, process_data=items, processes_to_start=2, context=start_method, **options)
    try:
        results = run.execute()
    except (RuntimeError, TypeError) as exc:
        assert outcome in ("handler-raised", "bad-input"), repr(exc)
    else:
        assert outcome not in ("handler-raised", "bad-input")
        assert results[0] == 0 and results[2] == 20
        assert (results[1] == 10) == (outcome == "succeeded")
    return run


@pytest.mark.parametrize(
    "outcome", ["succeeded", "item-raised", "worker-died", "timed-out", "handler-raised", "bad-input"]
)
def test_nothing_is_left_after_execute(outcome, start_method, processes):
    warm_up(start_method)
    before = resources(processes)

    run = run_once(outcome, start_method)

    after = resources(processes)
    assert after.growth(before) == {}, f"left behind after a run that {outcome}, while the caller holds {run!r}"


RUNS = {"fork": 100, "spawn": 100}  # issue 3: "100 consecutive runs" (spawn: ~15 s of the suite)


@pytest.mark.deadline(60)
def test_many_runs_in_one_process_do_not_grow_anything(start_method, processes):
    """Runs alternate between succeeding, an item raising and a worker dying."""
    warm_up(start_method)
    before = resources(processes)

    for number in range(RUNS[start_method]):
        fault = [None, "raise_error", None, "os_exit_7"][number % 4]
        items = [{"value": 0}, {"value": 1, "fault": fault}]
        run = MPmq(faults.run_item, process_data=items, processes_to_start=2, context=start_method)
        results = run.execute()
        assert results[0] == 0 and (results[1] == 10) == (fault is None)

    grown = resources(processes).growth(before)
    if grown:
        gc.collect()
        still = resources(processes).growth(before)
        pytest.fail(f"after {RUNS[start_method]} runs: {grown}; after gc.collect(): {still or 'nothing'}")
