"""No fork of this process while a thread of ours is inside SQLite.

A forked child gets every lock as it was at the fork, and a lock that another thread held then
stays held in the child for ever. SQLite takes process-wide mutexes (its allocator's, its file
system layer's) inside its calls, so a worker forked while the recorder's thread was writing
could hang in its item's first SQLite call (reproduced: a recorded run whose items used
``sqlite3``, with replacement workers forked during the run, lost an item in every 300 or so
to ``ItemTimeout``; without a timeout the run would never have ended).

A thread registers the lock it holds while it is inside SQLite. Before any fork of this
process each registered lock is taken, which waits for the write in progress to end; after
the fork it is released in parent and child.

Python 3.12+ warns at every fork of a process that has threads (``DeprecationWarning``: "use
of fork() may lead to deadlocks in the child"). A guarded thread is the deadlock that warning
is about, made safe, so ``forking()`` silences it when our threads are the only others.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator

_guarded: set[threading.Lock] = set()
_taken: list[threading.Lock] = []


def guard(lock: threading.Lock) -> None:
    """Forks of this process wait until ``lock`` is free, and hold it while they fork."""
    _guarded.add(lock)


def unguard(lock: threading.Lock) -> None:
    _guarded.discard(lock)


@contextlib.contextmanager
def forking() -> Iterator[None]:
    """Around a fork: no warning about threads when the only other threads are guarded ones."""
    if not _guarded or _thread_count() != 1 + len(_guarded):
        yield  # no thread of ours (the warning has nothing to say), or someone else's too
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded, use of fork", DeprecationWarning)
        yield


def _thread_count() -> int:
    """The process's threads as the kernel counts them (what Python's warning counts on Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return threading.active_count()


def _before_fork() -> None:
    for lock in list(_guarded):
        lock.acquire()  # releases the GIL while it waits, so the writing thread can finish
        _taken.append(lock)


def _after_fork() -> None:
    while _taken:
        _taken.pop().release()


if hasattr(os, "register_at_fork"):  # every platform that can fork
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
