"""The reducer alone: no processes, no clock, just events folded into state."""

import copy

from hypothesis import given
from hypothesis import strategies as st

from mpmq.events import Done, Error, Log, Payload, Ran, Result, Started
from mpmq.state import FAILED, PENDING, RUNNING, SUCCEEDED, RunState, reduce


def fold(size, events):
    state = RunState.new(size)
    for event in events:
        state = reduce(state, event)
    return state


def test_a_ran_folds_to_the_same_state_as_the_three_events_it_stands_for():
    ran = Ran(1, 42, 10.0, Payload(json=7), 12.5)
    assert ran.expanded() == [Started(1, 42, 10.0), Result(1, 42, 12.5, Payload(json=7)), Done(1, 42, 12.5)]
    assert fold(3, [ran]) == fold(3, ran.expanded())
    again = [Started(1, 40, 9.0), Error(1, 40, 9.5, "E", "m"), Done(1, 40, 9.5)]  # not pending: folded one by one
    assert fold(3, [*again, ran]) == fold(3, [*again, *ran.expanded()])
    assert fold(3, [ran]).events == 3


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
