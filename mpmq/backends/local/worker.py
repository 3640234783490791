"""The worker process: run items one at a time, turning what they do into events.

The connection to the parent (chunks in, event batches out) is ``worker_channel.py``. Here:
each item runs with its logging captured, and its events are flushed at the end of any item
that logged or took a millisecond or more (so a crash in the next item cannot lose its
result; a trivial item whose events had not left is re-run by the parent instead), and
half-way through a chunk when no next chunk is waiting (so the parent sends one in time).
"""

from __future__ import annotations

import ctypes  # imported here, in the parent, so forked workers start without the cost
import faulthandler
import mmap
import os
import pickle
import signal
import sys
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from ..item_runner import LARGE_RESULT, TRIVIAL_ITEM, ItemRunner, error_event  # noqa: F401 (their old home)
from .worker_channel import EventSender, Inbox


def worker_main(
    conn: Connection,
    function: Callable,
    shared_data: Mapping,
    style: str,
    first_items: list | None = None,
    max_items: int | None = None,
    running: Any = None,
    announce_starts: bool = False,
    parent_pid: int | None = None,
    items: list | None = None,
) -> None:
    """Entry point of a worker process.

    ``first_items`` are items handed over at process start (items that can only reach a
    process that way, e.g. holding a ``multiprocessing.Queue``); after them the worker takes
    chunks from its connection until told to stop or until it has run ``max_items``. A chunk
    carries its items pickled, or only their offsets into ``items`` (inherited under fork).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # under fork, not the parent's shutdown handler
    killed_with_parent = parent_pid is not None and die_with_parent(parent_pid)
    faulthandler.enable()  # a segfault leaves a Python traceback on stderr
    sender = EventSender(conn)
    sender.follow_forks()
    inbox = Inbox(conn, watch_parent=not killed_with_parent)
    runner = ItemRunner(sender, function, shared_data, style, running, announce_starts)
    done = 0
    for offset, item in first_items or ():
        runner.run(offset, item)
        done += 1
    while max_items is None or done < max_items:
        chunk = inbox.get()
        if chunk is None:
            break
        offsets, blob = chunk
        try:
            chunk_items = pickle.loads(blob) if blob is not None else [items[offset] for offset in offsets]
        except BaseException as exc:
            runner.fail_chunk(offsets, exc)
            continue
        last, half = len(chunk_items) - 1, len(chunk_items) // 2
        for index, (offset, item) in enumerate(zip(offsets, chunk_items)):
            runner.run(offset, item, last=index == last and inbox.empty())
            done += 1
            if index == half and half and inbox.empty():
                # Half the chunk is done: tell the parent now, so the next chunk arrives before
                # this one runs out (short items would otherwise wait for it, idle).
                sender.flush()
    sender.flush()


PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Linux: have the kernel kill this worker when its parent process dies.

    Unlike a thread watching the parent (``worker_channel.Inbox``, used where this returns
    False), the kernel's signal ends even an item stuck in C code holding the GIL. Under
    forkserver the worker's parent is the fork server, which exits when the engine's process
    does: the signal is asked for all the same, but False is returned, so that the thread
    watches the engine's process too. False on other systems.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl here: the inbox watches the parent instead
        return False
    if os.getppid() != parent:
        os._exit(70)  # the parent died before the kernel was asked to tell us
    if parent == parent_pid:
        return True
    _let_the_fork_server_go()
    return False


def _let_the_fork_server_go() -> None:
    """Close this worker's copy of the pipe that keeps the fork server running.

    multiprocessing hands it to every process the server starts (for them to start processes
    through it too), and the server runs until the last copy closes: so it outlived a killed
    engine for as long as a worker did, and the workers' signal, due when it exits, never came.
    A process this worker starts under forkserver gets a fork server of its own, as before.
    """
    server = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None or getattr(server, "_forkserver_pid", None) is not None:
        return  # nothing inherited, or a server this process started itself
    try:
        os.close(fd)
    except OSError:
        pass
    server._forkserver_alive_fd = None  # type: ignore[union-attr]


def running_slot(context: Any) -> Any:
    """Eight bytes of memory shared with one worker: the offset it is running, or -1.

    A ctypes integer, so setting ``.value`` twice per item costs ~50 ns, not a Python call.
    Under fork an anonymous shared mapping costs microseconds; ``RawValue`` (needed under
    spawn and forkserver, where memory must be passed at process start) costs ~13 ms the
    first time, as much as a whole small run.
    """
    if context.get_start_method() == "fork":
        slot = ctypes.c_int64.from_buffer(mmap.mmap(-1, 8))  # keeps the mapping alive
        slot.value = -1
        return slot
    return context.RawValue("q", -1)
