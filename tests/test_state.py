"""The reducer alone: no processes, no clock, just events folded into state."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpmq import events
from mpmq.events import Done, Error, Log, Payload, Ran, Result, Started, expand, expanded_size, payload_of
from mpmq.state import FAILED, PENDING, RUNNING, SUCCEEDED, RunState, reduce


def fold(size, events):
    state = RunState.new(size)
    for event in events:
        state = reduce(state, event)
    return state


def ran(offsets, pid=42, start=10.0):
    """A chunk as a worker sends it: item i started at start + i and ended half a second later."""
    starts = [start + i for i in range(len(offsets))]
    return Ran(offsets[0], pid, starts[0], list(offsets), starts, [t + 0.5 for t in starts],
               [Payload(json=offset * 10) for offset in offsets])


def test_a_ran_chunk_stands_for_started_result_and_done_of_each_item_in_order():
    chunk = ran([1, 2])
    assert chunk.expanded() == [
        Started(1, 42, 10.0), Result(1, 42, 10.5, Payload(json=10)), Done(1, 42, 10.5),
        Started(2, 42, 11.0), Result(2, 42, 11.5, Payload(json=20)), Done(2, 42, 11.5),
    ]
    assert chunk.size == 6 and expanded_size([Log(0, 1, 1.0, 20, "a", "m"), chunk]) == 7


def test_a_ran_chunk_folds_to_the_same_state_as_the_events_it_stands_for():
    chunk = ran([2, 3, 4])
    state = fold(6, [chunk])
    assert state == fold(6, chunk.expanded())
    assert state.events == 9 and state.counts() == {"pending": 3, "running": 0, "succeeded": 3, "failed": 0}
    item = state.items[3]
    assert (item.status, item.pid, item.started_at, item.ended_at, item.result) == (SUCCEEDED, 42, 11.0, 11.5,
                                                                                    Payload(json=30))
    assert state.items[1].status == PENDING and state.items[1].pid is None and state.items[1].result is None


def test_a_ran_chunk_of_plain_values_folds_as_the_payloads_they_stand_for():
    # issue 18: None, bools and 64-bit ints travel as themselves, anything else as a Payload
    values = [None, True, 7, (1 << 64) - 1, Payload(json=1.5), Payload(pickle=b"x", repr="X()")]
    chunk = Ran(0, 42, 1.0, list(range(6)), [1.0] * 6, [2.0] * 6, values)
    state = fold(6, [chunk])
    assert state == fold(6, chunk.expanded())
    assert [item.result for item in state.items] == [payload_of(value) for value in values]
    assert [event.value for event in chunk.expanded() if type(event) is Result] == [
        Payload(json=None), Payload(json=True), Payload(json=7), Payload(json=(1 << 64) - 1), *values[4:]]
    assert events.decode_batch(events.encode_batch([chunk])) == [chunk]  # each value keeps its type on the wire


def test_a_ran_chunk_over_items_already_seen_folds_item_by_item():
    again = [Started(1, 40, 9.0), Error(1, 40, 9.5, "E", "m"), Done(1, 40, 9.5)]  # item 1 is not pending
    for chunk in (ran([0, 1, 2]), ran([2, 0, 1]), ran([3, 4, 6])):  # and neither consecutive nor in order
        assert fold(8, [*again, chunk]) == fold(8, [*again, *chunk.expanded()])
    lost_end = [Error(5, 0, 9.0, "E", "m")]  # an error with no end yet: the chunk's item fails
    assert fold(8, [*lost_end, ran([4, 5])]) == fold(8, [*lost_end, *ran([4, 5]).expanded()])
    assert fold(8, [*lost_end, ran([4, 5])]).items[5].status == FAILED


def test_a_malformed_ran_chunk_never_touches_items_outside_the_run():
    bad = Ran(2, 42, 1.0, [2, 3], [1.0], [2.0, 3.0], [Payload(json=1)] * 3)  # a crafted recording's
    state = fold(4, [bad])
    assert state == fold(4, bad.expanded()) and len(state.items) == 4
    past_the_end = ran([3, 4])
    with pytest.raises(IndexError):
        fold(4, [past_the_end])


@given(st.lists(st.sampled_from(["ran", "ok", "error", "log"]), min_size=1, max_size=30), st.integers(1, 5))
def test_chunks_and_single_events_fold_alike_in_any_mix(kinds, chunk):
    events, offset = [], 0
    while offset < len(kinds):
        kind = kinds[offset]
        if kind == "ran":
            size = min(chunk, len(kinds) - offset)
            events.append(ran(list(range(offset, offset + size)), start=float(offset)))
            offset += size
            continue
        events.append(Started(offset, 7, 1.0))
        if kind == "log":
            events.append(Log(offset, 7, 1.5, 20, "a", "m"))
        events.append(Error(offset, 7, 2.0, "E", "x") if kind == "error" else Result(offset, 7, 2.0, Payload(json=1)))
        events.append(Done(offset, 7, 2.0))
        offset += 1
    state = fold(len(kinds), events)
    assert state == fold(len(kinds), expand(events))
    assert state.complete and state.events == expanded_size(events)
    assert [item.offset for item in state.items] == list(range(len(kinds)))


def test_new_state_has_every_item_pending():
    state = RunState.new(3)
    assert [item.status for item in state.items] == [PENDING] * 3
    assert state.counts() == {"pending": 3, "running": 0, "succeeded": 0, "failed": 0}
    assert not state.complete


def test_started_item_is_running_with_its_pid_and_start_time():
    state = fold(2, [Started(1, 42, 10.0)])
    item = state.items[1]
    assert (item.status, item.pid, item.started_at) == (RUNNING, 42, 10.0)
    assert (state.pending, state.running) == (1, 1)


def test_result_then_done_succeeds_with_the_result_and_duration():
    value = Payload(pickle=b"x")
    state = fold(1, [Started(0, 1, 1.0), Log(0, 1, 1.5, 20, "a", "m"), Result(0, 1, 2.0, value), Done(0, 1, 3.0)])
    item = state.items[0]
    assert (item.status, item.result, item.duration, item.logs) == (SUCCEEDED, value, 2.0, 1)
    assert state.complete and state.succeeded == 1


def test_error_then_done_fails_and_keeps_the_error():
    error = Error(0, 1, 2.0, "builtins.ValueError", "boom", "Traceback...")
    state = fold(2, [Started(0, 1, 1.0), error, Done(0, 1, 2.0)])
    assert state.items[0].status == FAILED
    assert state.items[0].error == error
    assert (state.failed, state.pending) == (1, 1)


def test_item_cancelled_before_starting_goes_from_pending_to_failed():
    state = fold(1, [Error(0, 0, 5.0, "mpmq.errors.ItemCancelled", "cancelled"), Done(0, 0, 5.0)])
    assert state.items[0].status == FAILED
    assert state.counts() == {"pending": 0, "running": 0, "succeeded": 0, "failed": 1}
    assert state.items[0].started_at is None


def test_a_second_done_changes_nothing():
    events = [Started(0, 1, 1.0), Done(0, 1, 2.0)]
    once = fold(1, events)
    twice = fold(1, events + [Done(0, 1, 9.0)])
    assert (once.succeeded, once.items[0].ended_at) == (twice.succeeded, twice.items[0].ended_at)


def test_reduce_reads_only_the_event_and_the_state():
    events = [Started(0, 1, 1.0), Result(0, 1, 2.0, Payload(pickle=b"1")), Done(0, 1, 2.0)]
    a, b = fold(1, events), fold(1, copy.deepcopy(events))
    assert a == b


item_events = st.lists(st.sampled_from(["ok", "error", "cancel"]), min_size=1, max_size=20)


@given(item_events)
def test_counters_always_match_the_items(outcomes):
    events = []
    for offset, outcome in enumerate(outcomes):
        if outcome == "cancel":
            events += [Error(offset, 0, 1.0, "mpmq.errors.ItemCancelled", "c"), Done(offset, 0, 1.0)]
            continue
        events.append(Started(offset, 7, 1.0))
        if outcome == "error":
            events.append(Error(offset, 7, 2.0, "builtins.ValueError", "x"))
        else:
            events.append(Result(offset, 7, 2.0, Payload(pickle=b"")))
        events.append(Done(offset, 7, 2.0))
    state = fold(len(outcomes), events)
    assert state.complete
    assert state.succeeded == outcomes.count("ok")
    assert state.failed == len(outcomes) - outcomes.count("ok")
    by_status = [item.status for item in state.items]
    assert by_status.count(SUCCEEDED) == state.succeeded and by_status.count(FAILED) == state.failed
