"""The item runner inside a worker, driven in this process over a real pipe."""

import logging
import multiprocessing
import threading

from mpmq.backends.local.worker import ChunkRunner
from mpmq.backends.local.worker_channel import EventSender
from mpmq.calling import POSITIONAL
from mpmq.events import Done, Log, decode_batch

log = logging.getLogger("tests.worker")


def test_a_thread_an_item_left_behind_logs_for_no_item():
    release, finished = threading.Event(), threading.Event()

    def leave_a_thread(item, shared):
        def later():
            release.wait(5)
            log.warning("after my item ended")
            finished.set()

        threading.Thread(target=later, daemon=True).start()
        log.warning("during my item")
        return 1

    ours, theirs = multiprocessing.Pipe()
    runner = ChunkRunner(EventSender(theirs), leave_a_thread, {}, POSITIONAL)
    runner.run(0, {})
    release.set()
    assert finished.wait(5)
    runner.sender.flush()
    events = []
    while ours.poll(0.1):
        events += decode_batch(ours.recv_bytes())
    assert [e.message for e in events if type(e) is Log] == ["during my item"]
    assert type(events[-1]) is Done
