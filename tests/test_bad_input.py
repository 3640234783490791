"""Bad input is refused before any worker starts (issue 3, point 8).

Each case must raise an exception whose message names the problem, and must start no process:
``multiprocessing``'s ``BaseProcess.start`` is watched, no child process exists afterwards,
and the worker-side side effect (``fixtures.faults.touch`` creates a file per item) never
happened.
"""

from __future__ import annotations

import multiprocessing.process

import pytest

from fixtures import faults
from mpmq import MPmq
from mpmq.recording import RecordingError


def item(tmp_path, value):
    return {"path": str(tmp_path / f"touched-{value}"), "value": value}


def items(tmp_path, count=3):
    return [item(tmp_path, value) for value in range(count)]


BAD_INPUT = [
    pytest.param(
        lambda t: {"function": "faults.touch", "process_data": items(t)},
        TypeError,
        r"function must be callable",
        id="function-not-callable",
    ),
    pytest.param(
        lambda t: {"process_data": {"path": str(t / "touched"), "value": 0}},
        TypeError,
        r"process_data must be a list or tuple",
        id="process_data-dict",
    ),
    pytest.param(
        lambda t: {"process_data": (i for i in items(t))},
        TypeError,
        r"process_data must be a list or tuple",
        id="process_data-generator",
    ),
    pytest.param(
        lambda t: {"process_data": items(t) + [5]},
        TypeError,
        r"process_data\[3\] must be a mapping",
        id="last-item-not-a-mapping",
    ),
    pytest.param(
        lambda t: {"process_data": items(t)[:1] + [[("value", 1)]] + items(t)[1:]},
        TypeError,
        r"process_data\[1\] must be a mapping",
        id="middle-item-a-list-of-pairs",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "shared_data": [("value", 1)]},
        TypeError,
        r"shared_data must be a mapping",
        id="shared_data-list",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "processes_to_start": -1},
        ValueError,
        r"processes_to_start must not be negative, got -1",
        id="processes-negative",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "processes_to_start": 2.5},
        TypeError,
        r"processes_to_start must be an int",
        id="processes-float",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "processes_to_start": "2"},
        TypeError,
        r"processes_to_start must be an int",
        id="processes-str",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "processes_to_start": True},
        TypeError,
        r"processes_to_start must be an int",
        id="processes-bool",
    ),
    pytest.param(
        lambda t: {
            "process_data": [{"path": str(t / "a")}, {"path": str(t / "b")}, item(t, 2)],
            "shared_data": {"value": 0},
        },
        ValueError,
        r"'value'.*process_data\[2\]",
        id="key-in-item-2-and-shared_data",
    ),
    pytest.param(
        lambda t: {"process_data": items(t)[:1] + [{"path": str(t / "x"), "bogus": 1}]},
        TypeError,
        r"process_data\[1\].*bogus",
        id="key-the-function-does-not-take",
    ),
    pytest.param(
        lambda t: {"process_data": items(t)[:2] + [{"bogus": 1}]},
        TypeError,
        r"process_data\[2\].*bogus",
        id="as-many-keys-but-another",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "item_timeout": 0}, ValueError, r"item_timeout", id="item_timeout-zero"
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "item_timeout": -1.5},
        ValueError,
        r"item_timeout",
        id="item_timeout-negative",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "item_timeout": "5"}, ValueError, r"item_timeout", id="item_timeout-str"
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "max_items_per_worker": 0},
        ValueError,
        r"max_items_per_worker",
        id="max_items_per_worker-zero",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "max_items_per_worker": 1.5},
        ValueError,
        r"max_items_per_worker",
        id="max_items_per_worker-float",
    ),
    pytest.param(
        lambda t: {"process_data": items(t), "context": "bogus"}, ValueError, r"bogus", id="unknown-start-method"
    ),
]


@pytest.fixture
def starts(monkeypatch):
    """Every process started while the test runs, whoever starts it."""
    started = []
    original = multiprocessing.process.BaseProcess.start

    def start(process):
        started.append(process.name)
        return original(process)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start)
    return started


def run(options, context):
    options = dict(options)
    function = options.pop("function", faults.touch)
    options.setdefault("context", context)
    return MPmq(function, **options).execute()


