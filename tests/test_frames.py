"""The parent's frame reader against a real pipe written by multiprocessing's own framing."""

import multiprocessing
import os
import threading

import pytest

from mpmq.backends.local.frames import READ_SIZE, FrameReader


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


def test_on_a_non_blocking_pipe_whole_frames_before_a_partial_large_one_are_not_lost():
    """A dead worker's pipe is drained, and a forked child's relay read, without blocking:
    the frames that arrived whole must come out even when a large one is cut short."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("needs a pipe larger than a frame: Linux's F_SETPIPE_SZ")
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for all of it, written up front
    os.set_blocking(read_fd, False)
    writer = multiprocessing.connection.Connection(write_fd, readable=False)
    reader = FrameReader(read_fd)
    large = os.urandom(READ_SIZE + 10)
    framed = len(large).to_bytes(4, "big") + large
    writer.send_bytes(b"first")
    os.write(write_fd, framed[: READ_SIZE // 2])  # the large frame, cut short for now
    assert [bytes(frame) for frame in reader.read()] == [b"first"]
    with pytest.raises(BlockingIOError):
        reader.read()  # nothing more yet: the partial frame is kept
    os.write(write_fd, framed[READ_SIZE // 2 :])
    writer.send_bytes(b"last")
    assert [bytes(frame) for frame in reader.read()] == [large]
    assert [bytes(frame) for frame in reader.read()] == [b"last"]
    writer.close()
    with pytest.raises(EOFError):
        reader.read()
    os.close(read_fd)
