"""Retries (issue 19, point 1): every attempt is its own story in the event stream, the item's
entry is its last attempt's, and ``stop_on_error`` reacts to final failures only.

Every item counts its calls in a file (``fixtures/retry_workers.py``), so a test knows how
often an item really ran, whichever worker process ran it.
"""

from __future__ import annotations

import pytest

from fixtures import retry_workers
from mpmq import MPmq
from mpmq.errors import ItemCancelled
from mpmq.events import Done, Error, Result, Started


class Watcher(MPmq):
    """Keeps every event, 0.7.0 message, control message and completion it is handed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events, self.messages, self.controls, self.completions = [], [], [], 0

    def process_event(self, event):
        self.events.append(event)
        super().process_event(event)

    def process_message(self, offset, message):
        self.messages.append((offset, message))

    def process_control_message(self, offset, control):
        self.controls.append((offset, control))
        super().process_control_message(offset, control)

    def on_complete_process(self):
        self.completions += 1

    def of(self, offset, kind):
        return [event for event in self.events if event.offset == offset and type(event) is kind]


def counter(tmp_path, name):
    return str(tmp_path / name)


def test_an_item_failing_twice_then_succeeding_with_retries_2(start_method, tmp_path):
    data = [
        {"counter": counter(tmp_path, "flaky"), "fails": 2, "value": 7},
        {"counter": counter(tmp_path, "steady"), "value": 1},
    ]
    run = Watcher(retry_workers.flaky, process_data=data, retries=2, processes_to_start=1, context=start_method)

    assert run.execute() == [7, 1]

    assert [event.attempt for event in run.of(0, Started)] == [1, 2, 3]
    assert len(run.of(0, Result)) == 1 and len(run.of(0, Done)) == 1
    assert [(error.retrying, error.message) for error in run.of(0, Error)] == [
        (True, "call 1 failed"), (True, "call 2 failed"),
    ]
    assert [message for offset, message in run.messages if offset == 0] == [
        "INFO: call 1",
        "WARN: attempt 1 of 3 failed, retrying: call 1 failed",
        "INFO: call 2",
        "WARN: attempt 2 of 3 failed, retrying: call 2 failed",
        "INFO: call 3",
    ]
    assert sorted(run.controls) == [(0, "DONE"), (1, "DONE")]  # no ERROR: no attempt was the outcome
    assert run.completed_processes == 2 and run.completions == 2
    assert [error.message for error in run.state.items[0].attempts] == ["call 1 failed", "call 2 failed"]
    assert run.state.items[1].attempts == ()
    assert retry_workers.calls(data[0]["counter"]) == 3
    assert retry_workers.calls(data[1]["counter"]) == 1


def test_a_final_failure_is_the_last_attempts_error_with_the_earlier_ones_attached(start_method, tmp_path):
    data = [{"counter": counter(tmp_path, "always"), "fails": 99, "value": 7}]
    run = Watcher(retry_workers.flaky, process_data=data, retries=2, context=start_method)

    [result] = run.execute()

    assert isinstance(result, ValueError) and str(result) == "call 3 failed"
    assert [(type(exc), str(exc)) for exc in result.attempts] == [(ValueError, "call 1 failed"),
                                                                  (ValueError, "call 2 failed")]
    assert [message for _, message in run.messages if not message.startswith("INFO")] == [
        "WARN: attempt 1 of 3 failed, retrying: call 1 failed",
        "WARN: attempt 2 of 3 failed, retrying: call 2 failed",
        "ERROR: call 3 failed",
    ]
    assert run.controls == [(0, "ERROR"), (0, "DONE")]
    assert run.completed_processes == 1 and run.completions == 1
    assert retry_workers.calls(data[0]["counter"]) == 3


def test_without_retries_a_failure_is_final_and_has_no_earlier_attempts(tmp_path):
    data = [{"counter": counter(tmp_path, "once"), "fails": 1}]
    run = Watcher(retry_workers.flaky, process_data=data)

    [result] = run.execute()

    assert isinstance(result, ValueError) and result.attempts == []
    assert [error.retrying for error in run.of(0, Error)] == [False]
    assert retry_workers.calls(data[0]["counter"]) == 1


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_worker_killed_on_the_first_attempt_is_fine_on_the_second(how, start_method, tmp_path):
    data = [{"counter": counter(tmp_path, "dies"), "value": "ok", "how": how}]
    run = Watcher(retry_workers.dies_first, process_data=data, retries=1, context=start_method)

    assert run.execute() == ["ok"]

    [died] = run.state.items[0].attempts
    assert died.type == "mpmq.errors.WorkerDied" and died.retrying
    warnings = [message for _, message in run.messages if message.startswith("WARN")]
    assert len(warnings) == 1 and warnings[0].startswith("WARN: attempt 1 of 2 failed, retrying: worker (pid ")
    # The dead attempt's own start may never have left its worker; the second says it is the second.
    assert run.of(0, Started)[-1].attempt == 2
    assert retry_workers.calls(data[0]["counter"]) == 2


def test_retry_on_limits_which_raised_exceptions_are_retried(start_method, tmp_path):
    data = [
        {"counter": counter(tmp_path, "value"), "fails": 1, "value": "v", "error": "ValueError"},
        {"counter": counter(tmp_path, "key"), "fails": 1, "value": "k", "error": "KeyError"},
        {"counter": counter(tmp_path, "sub"), "fails": 1, "value": "s", "error": "Flaky"},
    ]
    run = Watcher(retry_workers.flaky, process_data=data, retries=3, retry_on=(KeyError, Exception),
                  processes_to_start=1, context=start_method)
    only_key = Watcher(retry_workers.flaky, process_data=[dict(item, counter=item["counter"] + "2") for item in data],
                       retries=3, retry_on=(KeyError,), processes_to_start=1, context=start_method)

    assert run.execute() == ["v", "k", "s"]
    value_error, key, flaky = only_key.execute()

    assert isinstance(value_error, ValueError) and value_error.attempts == []
    assert key == "k"
    assert isinstance(flaky, retry_workers.Flaky)
    assert [retry_workers.calls(item["counter"] + "2") for item in data] == [1, 2, 1]


def test_worker_deaths_are_retried_whatever_retry_on_says(tmp_path):
    data = [{"counter": counter(tmp_path, "dies"), "value": "ok"}]
    run = Watcher(retry_workers.dies_first, process_data=data, retries=1, retry_on=(KeyError,))

    assert run.execute() == ["ok"]
    assert retry_workers.calls(data[0]["counter"]) == 2


def test_a_timed_out_attempt_is_retried(start_method, tmp_path):
    data = [{"counter": counter(tmp_path, "hangs"), "value": "late"}]
    run = Watcher(retry_workers.hangs_first, process_data=data, retries=1, item_timeout=0.5, context=start_method)

    assert run.execute() == ["late"]

    [timed_out] = run.state.items[0].attempts
    assert timed_out.type == "mpmq.errors.ItemTimeout"
    assert retry_workers.calls(data[0]["counter"]) == 2


def test_stop_on_error_reacts_only_to_the_final_failure(start_method, tmp_path):
    data = [
        {"counter": counter(tmp_path, "0"), "fails": 1, "value": 0},  # fails once, then fine
        {"counter": counter(tmp_path, "1"), "fails": 9, "value": 1},  # fails on every attempt
        {"counter": counter(tmp_path, "2"), "value": 2},
        {"counter": counter(tmp_path, "3"), "value": 3},
    ]
    run = Watcher(retry_workers.flaky, process_data=data, retries=1, stop_on_error=True, processes_to_start=1,
                  context=start_method)

    first, second, third, fourth = run.execute()

    assert first == 0
    assert isinstance(second, ValueError) and str(second) == "call 2 failed" and len(second.attempts) == 1
    assert isinstance(third, ItemCancelled) and isinstance(fourth, ItemCancelled)
    assert [retry_workers.calls(item["counter"]) for item in data] == [2, 2, 0, 0]
    assert run.completed_processes == 4


def test_a_retry_waits_retry_delay_after_the_failed_attempt(tmp_path):
    data = [{"counter": counter(tmp_path, "flaky"), "fails": 1, "value": "x"}]
    run = Watcher(retry_workers.flaky, process_data=data, retries=1, retry_delay=0.3)

    assert run.execute() == ["x"]

    [failed] = run.of(0, Error)
    second = run.of(0, Started)[1]
    assert second.time - failed.time >= 0.29  # a lower bound the engine guarantees, not a speed


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"retries": -1}, ValueError, "retries must be an int >= 0"),
        ({"retries": 1.5}, ValueError, "retries must be an int >= 0"),
        ({"retries": True}, ValueError, "retries must be an int >= 0"),
        ({"retry_delay": -1}, ValueError, "retry_delay must be a number of seconds >= 0"),
        ({"retry_delay": "1"}, ValueError, "retry_delay must be a number of seconds >= 0"),
        ({"retry_on": [ValueError]}, TypeError, "retry_on must be a non-empty tuple of exception types"),
        ({"retry_on": ()}, TypeError, "retry_on must be a non-empty tuple of exception types"),
        ({"retry_on": (ValueError, "KeyError")}, TypeError, "retry_on must hold exception types only"),
    ],
)
def test_bad_retry_options_are_refused_before_any_worker_starts(options, error, words, tmp_path):
    marker = counter(tmp_path, "never")
    with pytest.raises(error, match=words):
        MPmq(retry_workers.flaky, process_data=[{"counter": marker}], **options).execute()
    assert retry_workers.calls(marker) == 0


def test_a_recorded_run_with_retries_replays_with_the_same_handler_calls(start_method, tmp_path):
    db = str(tmp_path / "run.db")
    data = [
        {"counter": counter(tmp_path, "twice"), "fails": 2, "value": 7},
        {"counter": counter(tmp_path, "always"), "fails": 9, "value": 8},
        {"counter": counter(tmp_path, "dies"), "value": 9, "error": "dies"},
    ]
    live = Watcher(retry_workers.flaky_or_dies, process_data=data, retries=2, processes_to_start=2,
                   context=start_method)
    live_results = live.execute(record=db)
    replayed = Watcher(retry_workers.flaky_or_dies, process_data=data)  # no retries= of its own
    replayed_results = replayed.replay(db)

    assert live_results[0] == replayed_results[0] == 7 and live_results[2] == replayed_results[2] == 9
    failure = replayed_results[1]  # no pickle: a builtin type rebuilt from its recorded args (issue 19)
    assert (type(failure), failure.args) == (ValueError, ("call 3 failed",))
    assert [(type(exc), exc.args[0]) for exc in failure.attempts] == [(ValueError, "call 1 failed"),
                                                                      (ValueError, "call 2 failed")]
    assert replayed.messages == live.messages and replayed.controls == live.controls
    assert replayed.completions == live.completions == 3

    def story(run):
        return [(type(e).__name__, e.offset, getattr(e, "attempt", None), getattr(e, "retrying", None))
                for e in run.events]

    assert story(replayed) == story(live)
    assert [len(item.attempts) for item in replayed.state.items] == [2, 2, 1]


def test_under_stop_on_error_an_item_waiting_for_its_retry_is_cancelled_by_a_final_failure(tmp_path):
    data = [
        {"counter": counter(tmp_path, "waits"), "fails": 1, "value": 0},  # retried, but only after 60 s
        {"counter": counter(tmp_path, "final"), "fails": 9, "error": "KeyError"},  # not retryable: final
    ]
    run = Watcher(retry_workers.flaky, process_data=data, retries=1, retry_on=(ValueError,), retry_delay=60,
                  stop_on_error=True, processes_to_start=1)

    waited, final = run.execute()  # at once: nothing waits out the delay

    assert isinstance(waited, ItemCancelled) and [str(exc) for exc in waited.attempts] == ["call 1 failed"]
    assert isinstance(final, KeyError)
    assert [retry_workers.calls(item["counter"]) for item in data] == [1, 1]


def test_retry_on_types_a_spawned_worker_cannot_import_are_refused_before_any_worker_starts(tmp_path):
    class Local(Exception):
        pass

    marker = counter(tmp_path, "never")
    run = MPmq(retry_workers.flaky, process_data=[{"counter": marker}], retries=1, retry_on=(Local,),
               context="spawn")
    with pytest.raises(TypeError, match="retry_on cannot be pickled under 'spawn': its exception types must be"):
        run.execute()
    assert retry_workers.calls(marker) == 0


class OwnLoop(MPmq):
    """A 0.7.0 client that pulls messages itself (``get_message`` overridden: the queued path)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.texts, self.controls = [], []

    def get_message(self):
        message = super().get_message()
        (self.controls if message["control"] else self.texts).append((message["offset"], message["message"]))
        return message


def test_a_client_pulling_messages_itself_sees_the_warnings_and_waits_for_a_delayed_retry(tmp_path):
    data = [{"counter": counter(tmp_path, "flaky"), "fails": 1, "value": "x"}]
    run = OwnLoop(retry_workers.flaky, process_data=data, retries=1, retry_delay=0.2)

    assert run.execute() == ["x"]

    assert run.texts == [(0, "INFO: call 1"), (0, "WARN: attempt 1 of 2 failed, retrying: call 1 failed"),
                         (0, "INFO: call 2")]
    assert run.controls == [(0, "#0-DONE")]
    assert retry_workers.calls(data[0]["counter"]) == 2
