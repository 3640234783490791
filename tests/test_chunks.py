"""Ran chunks in real runs (issue 18): items that log nothing travel and fold many at a time,
and yet every handler that looks item by item sees exactly what it saw one event at a time."""

from __future__ import annotations

import pytest

from fixtures import workers
from mpmq import MPmq, WorkerDied
from mpmq.events import Ran

ITEMS = 3000  # enough for workers to send chunks of hundreds


@pytest.fixture
def chunks_expanded(monkeypatch):
    """How many Ran chunks the parent expanded for a handler (the parent's own calls)."""
    expanded = []
    original = Ran.expanded

    def counted(self):
        expanded.append(len(self.offsets))
        return original(self)

    monkeypatch.setattr(Ran, "expanded", counted)
    return expanded


class Hooks(MPmq):
    """A 0.7.0 client's hooks, noting what the state says at every call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def on_start_process(self):
        self.calls.append(("start", self.active_processes, self.completed_processes, self.state.events))

    def on_complete_process(self):
        self.calls.append(("complete", self.active_processes, self.completed_processes, self.state.events))


def test_hooks_are_called_once_per_item_in_order_with_the_state_exact_at_each_call(start_method, chunks_expanded):
    data = [{"value": i} for i in range(ITEMS)]
    run = Hooks(workers.fail_on, process_data=data, processes_to_start=2, context=start_method)
    assert run.execute() == list(range(ITEMS))
    starts = [call for call in run.calls if call[0] == "start"]
    completes = [call for call in run.calls if call[0] == "complete"]
    assert len(starts) == len(completes) == ITEMS
    # completed_processes counts up by one per call: the state is folded up to that item's end
    assert [call[2] for call in completes] == list(range(1, ITEMS + 1))
    assert [call[2] for call in starts] == sorted(call[2] for call in starts)
    # every event before the call is counted: a start is 1 event past the last end, an end 3
    for kind, active, completed, events in run.calls:
        assert active in (1, 2) if kind == "start" else active in (0, 1)
        assert events >= 3 * completed + (1 if kind == "start" else 0)
    assert run.state.events == 3 * ITEMS and run.state.succeeded == ITEMS
    assert sum(chunks_expanded) > ITEMS / 2  # most items came in chunks, expanded for the hooks


class Typed(MPmq):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def process_event(self, event):
        item = self.state.items[event.offset]
        self.seen.append((event.offset, type(event).__name__, item.status, self.state.events))
        super().process_event(event)


def test_process_event_gets_started_result_done_of_each_item_with_its_state(start_method, chunks_expanded):
    run = Typed(workers.fail_on, process_data=[{"value": i} for i in range(ITEMS)], processes_to_start=2,
                context=start_method)
    assert run.execute() == list(range(ITEMS))
    by_item: dict[int, list] = {}
    for offset, kind, status, _ in run.seen:
        by_item.setdefault(offset, []).append((kind, status))
    assert by_item == {i: [("Started", "running"), ("Result", "running"), ("Done", "succeeded")] for i in range(ITEMS)}
    assert [events for *_, events in run.seen] == list(range(1, 3 * ITEMS + 1))
    assert sum(chunks_expanded) > ITEMS / 2


def test_a_client_pulling_messages_itself_gets_every_done_in_order(start_method, chunks_expanded):
    """0.7.0's own loop shape (mp4ansi, mpcurses): get_message overridden, messages pulled."""

    class Puller(MPmq):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.done = []

        def get_message(self):
            return super().get_message()

        def process_control_message(self, offset, control):
            self.done.append((offset, self.completed_processes))
            super().process_control_message(offset, control)

    run = Puller(workers.fail_on, process_data=[{"value": i} for i in range(ITEMS)], processes_to_start=2,
                 context=start_method)
    assert run.execute() == list(range(ITEMS))
    assert sorted(offset for offset, _ in run.done) == list(range(ITEMS))
    assert [completed for _, completed in run.done] == list(range(1, ITEMS + 1))
    assert sum(chunks_expanded) > ITEMS / 2


def test_unwatched_items_come_back_in_item_order(start_method, chunks_expanded):
    data = [{"value": i} for i in range(ITEMS)]
    run = MPmq(workers.fail_on, process_data=data, processes_to_start=2, context=start_method)
    assert run.execute() == list(range(ITEMS))
    assert run.state.counts() == {"pending": 0, "running": 0, "succeeded": ITEMS, "failed": 0}
    assert run.state.events == 3 * ITEMS
    assert not chunks_expanded  # folded as they came: nobody looked item by item


@pytest.mark.parametrize("watched", [False, True], ids=["unwatched", "hooks"])
def test_a_crash_in_the_middle_of_a_chunk_fails_only_its_item(start_method, watched):
    """Items run before the crash whose chunk never left the worker are run again, not lost."""
    bad = ITEMS // 2 + 7
    data = [{"value": i, "bad": bad} for i in range(ITEMS)]
    run = (Hooks if watched else MPmq)(workers.exit_on, process_data=data, processes_to_start=2,
                                       context=start_method)
    results = run.execute()
    assert isinstance(results[bad], WorkerDied) and "code 7" in str(results[bad])
    assert results[:bad] + results[bad + 1:] == [i for i in range(ITEMS) if i != bad]
    assert run.state.counts() == {"pending": 0, "running": 0, "succeeded": ITEMS - 1, "failed": 1}
    if watched:
        assert len([call for call in run.calls if call[0] == "complete"]) == ITEMS


def test_a_replay_of_a_chunked_run_calls_the_hooks_as_the_live_run_did(start_method, tmp_path, chunks_expanded):
    """Issue 18 point 5: the recording of a run whose items came in chunks re-drives the same
    per-item calls, with the same state at each."""
    path = tmp_path / "run.db"
    data = [{"value": i} for i in range(ITEMS)]
    live = Hooks(workers.fail_on, process_data=data, processes_to_start=2, context=start_method)
    assert live.execute(record=path) == list(range(ITEMS))
    assert sum(chunks_expanded) > ITEMS / 2  # the live run's items came in chunks
    again = Hooks(workers.fail_on, process_data=data)
    assert again.replay(path, clock=False) == list(range(ITEMS))
    assert again.calls == live.calls
