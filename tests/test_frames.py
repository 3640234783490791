"""The parent's frame reader against a real pipe written by multiprocessing's own framing."""

import multiprocessing
import os
import threading

import pytest

from mpmq.frames import READ_SIZE, FrameReader


def frames_through_a_pipe(messages):
    """Send ``messages`` with Connection.send_bytes from a thread; read them with FrameReader."""
    reader_end, writer_end = multiprocessing.Pipe(duplex=False)

    def write():
        for message in messages:
            writer_end.send_bytes(message)
        writer_end.close()

    writer = threading.Thread(target=write)
    writer.start()
    reader, got = FrameReader(reader_end.fileno()), []
    try:
        while True:
            got += [bytes(frame) for frame in reader.read()]  # views are valid until the next read
    except EOFError:
        pass
    writer.join()
    reader_end.close()
    return got


def test_small_frames_split_across_reads_and_a_buffer_reused_many_times():
    messages = [os.urandom(n) for n in (1, 3, 4, 5, 1000, READ_SIZE // 3, READ_SIZE // 2, 7)] * 20
    assert frames_through_a_pipe(messages) == messages


@pytest.mark.parametrize("size", [READ_SIZE - 4, READ_SIZE - 3, READ_SIZE + 1, 5 * READ_SIZE])
def test_frames_at_and_beyond_the_buffer_size(size):
    messages = [b"a" * 10, os.urandom(size), b"b" * 10] * 3
    assert frames_through_a_pipe(messages) == messages
