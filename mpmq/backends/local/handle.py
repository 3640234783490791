"""The parent's end of one worker process: the process, its pipe, and the items it holds.

The pool (``pool.py``) decides what each worker gets and what a worker's death means; this
module is how one worker is started, fed, read and let go.
"""

from __future__ import annotations

import multiprocessing.popen_fork  # noqa: F401 (imported by the first fork otherwise, mid-run)
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import wait
from typing import Any

from ... import fork_guard
from ...events import Log, Payload, Result, decode_batch
from .frames import FrameReader
from .worker import running_slot, worker_main

LAST_LOG_LINES = 5
RECENT_BATCHES = 4
_LARGE_RESULT_MARK = Payload()  # see worker_channel.py, EventSender.emit_large


def exit_watch(process: Any) -> int:
    """A file descriptor that becomes readable when ``process`` exits.

    On Linux a pidfd, which only the process's exit makes readable. multiprocessing's own
    sentinel is a pipe the child holds open until it exits, and so does every process the
    item forked, for as long as it lives: a worker whose item left a forked process behind
    would not be seen to exit until that process did.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            return pidfd_open(process.pid)
        except OSError:  # an old kernel, a sandbox: the sentinel, as everywhere else
            pass
    return process.sentinel


class WorkerHandle:
    """One worker process as the parent sees it."""

    def __init__(self, process: Any, conn: Any, running: Any, dedicated: bool) -> None:
        self.process = process
        self.pid = process.pid
        self.conn = conn
        self.fd = conn.fileno()
        self.sentinel = exit_watch(process)  # readable once the process has exited
        self._own_watch = self.sentinel != process.sentinel  # a pidfd of ours, to close
        self.running = running  # shared slot: the offset the worker is running, or -1
        self.dedicated = dedicated  # started with its item(s); takes no more
        # Sent, not finished, in the order the worker runs them. A list, not a deque: a chunk's
        # items leave it from the front in one ``del`` (issue 18: not a popleft per item), and
        # it never holds more than a few chunks.
        self.held: list[int] = []
        self.started_at: float | None = None  # parent clock when the running item started
        self.item_began = 0.0  # the worker's clock when the running item started
        self.sent = 0
        self.stopping = False
        self.eof = False
        self.killed_for_timeout = False
        self._reader = FrameReader(self.fd)
        self._large_result: Result | None = None  # its pickle is the next frame
        self._recent: deque[list] = deque(maxlen=RECENT_BATCHES)  # for a dead worker's last log lines

    @classmethod
    def start(cls, context: Any, function: Callable, shared_data: Mapping, style: str,
              first: list | None, max_items: int | None, name: str, announce_starts: bool = False,
              items: list | None = None, retry_on: tuple | None = None) -> WorkerHandle:
        """Start a worker; ``first`` items are handed over at its start (then it takes no more).

        ``items`` (fork only: inherited, never pickled) lets chunks name items by offset alone.
        """
        parent_end, child_end = context.Pipe(duplex=True)
        running = running_slot(context)
        dedicated = first is not None
        process = context.Process(
            target=worker_main,
            args=(child_end, function, shared_data, style, first, 1 if dedicated else max_items, running,
                  announce_starts, os.getpid(), items, retry_on),
            name=name,
            daemon=False,  # an item may start processes of its own, as under 0.7.0
        )
        with fork_guard.forking():  # a recorder's thread, guarded, is no reason to warn
            process.start()
        child_end.close()  # only the worker holds it now, so its death reads as EOF here
        handle = cls(process, parent_end, running, dedicated)
        if first:
            handle.held.extend(offset for offset, _ in first)
            handle.sent = len(first)
            handle.stopping = True
        return handle

    def read_batches(self) -> list[list]:
        """The event batches one read completes; ``EOFError`` once the worker's end is closed."""
        batches = []
        for frame in self._reader.read():
            if self._large_result is not None:  # this frame is the pickle of a large result
                marker, self._large_result = self._large_result, None
                data = bytes(frame) if isinstance(frame, memoryview) else frame  # views die at the next read
                batches.append([Result(marker.offset, marker.pid, marker.time, Payload(pickle=data))])
                continue
            batch = decode_batch(frame)
            if batch and type(batch[-1]) is Result and batch[-1].value == _LARGE_RESULT_MARK:
                self._large_result = batch.pop()
            self._recent.append(batch)
            batches.append(batch)
        return batches

    def last_logs(self, offset: int) -> list[str]:
        """What the item last logged, as far as the parent received it."""
        lines = [e.message for batch in self._recent for e in batch if type(e) is Log and e.offset == offset]
        return lines[-LAST_LOG_LINES:]

    def send(self, offsets: Sequence[int], blob: bytes | None) -> None:
        """Hand over a chunk of items (pickled together in ``blob``; ``None``: the worker has them).

        A worker that has just died (its exit not yet seen) still counts as holding them:
        when its sentinel is read, they go back to the queue with the rest of what it held.
        """
        try:
            self.conn.send((offsets, blob))
        except OSError:  # BrokenPipeError, ConnectionResetError: the worker is gone
            pass
        self.held.extend(offsets)
        self.sent += len(offsets)

    def stop(self) -> None:
        """Ask the worker to exit once it has run what it holds."""
        if self.stopping:
            return
        self.stopping = True
        try:
            self.conn.send(None)
        except OSError:
            pass  # already gone; its sentinel will say so

    def terminate(self) -> None:
        if self.process.exitcode is None:
            try:
                self.process.terminate()
            except OSError:
                pass

    def exit_description(self) -> str:
        """``SIGKILL (-9)`` for signals, ``code 3`` for exits."""
        exitcode = self.process.exitcode
        if exitcode is None:
            return "an unknown status"
        if exitcode < 0:
            try:
                return f"{signal.Signals(-exitcode).name} ({exitcode})"
            except ValueError:
                return f"signal {-exitcode} ({exitcode})"
        return f"code {exitcode}"

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for the process to exit (``Process.join`` would wait on its
        multiprocessing sentinel, which a process the item forked can keep open)."""
        if wait([self.sentinel], timeout):
            self.process.join()

    def close(self) -> None:
        self.conn.close()
        if self._own_watch:
            self._own_watch = False
            os.close(self.sentinel)
        if self.process.exitcode is not None:
            self.process.close()  # its sentinel fd: nothing stays open after execute()