@pytest.mark.parametrize("build, error, says", BAD_INPUT)
def test_bad_input_is_refused_before_any_process_starts(build, error, says, start_method, tmp_path, starts, processes):
    with pytest.raises(error, match=says):
        run(build(tmp_path), start_method)

    assert starts == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    processes.assert_clean()


def unpicklable_under_spawn(tmp_path):
    def closure(path=None, value=0):
        return value

    return [
        (
            {"function": lambda path=None, value=0: value, "process_data": items(tmp_path)},
            r"function .*<lambda>.* cannot be pickled.*module level",
        ),
        (
            {"function": closure, "process_data": items(tmp_path)},
            r"function .*closure.* cannot be pickled.*module level",
        ),
        (
            {"process_data": items(tmp_path)[:2] + [{"path": str(tmp_path / "x"), "value": lambda: 0}]},
            r"process_data\[2\] cannot be pickled",
        ),
        (
            {"process_data": [{"path": str(tmp_path / "x")}], "shared_data": {"value": (n for n in range(3))}},
            r"shared_data cannot be pickled",
        ),
    ]


@pytest.mark.parametrize("case", range(4), ids=["lambda", "closure", "item-2", "shared_data"])
@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_unpicklable_function_or_data_is_refused_under_spawn(case, context, tmp_path, starts, processes):
    """Under spawn and forkserver everything a worker needs travels by pickle: say what cannot,
    before a worker fails to start (or, worse, half the items fail one by one)."""
    options, says = unpicklable_under_spawn(tmp_path)[case]

    with pytest.raises(TypeError, match=says):
        run(options, context)

    assert starts == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    processes.assert_clean()


@pytest.mark.parametrize("processes_to_start", [None, 0])
def test_none_and_zero_processes_mean_one_process_per_item(
    processes_to_start, start_method, tmp_path, starts, processes
):
    """0.7.0's meaning, never a hang."""
    results = run({"process_data": items(tmp_path), "processes_to_start": processes_to_start}, start_method)

    assert results == [0, 1, 2]
    assert len(starts) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["touched-0", "touched-1", "touched-2"]
    processes.assert_clean()


def test_no_items_start_no_process(start_method, starts, processes):
    assert run({"process_data": []}, start_method) == []
    assert starts == []
    processes.assert_clean()


BAD_RECORD = [
    pytest.param(lambda t: 123, TypeError, r"record= must be a file path \(str or os.PathLike\), not int", id="int"),
    pytest.param(lambda t: True, TypeError, r"record= must be a file path .*, not bool", id="bool"),
    pytest.param(lambda t: "", RecordingError, r"the recording path is empty", id="empty"),
    pytest.param(lambda t: t / "no" / "such" / "dir" / "run.db", RecordingError, r"does not exist", id="missing-dir"),
    pytest.param(lambda t: t, RecordingError, r"is a directory", id="a-directory"),
]


@pytest.mark.parametrize("build, error, says", BAD_RECORD)
def test_bad_record_target_is_refused_before_any_process_starts(build, error, says, start_method, tmp_path, starts,
                                                                processes):
    target = build(tmp_path)
    with pytest.raises(error, match=says):
        MPmq(faults.touch, process_data=items(tmp_path), context=start_method).execute(record=target)

    assert starts == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    processes.assert_clean()


BAD_PARENT_OFFSETS = [
    pytest.param(None, [3], r"parent_offsets= gives the offsets a re-run's items had in its parent_run=: give both",
                 id="without-parent-run"),
    pytest.param(1, [3], r"parent_offsets= must give each of the 2 items its offset in the parent run", id="too-few"),
    pytest.param(1, [3, 3], r"\(an int >= 0, each once\), not \[3, 3\]", id="twice"),
    pytest.param(1, [3, -1], r"not \[3, -1\]", id="negative"),
    pytest.param(1, [3, "4"], r"not \[3, '4'\]", id="not-an-int"),
]


@pytest.mark.parametrize("parent_run, offsets, says", BAD_PARENT_OFFSETS)
def test_bad_parent_offsets_are_refused_before_any_process_starts(parent_run, offsets, says, tmp_path, starts,
                                                                  processes):
    with pytest.raises(ValueError, match=says):
        MPmq(faults.touch, process_data=items(tmp_path, 2)).execute(record=tmp_path / "run.db", parent_run=parent_run,
                                                      parent_offsets=offsets)

    assert starts == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    processes.assert_clean()
