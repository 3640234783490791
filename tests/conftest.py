"""Shared fixtures: the start methods every engine test runs under, a hard deadline per test,
and process bookkeeping (which children exist, which pids are still running).

Worker functions live in ``fixtures/`` at the repository root and are imported as
``fixtures.<module>``: the root goes on ``sys.path`` here, and on ``PYTHONPATH`` for the
interpreters the interrupt tests launch (spawn children get the parent's ``sys.path``).
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import multiprocessing.resource_tracker
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

START_METHODS = ("fork", "spawn")
DEFAULT_DEADLINE = 30.0
HARD_GRACE = 10.0  # after the deadline, before faulthandler ends the whole run

_stacks_fd: int | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stacks_fd
    config.addinivalue_line("markers", "deadline(seconds): hard per-test deadline (default 30 s)")
    # pytest captures fd 2 during tests; a copy of the real stderr taken now still reaches
    # the terminal (or the CI log) when a deadline dumps every thread's stack.
    _stacks_fd = os.dup(sys.stderr.fileno())


def pytest_unconfigure(config: pytest.Config) -> None:
    global _stacks_fd
    if _stacks_fd is not None:
        faulthandler.cancel_dump_traceback_later()
        os.close(_stacks_fd)
        _stacks_fd = None


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    """Each engine test runs once per start method (``MPmq(context=start_method)``)."""
    return request.param


class DeadlineExceeded(Exception):
    """The test outlived its deadline: a hang, reported as a failure with every stack."""


@pytest.fixture(autouse=True)
def _deadline(request: pytest.FixtureRequest):
    """A hang is a failing test with stacks, never a stuck CI (STYLE.md, Tests).

    No blocking wait in a test needs its own timeout. At the deadline, SIGALRM dumps every
    thread's stack into the test's captured stderr and raises ``DeadlineExceeded`` in the
    main thread (the blocked wait is interrupted, the engine's cleanup runs, the test fails).
    If even that cannot run (a hang that never returns to the interpreter), faulthandler
    writes the stacks to the real stderr a little later and exits the run.
    """
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def on_deadline(signum, frame):
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        raise DeadlineExceeded(
            f"{request.node.nodeid} still running after its {seconds:g} s deadline; "
            "the stack of every thread is in its captured stderr"
        )

    previous = signal.signal(signal.SIGALRM, on_deadline)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    if _stacks_fd is not None:
        faulthandler.dump_traceback_later(seconds + HARD_GRACE, exit=True, file=_stacks_fd)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


class Processes:
    """Which processes the test process has, and whether given pids are still running."""

    @staticmethod
    def tracker_pid() -> int | None:
        """multiprocessing's resource tracker: started by spawn once, lives for the session."""
        return getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)

    @staticmethod
    def forkserver_pid() -> int | None:
        """multiprocessing's fork server: started by forkserver once, lives for the session."""
        from multiprocessing import forkserver

        return getattr(forkserver._forkserver, "_forkserver_pid", None)

    def children(self) -> list[str]:
        """Every child of this process, zombies included, except the resource tracker and the
        fork server (multiprocessing's own helpers, started once for the whole session)."""
        me, helpers = os.getpid(), {self.tracker_pid(), self.forkserver_pid()}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in helpers:
                continue
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == me:
                found.append(f"pid {entry.name} ({stat[0]})")
        return found

    @staticmethod
    def running(pid: int) -> bool:
        """True while ``pid`` exists and is not a zombie (an exited process nobody reaped yet,
        e.g. an orphan whose new parent, pid 1 in a container, does not reap)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")

    def still_running(self, pids, within: float = 2.0) -> list[int]:
        """The pids still running after waiting at most ``within`` seconds for them to end."""
        deadline = time.monotonic() + within
        while True:
            left = [pid for pid in pids if self.running(pid)]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.02)

    def assert_clean(self, pids=()) -> None:
        """No child process of any kind remains, and none of ``pids`` runs."""
        assert multiprocessing.active_children() == []
        assert self.children() == []
        assert [pid for pid in pids if self.running(pid)] == []


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) from /proc/<pid>/stat, or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


@pytest.fixture
def processes() -> Processes:
    return Processes()
