"""A line logged by a worker reaches the handler while its item still runs (issue 18 point 4).

No timing is asserted: the item blocks until the handler, having seen the line, answers it
through a named pipe, so the run only ends if the line arrived live. The speed of it is
``bench``'s latency row.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest

from fixtures import workers
from mpmq import MPmq
from mpmq.backends.local.worker_channel import EventSender
from mpmq.events import Log, decode_batch


class Answering(MPmq):
    """Answers each item's question as soon as its line arrives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def process_message(self, offset, message):
        self.seen.append((offset, message, self.state.items[offset].status))
        if "waiting for an answer in" in message:
            with open(message.rsplit(" ", 1)[1], "w") as fifo:  # the item is blocked reading it
                fifo.write("answered\n")


@pytest.mark.parametrize("record", [False, True], ids=["live", "recorded"])
def test_a_line_logged_by_a_waiting_item_reaches_the_handler_while_the_item_runs(start_method, tmp_path, record):
    data = []
    for value in range(4):
        fifo = tmp_path / f"answer-{value}"
        os.mkfifo(fifo)
        data.append({"fifo": str(fifo), "value": value})
    run = Answering(workers.log_then_wait_for_an_answer, process_data=data, processes_to_start=2,
                    context=start_method)
    results = run.execute(record=tmp_path / "run.db") if record else run.execute()
    assert results == [f"answered {value}" for value in range(4)]
    assert [status for *_, status in run.seen] == ["running"] * 4  # each line came while its item ran


def test_a_line_from_an_idle_channel_is_sent_before_emit_returns():
    """The first event after a quiet spell leaves at once, not after the flusher's interval."""
    ours, theirs = multiprocessing.Pipe()
    sender = EventSender(theirs)
    sender.emit(Log(0, 1, 1.0, 20, "a", "first line"))
    assert ours.poll(0)  # already in the pipe: no wait, no flusher
    assert [event.message for event in decode_batch(ours.recv_bytes())] == ["first line"]
