"""Resume (issue 19, point 2): ``execute(record=path, resume=True)`` takes the items that
succeeded in the file's latest run of the same function and shared_data from the recording,
and runs only the rest. Every item counts its calls in a file (``fixtures/retry_workers.py``),
so a test knows which functions really ran again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fixtures import retry_workers
from mpmq import MPmq
from mpmq.recording import open_recording
from mpmq.state import SUCCEEDED, RunState, reduce

SIZE = 50
HALF = 25


class Watcher(MPmq):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages, self.completions = [], 0

    def process_message(self, offset, message):
        self.messages.append((offset, message))

    def on_complete_process(self):
        self.completions += 1


def items(folder, size=SIZE, **extra):
    return [{"counter": str(folder / f"calls-{i}"), "number": i, **extra} for i in range(size)]


def calls(data):
    return [retry_workers.calls(item["counter"]) for item in data]


def succeeded_in(db, run_id):
    """Offsets the recording says succeeded in ``run_id``, folded from its events."""
    with open_recording(db) as recording:
        state = RunState.new(recording.item_count(run_id))
        for _, _, event in recording.events(run_id):
            reduce(state, event)
    return {item.offset for item in state.items if item.status == SUCCEEDED}


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from fixtures import retry_workers
    from mpmq import MPmq

    folder, db, start_method = sys.argv[1:]
    data = [{"counter": f"{folder}/calls-{i}", "number": i} for i in range(%d)]
    data[%d].update(db=db, after=%d)  # waits for the recorded half, then SIGKILLs this process
    MPmq(retry_workers.kills_parent_once, process_data=data, processes_to_start=1,
         context=start_method).execute(record=db)
    """
) % (SIZE, HALF, HALF)


def test_a_run_killed_with_sigkill_half_way_resumes_without_calling_a_succeeded_item_again(start_method, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    uninterrupted = MPmq(retry_workers.kills_parent_once, process_data=items(clean), processes_to_start=2,
                         context=start_method).execute()
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path), str(tmp_path / "run.db"), start_method],
                            timeout=60, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done_before = succeeded_in(tmp_path / "run.db", 1)
    assert done_before == set(range(HALF))
    data = items(tmp_path)
    data[HALF].update(db=str(tmp_path / "run.db"), after=HALF)
    before = calls(data)

    run = Watcher(retry_workers.kills_parent_once, process_data=data, processes_to_start=1, context=start_method)
    results = run.execute(record=str(tmp_path / "run.db"), resume=True)

    assert results == uninterrupted and all(type(result) is int for result in results)
    assert run.resumed_from == 1
    after = calls(data)
    assert [after[i] - before[i] for i in range(SIZE)] == [0] * HALF + [1] * (SIZE - HALF)
    # The handlers saw every item, the re-driven ones too, and counted each once.
    assert sorted(offset for offset, _ in run.messages) == list(range(SIZE))
    assert run.completions == SIZE and run.completed_processes == SIZE
    with open_recording(tmp_path / "run.db") as recording:
        resumed = recording.run(2)
    assert resumed.complete and resumed.status == "succeeded"
    assert resumed.options["resumed_from"] == 1 and resumed.options["resumed_items"] == [[0, HALF - 1]]
    assert succeeded_in(tmp_path / "run.db", 2) == set(range(SIZE))


def test_a_resumed_run_replays_and_resumes_like_any_other(tmp_path):
    db = str(tmp_path / "run.db")
    data = items(tmp_path, size=6)
    again = [{"counter": item["counter"], "fails": 1 if i == 2 else 0, "value": i} for i, item in enumerate(data)]
    first = MPmq(retry_workers.flaky, process_data=again).execute(record=db)
    assert isinstance(first[2], ValueError)  # item 2 fails on its first call only

    run = MPmq(retry_workers.flaky, process_data=again)
    assert run.execute(record=db, resume=True) == [0, 1, 2, 3, 4, 5]  # the failed item ran again, and passed

    assert run.resumed_from == 1
    assert calls(data) == [1, 1, 2, 1, 1, 1]
    assert MPmq(retry_workers.flaky).replay(db) == [0, 1, 2, 3, 4, 5]
    third = MPmq(retry_workers.flaky, process_data=again)
    assert third.execute(record=db, resume=True) == [0, 1, 2, 3, 4, 5]
    assert third.resumed_from == 2 and calls(data) == [1, 1, 2, 1, 1, 1]  # nothing ran


