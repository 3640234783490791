"""Reading a worker's event batches straight from its pipe, many per system call.

Workers send with ``Connection.send_bytes``, whose framing is a 4-byte big-endian length (or
-1 and an 8-byte length for huge messages) and the bytes. ``Connection.recv_bytes`` costs two
reads and several Python calls per message; with thousands of small batches a second that
is most of the parent's time, so the parent reads whatever is available in one system call
and cuts it into frames itself.

It reads into one buffer kept for the worker's life and hands out frames as views of it,
decoded before the next read: a fresh 256 kB buffer per read cost a page fault per 4 kB
touched (~800 a run of 10,000 short items, ~5 us each on this machine). A frame larger than
the buffer (a 20 MB result) is read into one buffer of its own size.
"""

from __future__ import annotations

import os

READ_SIZE = 256 * 1024


class FrameReader:
    """Incremental reader of ``send_bytes`` frames from one file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        self._start = 0  # the first byte not yet handed out
        self._end = 0  # the end of what was read
        self._frame: bytearray | None = None  # a large frame being filled
        self._filled = 0

    def read(self) -> list:
        """The frames completed by one read; raises ``EOFError`` once the writer is gone.

        Frames that fit the buffer are ``memoryview``s of it, valid until the next ``read``;
        a large frame is a ``bytearray`` of its own.
        """
        if self._frame is not None:
            return self._fill()
        if self._start:  # what is left of a frame moves to the front, making room
            left = self._end - self._start
            self._view[:left] = self._view[self._start : self._end]
            self._start, self._end = 0, left
        count = os.readv(self.fd, [self._view[self._end :]])
        if not count:
            raise EOFError
        self._end += count
        view, frames = self._view, []
        position, available = self._start, self._end
        while available - position >= 4:
            size = int.from_bytes(view[position : position + 4], "big", signed=True)
            header = 4
            if size == -1:
                if available - position < 12:
                    break
                size = int.from_bytes(view[position + 4 : position + 12], "big")
                header = 12
            start = position + header
            if available - start >= size:
                frames.append(view[start : start + size])
                position = start + size
                continue
            if header + size > READ_SIZE:
                self._frame = bytearray(size)
                self._filled = available - start
                self._frame[: self._filled] = view[start:available]
                self._start = self._end = 0
                try:
                    return frames + self._fill()
                except (BlockingIOError, EOFError):  # the frames before it are whole: hand them out;
                    return frames  # the next read goes on filling it (or finds the end)
            break
        self._start = position
        return frames

    def _fill(self) -> list:
        """Read the rest of a large frame now: its writer is busy sending it, so this ends soon.

        On a non-blocking descriptor (a dead worker's pipe being drained, a forked child's
        relay) it raises ``BlockingIOError`` when the pipe runs dry, keeping what it read."""
        frame = self._frame
        assert frame is not None
        view = memoryview(frame)
        while self._filled < len(frame):
            count = os.readv(self.fd, [view[self._filled :]])
            if count == 0:
                raise EOFError
            self._filled += count
        self._frame = None
        return [frame]
