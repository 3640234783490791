"""The failure matrix (issue 3): what a run returns when one item misbehaves.

One table of faults (loky's ``crash_cases``, CPython's ``test_deadlock.py``), each run under
fork and spawn through the ``start_method`` fixture. Every case runs four items on two
workers with the fault in item 1 and asserts the exact outcome for that item, that every
other item's result and log lines are intact and in order, that the run ends (the conftest
deadline turns a hang into a failure with stacks) and that no process is left.

Around the table: a dead worker's queued items and its replacement, ``stop_on_error``,
handlers that raise, and the legacy ``timeout`` that must never kill an item.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures import faults
from mpmq import (
    Error,
    ItemCancelled,
    ItemTimeout,
    MPmq,
    RemoteError,
    Result,
    RunFailed,
    Started,
    UnpicklableResult,
    WorkerDied,
)

FAULTY = 1
ITEMS = 4


class Watch(MPmq):
    """Keeps every log line per item and the pid that ran each item; acknowledges a fault's
    last words (see fixtures/faults.py) and marks each failure with a file ``failed-<offset>``
    in ``sync_dir`` for items waiting on it."""

    def __init__(self, function, *, sync_dir: Path, slow_handler: bool = False, **options: Any) -> None:
        super().__init__(function, **options)
        self.sync_dir = sync_dir
        self.slow_handler = slow_handler
        self.messages: dict[int, list[str]] = defaultdict(list)
        self.pids: dict[int, int] = {}
        self.final_ran = False

    def process_event(self, event) -> None:
        if type(event) is Started:
            self.pids[event.offset] = event.pid
        super().process_event(event)
        if type(event) is Error:
            (self.sync_dir / f"failed-{event.offset}").touch()

    def process_message(self, offset: int, message: str) -> None:
        lines = self.messages[offset]
        lines.append(message)
        if faults.LAST_WORDS in message:
            (self.sync_dir / f"ack-{offset}").touch()
        if self.slow_handler and len(lines) % 500 == 0:
            time.sleep(0.001)  # a handler slower than the worker's logging: backpressure must hold

    def final(self) -> None:
        self.final_ran = True


def healthy_logs(offset: int) -> list[str]:
    return [f"INFO: working on item {offset}"]


def check_huge(entry: Any, run: Watch) -> None:
    assert type(entry) is bytes and len(entry) == faults.HUGE_SIZE
    assert entry == faults.huge_value()


def check_flood(entry: Any, run: Watch) -> None:
    assert entry == FAULTY * 10
    flood = [line for line in run.messages[FAULTY] if line.startswith("INFO: flood")]
    assert len(flood) == faults.FLOOD_MESSAGES
    assert flood == [f"INFO: flood {FAULTY} {number}" for number in range(faults.FLOOD_MESSAGES)]


@dataclass(frozen=True)
class Fault:
    """One row of the matrix: a fault of ``fixtures.faults`` and what item 1 must give back."""

    name: str
    outcome: type | None  # exact type of item 1's entry; None when the item succeeds
    says: tuple[str, ...] = ()  # regexes found in str(entry); {pid} is the pid that ran it
    attrs: dict = field(default_factory=dict)  # attributes the entry must have, exactly
    traceback_says: tuple[str, ...] = ()  # in entry.remote_traceback
    stderr_says: tuple[str, ...] = ()  # in what the workers wrote to stderr
    options: dict = field(default_factory=dict)  # extra MPmq options for the run
    check: Callable[[Any, Watch], None] | None = None
    slow_handler: bool = False


LAST_LINES = re.escape(f"{faults.LAST_WORDS} {FAULTY}")

MATRIX = [
    Fault("raise_error", ValueError, says=(r"^boom in item 1$",), traceback_says=("raise_error", "ValueError")),
    Fault("exit_3", SystemExit, attrs={"code": 3}, traceback_says=("sys.exit(3)",)),
    Fault("os_exit_7", WorkerDied, says=(r"\bcode 7\b", r"\bpid {pid}\b", LAST_LINES)),
    Fault("sigkill_self", WorkerDied, says=(re.escape("SIGKILL (-9)"), r"\bpid {pid}\b", LAST_LINES)),
    Fault("sigterm_self", WorkerDied, says=(re.escape("SIGTERM (-15)"), r"\bpid {pid}\b", LAST_LINES)),
    Fault(
        "segfault",
        WorkerDied,
        says=(re.escape("SIGSEGV (-11)"), r"\bpid {pid}\b", LAST_LINES),
        stderr_says=("Fatal Python error: Segmentation fault", "in segfault"),
    ),
    Fault("lambda_result", UnpicklableResult, says=(r"\btype function\b",)),
    Fault("socket_result", UnpicklableResult, says=(r"\btype socket\b",)),
    Fault(
        "unpicklable_exception",
        RemoteError,
        says=(r"cannot travel from item 1",),
        attrs={"remote_type": "fixtures.faults.UnpicklableError"},
        traceback_says=("unpicklable_exception", "UnpicklableError: cannot travel from item 1"),
    ),
    Fault(
        "unrebuildable_exception",
        RemoteError,
        says=(r"needs left and right 1",),
        attrs={"remote_type": "fixtures.faults.NeedsTwoArgs"},
        traceback_says=("unrebuildable_exception", "NeedsTwoArgs: needs left and right 1"),
    ),
    Fault(
        "sleep_past_timeout",
        ItemTimeout,
        options={"item_timeout": 1.0},
        says=(r"timed out after 1(\.0)? ?s", r"\bpid {pid}\b", LAST_LINES),
    ),
    Fault("huge_result", None, check=check_huge),
    Fault("log_flood", None, check=check_flood, slow_handler=True),
]


@pytest.mark.parametrize("fault", MATRIX, ids=[fault.name for fault in MATRIX])
def test_fault(fault: Fault, start_method, tmp_path, processes, capfd):
    items = [{"value": offset} for offset in range(ITEMS)]
    items[FAULTY]["fault"] = fault.name
    run = Watch(
        faults.run_item,
        process_data=items,
        shared_data={"sync_dir": str(tmp_path)},
        processes_to_start=2,
        context=start_method,
        sync_dir=tmp_path,
        slow_handler=fault.slow_handler,
        **fault.options,
    )

    results = run.execute()

    assert len(results) == ITEMS
    for offset in range(ITEMS):
        if offset != FAULTY:
            assert results[offset] == offset * 10, f"item {offset}"
            assert run.messages[offset] == healthy_logs(offset), f"item {offset}"
    entry = results[FAULTY]
    if fault.outcome is None:
        assert not isinstance(entry, BaseException), repr(entry)
    else:
        assert type(entry) is fault.outcome, repr(entry)
        text = str(entry)
        for pattern in fault.says:
            assert re.search(pattern.replace("{pid}", str(run.pids[FAULTY])), text), (pattern, text)
        for name, value in fault.attrs.items():
            assert getattr(entry, name) == value, name
        for fragment in fault.traceback_says:
            assert fragment in entry.remote_traceback
        with pytest.raises(RunFailed) as failed:  # what execute(raise_if_error=True) raises
            run.check_results(results)
        assert list(failed.value.errors) == [FAULTY]
    if fault.check is not None:
        fault.check(entry, run)
    stderr = capfd.readouterr().err
    for fragment in fault.stderr_says:
        assert fragment in stderr
    assert run.final_ran
    processes.assert_clean(run.pids.values())


@pytest.mark.parametrize("fault", ["os_exit_7", "segfault", "sleep_past_timeout"])
def test_dead_worker_is_replaced_and_its_queued_items_run(fault, start_method, tmp_path, processes):
    """One worker holding a chunk of items dies on item 2: only item 2 fails, the items it
    held but had not started run on a replacement, in order."""
    items = [{"value": offset} for offset in range(12)]
    items[2]["fault"] = fault
    options = {"item_timeout": 1.0} if fault == "sleep_past_timeout" else {}
    run = Watch(
        faults.run_item,
        process_data=items,
        shared_data={"sync_dir": str(tmp_path)},
        processes_to_start=1,
        context=start_method,
        sync_dir=tmp_path,
        **options,
    )

    results = run.execute()

    assert type(results[2]) is (ItemTimeout if options else WorkerDied), repr(results[2])
    assert [r for offset, r in enumerate(results) if offset != 2] == [v * 10 for v in range(12) if v != 2]
    for offset in range(12):
        if offset != 2:
            assert run.messages[offset] == healthy_logs(offset)
    assert run.pids[0] == run.pids[2] != run.pids[3], "a replacement worker ran the rest"
    processes.assert_clean(run.pids.values())


@pytest.mark.parametrize("fault, failure", [("raise_error", ValueError), ("os_exit_7", WorkerDied)])
def test_stop_on_error_finishes_running_items_and_cancels_the_rest(fault, failure, start_method, tmp_path, processes):
    """Item 0 fails while item 1 runs on the other worker (item 1 waits until the parent has
    seen the failure): item 1 finishes, items 2-5 never start and come back as ItemCancelled."""
    items = [{"value": offset} for offset in range(6)]
    items[0]["fault"] = fault
    items[1]["wait_for"] = "failed-0"
    run = Watch(
        faults.run_item,
        process_data=items,
        shared_data={"sync_dir": str(tmp_path)},
        processes_to_start=2,
        context=start_method,
        sync_dir=tmp_path,
        stop_on_error=True,
    )

    results = run.execute()

    assert type(results[0]) is failure, repr(results[0])
    assert results[1] == 10
    assert [type(r) for r in results[2:]] == [ItemCancelled] * 4, results[2:]
    assert all("cancelled" in str(r) for r in results[2:])
    assert sorted(run.pids) == [0, 1], "items after the failure never started"
    processes.assert_clean(run.pids.values())


class HandlerBoom(Exception):
    pass


class RaisingHandler(Watch):
    """Raises from one hook, once item 0 has done its part; items 1-3 sleep for a minute, so
    a run that waits for them instead of terminating its workers hits the test deadline."""

    hook = ""

    def process_event(self, event) -> None:
        super().process_event(event)
        if self.hook == "process_event" and type(event) is Result:
            raise HandlerBoom("process_event")

    def process_message(self, offset: int, message: str) -> None:
        super().process_message(offset, message)
        if self.hook == "process_message":
            raise HandlerBoom("process_message")

    def on_start_process(self) -> None:
        if self.hook == "on_start_process":
            raise HandlerBoom("on_start_process")

    def on_complete_process(self) -> None:
        if self.hook == "on_complete_process":
            raise HandlerBoom("on_complete_process")


@pytest.mark.deadline(20)
@pytest.mark.parametrize("hook", ["process_message", "on_complete_process", "on_start_process", "process_event"])
def test_handler_that_raises_stops_the_run(hook, start_method, tmp_path, processes):
    items = [{"value": 0}] + [{"value": offset, "seconds": 60.0} for offset in range(1, 4)]
    run = RaisingHandler(
        faults.run_item,
        process_data=items,
        shared_data={"sync_dir": str(tmp_path)},
        processes_to_start=4,
        context=start_method,
        sync_dir=tmp_path,
    )
    run.hook = hook

    with pytest.raises(HandlerBoom, match=f"^{hook}$"):
        run.execute()

    assert run.final_ran
    processes.assert_clean(run.pids.values())


def test_legacy_timeout_never_kills_an_item(start_method, tmp_path, processes):
    """0.7.0's ``timeout`` was a join wait (mppbar passes timeout=1 for items running for
    seconds): it stays accepted and an item outliving it still returns its result."""
    items = [{"value": offset, "seconds": 0.3} for offset in range(2)]
    run = Watch(
        faults.run_item,
        process_data=items,
        shared_data={"sync_dir": str(tmp_path)},
        processes_to_start=2,
        context=start_method,
        sync_dir=tmp_path,
        timeout=0.05,
    )

    assert run.execute() == [0, 10]
    processes.assert_clean(run.pids.values())