def test_a_changed_input_reruns_that_item_only(start_method, tmp_path):
    db = str(tmp_path / "run.db")
    data = items(tmp_path, size=5)
    MPmq(retry_workers.counted, process_data=data, context=start_method).execute(record=db)
    data[3] = dict(data[3], number=30)

    run = MPmq(retry_workers.counted, process_data=data, context=start_method)
    assert run.execute(record=db, resume=True) == [0, 2, 4, 60, 8]

    assert calls(data) == [1, 1, 1, 2, 1]


def test_no_matching_run_is_an_ordinary_run(tmp_path):
    db = str(tmp_path / "run.db")
    data = items(tmp_path, size=3)
    nothing = MPmq(retry_workers.counted, process_data=data)
    assert nothing.execute(record=db, resume=True) == [0, 2, 4]  # no file yet
    assert nothing.resumed_from is None and calls(data) == [1, 1, 1]

    other_function = MPmq(retry_workers.kills_parent_once, process_data=data)
    assert other_function.execute(record=db, resume=True) == [0, 2, 4]
    assert other_function.resumed_from is None and calls(data) == [2, 2, 2]

    other_shared = MPmq(retry_workers.flaky, process_data=[{"counter": item["counter"]} for item in data],
                        shared_data={"value": 1})
    assert other_shared.execute(record=db) == [1, 1, 1]
    changed = MPmq(retry_workers.flaky, process_data=[{"counter": item["counter"]} for item in data],
                   shared_data={"value": 2})
    assert changed.execute(record=db, resume=True) == [2, 2, 2]
    assert changed.resumed_from is None and calls(data) == [4, 4, 4]


def test_a_result_json_cannot_rebuild_exactly_runs_again_unless_pickles_were_recorded(tmp_path):
    db = str(tmp_path / "run.db")
    data = [{"counter": str(tmp_path / "tuple"), "value": (1, 2)}]
    MPmq(retry_workers.flaky, process_data=data).execute(record=db)

    assert MPmq(retry_workers.flaky, process_data=data).execute(record=db, resume=True) == [(1, 2)]
    assert retry_workers.calls(data[0]["counter"]) == 2  # a tuple comes back from JSON as a list: ran again

    MPmq(retry_workers.flaky, process_data=data).execute(record=db, record_pickle=True)
    resumed = MPmq(retry_workers.flaky, process_data=data)
    assert resumed.execute(record=db, record_pickle=True, resume=True) == [(1, 2)]
    assert retry_workers.calls(data[0]["counter"]) == 3  # reused from the pickle the caller recorded


def test_resume_needs_a_recording(tmp_path):
    with pytest.raises(ValueError, match="resume=True resumes from a recording: give its path as record="):
        MPmq(retry_workers.counted, process_data=items(tmp_path, size=1)).execute(resume=True)
    assert not os.path.exists(tmp_path / "calls-0")


class InterruptedAt(MPmq):
    """Ctrl-C arrives while the handler shows item ``at``'s first line."""

    def __init__(self, *args, at, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def process_message(self, offset, message):
        if offset == self.at:
            raise KeyboardInterrupt


def test_a_run_interrupted_by_ctrl_c_resumes(tmp_path):
    db = str(tmp_path / "run.db")
    data = items(tmp_path, size=10)
    with pytest.raises(KeyboardInterrupt):
        InterruptedAt(retry_workers.counted, process_data=data, processes_to_start=1, at=5).execute(record=db)
    with open_recording(db) as recording:
        assert recording.run(1).status == "interrupted"
    done_before = succeeded_in(db, 1)
    assert done_before >= {0, 1, 2, 3, 4}
    before = calls(data)

    run = MPmq(retry_workers.counted, process_data=data)
    assert run.execute(record=db, resume=True) == [i * 2 for i in range(10)]

    assert run.resumed_from == 1 and run.resumed_items == sorted(done_before)
    assert [calls(data)[i] - before[i] for i in range(10)] == [0 if i in done_before else 1 for i in range(10)]
