"""One contract for every source of events: live workers and a recording behave alike.

The engine's loop cannot tell its sources apart; these tests hold each source to the same
promises (STYLE.md: one contract suite per interface).
"""

import multiprocessing

import pytest

from fixtures import workers
from mpmq import MPmq
from mpmq.backends.local.pool import WorkerPool
from mpmq.calling import KWARGS
from mpmq.recording import open_recording
from mpmq.sources import LiveSource, RecordedSource

ITEMS = [{"value": i, "bad": 2} for i in range(5)]


def live_source(tmp_path):
    pool = WorkerPool(workers.fail_on, ITEMS, {}, workers=2, context=multiprocessing.get_context("fork"), style=KWARGS)
    return LiveSource(pool), lambda: None


def recorded_source(tmp_path):
    path = str(tmp_path / "run.db")
    MPmq(workers.fail_on, process_data=ITEMS, processes_to_start=2).execute(record=path)
    recording = open_recording(path)
    return RecordedSource(recording.events(recording.run().id)), recording.close


@pytest.fixture(params=[live_source, recorded_source], ids=["live", "recorded"])
def source(request, tmp_path):
    made, cleanup = request.param(tmp_path)
    made.start()
    yield made
    made.close(terminate=True)
    cleanup()


def drain(source):
    batches = []
    while True:
        got = source.receive(None)
        if got is None:
            return batches
        batches.extend(got)


def test_batches_number_events_consecutively_from_one_in_receive_order(source):
    batches = drain(source)
    seqs = [first + i for first, _, events in batches for i in range(len(events))]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(events for _, _, events in batches)
    times = [received_at for _, received_at, _ in batches]
    assert times == sorted(times)


def test_every_item_tells_its_whole_story_in_order(source):
    kinds = {}
    for _, _, events in drain(source):
        for event in events:
            kinds.setdefault(event.offset, []).append(type(event).__name__)
    assert sorted(kinds) == list(range(len(ITEMS)))
    for offset, story in kinds.items():
        assert story == ["Started", "Error" if offset == 2 else "Result", "Done"]


def test_a_drained_source_is_exhausted_and_stays_so(source):
    drain(source)
    assert source.exhausted
    assert source.receive(0) is None
