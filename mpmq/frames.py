"""Reading a worker's event batches straight from its pipe, many per system call.

Workers send with ``Connection.send_bytes``, whose framing is a 4-byte big-endian length (or
-1 and an 8-byte length for huge messages) and the bytes. ``Connection.recv_bytes`` costs two
reads and several Python calls per message; with thousands of small batches a second that
is most of the parent's time, so the parent reads whatever is available in one ``os.read``
and cuts it into frames itself. A huge frame (a 20 MB result) is read into one buffer of its
own size, without growing a buffer piece by piece.
"""

from __future__ import annotations

import os

READ_SIZE = 256 * 1024


class FrameReader:
    """Incremental reader of ``send_bytes`` frames from one file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._frame: bytearray | None = None  # a large frame being filled
        self._filled = 0

    def read(self) -> list:
        """The frames completed by one read; raises ``EOFError`` once the writer is gone."""
        if self._frame is not None:
            return self._fill()
        data = os.read(self.fd, READ_SIZE)
        if not data:
            raise EOFError
        buffer = self._buffer
        buffer += data
        frames = []
        position, available = 0, len(buffer)
        while available - position >= 4:
            size = int.from_bytes(buffer[position:position + 4], "big", signed=True)
            header = 4
            if size == -1:
                if available - position < 12:
                    break
                size = int.from_bytes(buffer[position + 4:position + 12], "big")
                header = 12
            start = position + header
            if available - start >= size:
                frames.append(bytes(buffer[start:start + size]))
                position = start + size
                continue
            if size > READ_SIZE:
                self._frame = bytearray(size)
                self._filled = available - start
                self._frame[:self._filled] = buffer[start:]
                del buffer[:]
                return frames + self._fill()
            break
        del buffer[:position]
        return frames

    def _fill(self) -> list:
        """Read the rest of a large frame now: its writer is busy sending it, so this ends soon."""
        frame = self._frame
        view = memoryview(frame)
        while self._filled < len(frame):
            count = os.readv(self.fd, [view[self._filled:]])
            if count == 0:
                raise EOFError
            self._filled += count
        self._frame = None
        return [frame]
