"""The reducer and retried attempts (issue 19), without processes: an attempt that will be
retried is not the item's outcome, and every such attempt's error stays on the item."""

from __future__ import annotations

from mpmq.events import Done, Error, Log, Payload, Result, Started
from mpmq.state import FAILED, RUNNING, SUCCEEDED, RunState, reduce


def fold(events, size=1):
    state = RunState.new(size)
    for event in events:
        reduce(state, event)
    return state


def failed(offset, pid, time, message, retrying):
    return Error(offset, pid, time, "builtins.ValueError", message, retryable=True, retrying=retrying)


def test_an_attempt_that_will_be_retried_leaves_the_item_running_with_its_error_kept():
    state = fold([Started(0, 10, 1.0), Log(0, 10, 1.1, 20, "x", "try"), failed(0, 10, 1.2, "first", True)])

    item = state.items[0]
    assert (item.status, item.error, state.running, state.failed) == (RUNNING, None, 1, 0)
    assert [error.message for error in item.attempts] == ["first"]


def test_the_last_attempt_is_the_items_outcome_and_it_began_at_the_first():
    state = fold([
        Started(0, 10, 1.0), failed(0, 10, 1.2, "first", True),
        Started(0, 11, 2.0, attempt=2), Result(0, 11, 2.5, Payload(json=3)), Done(0, 11, 2.5),
    ])

    item = state.items[0]
    assert (item.status, item.pid, item.started_at, item.ended_at, item.error) == (SUCCEEDED, 11, 1.0, 2.5, None)
    assert [error.message for error in item.attempts] == ["first"]
    assert state.counts() == {"pending": 0, "running": 0, "succeeded": 1, "failed": 0}


def test_a_final_failure_after_retries_counts_once():
    state = fold([
        Started(0, 10, 1.0), failed(0, 10, 1.2, "first", True),
        Started(0, 10, 2.0, attempt=2), failed(0, 10, 2.2, "second", False), Done(0, 10, 2.2),
    ])

    item = state.items[0]
    assert (item.status, item.error.message, state.failed, state.finished) == (FAILED, "second", 1, 1)
    assert [error.message for error in item.attempts] == ["first"]


def test_an_attempt_whose_start_never_arrived_still_counts_as_an_attempt():
    # A worker killed before its buffered ``started`` left it: the death is the attempt's only event.
    state = fold([failed(0, 10, 1.2, "worker died", True), Started(0, 11, 2.0, attempt=2), Done(0, 11, 2.1)])

    assert state.items[0].status == SUCCEEDED and len(state.items[0].attempts) == 1
