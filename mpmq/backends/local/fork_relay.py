"""Frames from a process the item forks, forwarded whole by its worker.

A process the item forks inherits the worker's logging, so its records reach the parent too
(as under 0.7.0). Written straight to the worker's connection, the child's frames and the
worker's interleaved mid-frame whenever both sent at once: two writers on one stream, and the
parent read garbage, or waited for ever on a length that was not one. So each fork gets a pipe
of its own: the child sends its frames there, and the worker forwards them whole, among its own
(``worker_channel.EventSender``): from a thread as they come, and before each of its own sends,
so the records of a child the item waited for are all in before the item's end.

A child that dies mid-frame leaves only an incomplete frame in its own pipe, which is dropped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from .frames import FrameReader


class ForkRelay:
    """The worker's end of one forked child's pipe.

    ``lock`` is held while frames are taken and sent, so two threads never split a frame or
    send a child's frames out of order. Only the relay's own thread closes the pipe: closing
    a descriptor another thread is waiting on would not wake it.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.lock = threading.Lock()
        self.ended = False  # the child (and every process it forked) closed its end
        self._reader = FrameReader(fd)

    def forward(self, send: Callable[[memoryview | bytearray], None]) -> None:
        """Send every whole frame the child has written so far; call with ``lock`` held."""
        while not self.ended:
            try:
                frames = self._reader.read()
            except BlockingIOError:
                return
            except (EOFError, OSError):
                self.ended = True
                return
            for frame in frames:  # views into the reader's buffer: sent before the next read
                send(frame)

    def close(self) -> None:
        os.close(self.fd)
