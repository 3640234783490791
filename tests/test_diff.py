"""``mpmq-replay diff`` (issue 19, point 3) on real recordings, through CliRunner and as a real
subprocess; its pure comparison (``replay/diff/compare.py``) on plain values.

The recordings are real runs of ``fixtures/diff_jobs.py``: ``good`` and ``changed`` differ in
item 1's second log line, item 2's outcome and item 3's result, and nothing else.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from fixtures.diff_jobs import ITEMS, convert, record_tally
from fixtures.replay_cli import ROOT, cli, one_error_line
from fixtures.replay_workers import exploit
from mpmq import MPmq
from mpmq.events import Payload
from mpmq.recording import RunInfo
from replay.cli import main
from replay.diff import ItemFacts, RunFacts, as_json, compare, json_difference, text
from replay.diff.compare import payload_difference

FORMAT_1 = ROOT / "fixtures" / "recordings" / "format-1.db"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """good.db, changed.db, and both.db holding the good run (1) then the changed one (2)."""
    folder = tmp_path_factory.mktemp("diff")
    paths = {name: folder / f"{name}.db" for name in ("good", "changed", "both")}
    record_tally(str(paths["good"]), "good")
    record_tally(str(paths["changed"]), "changed")
    record_tally(str(paths["both"]), "good")
    record_tally(str(paths["both"]), "changed")
    return paths


def invoke(*args: str):
    return CliRunner().invoke(main, ["diff", *args])


def test_text_names_the_outcome_the_result_and_the_log_line_that_changed(runs):
    result = invoke(str(runs["good"]), str(runs["changed"]))
    assert result.exit_code == 1, result.output
    out = result.output
    assert f"a: run 1 of {runs['good']}: succeeded, 6 items (6 succeeded)\n" in out
    assert f"b: run 1 of {runs['changed']}: failed, 6 items (5 succeeded, 1 failed)\n" in out
    assert 'shared data: $.variant: "good" -> "changed"\n' in out
    assert "outcomes changed (1):\n  item 2: succeeded -> failed (builtins.ValueError: item 2 went wrong)\n" in out
    assert "results differ (1):\n  item 3: $.totals[2].count: 3 -> 4\n" in out
    assert (
        "first log line that differs (1):\n  item 1, line 2:\n"
        "    a: WARNING diff_jobs: item 1 read the old file\n"
        "    b: WARNING diff_jobs: item 1 read the new file\n"
    ) in out
    assert "durations changed most:\n  item " in out
    assert ("6 items compared: 1 outcome changed, 1 result differs, 0 errors differ, 0 inputs differ, "
            "logs differ in 1 item\nthe runs differ\n") in out  # fmt: skip
    for offset in (0, 4, 5):  # the items that did not change are not listed
        assert f"item {offset}:" not in out.split("durations changed most:")[0]


def test_json_has_the_documented_shape(runs):
    result = invoke(str(runs["good"]), str(runs["changed"]), "--json")
    assert result.exit_code == 1, result.output
    diff = json.loads(result.output)
    assert list(diff) == ["same", "a", "b", "counts", "shared_data", "items", "durations"]
    assert diff["same"] is False
    assert diff["a"] == {"path": str(runs["good"]), "run": 1, "status": "succeeded", "complete": True,
                         "function": "fixtures.diff_jobs:tally", "items": 6, "succeeded": 6, "failed": 0,
                         "running": 0, "pending": 0, "rerun_of": None}  # fmt: skip
    assert diff["b"]["failed"] == 1 and diff["b"]["status"] == "failed"
    assert diff["counts"] == {"compared": 6, "outcomes": 1, "results": 1, "errors": 0, "inputs": 0,
                              "only_in_a": 0, "only_in_b": 0, "logs": 1, "attempts": 0}  # fmt: skip
    assert diff["shared_data"] == {"path": "$.variant", "by": "json", "a": "good", "b": "changed", "missing": None}
    items = {item["offset"]: item for item in diff["items"]}
    assert sorted(items) == [1, 2, 3]
    assert list(items[1]) == ["offset", "a", "b", "differs", "outcome_changed", "input", "result", "error_changed",
                              "attempts_changed", "log"]  # fmt: skip
    assert items[1]["a"]["attempts"] == items[1]["b"]["attempts"] == 1
    assert items[1]["differs"] is False  # a log line alone is no difference of outcome or result
    assert items[1]["log"]["line"] == 2 and items[1]["log"]["a_lines"] == items[1]["log"]["b_lines"] == 2
    assert items[1]["log"]["a"] == {"level": "WARNING", "logger": "diff_jobs", "message": "item 1 read the old file"}
    assert items[1]["log"]["b"]["message"] == "item 1 read the new file"
    assert items[2]["outcome_changed"] is True and items[2]["differs"] is True
    assert items[2]["a"]["outcome"] == "succeeded" and items[2]["a"]["error"] is None
    assert items[2]["b"]["error"] == {"type": "builtins.ValueError", "message": "item 2 went wrong"}
    assert items[3]["result"] == {"path": "$.totals[2].count", "by": "json", "a": 3, "b": 4, "missing": None}
    assert items[3]["outcome_changed"] is False and items[3]["input"] is None and items[3]["error_changed"] is False
    durations = diff["durations"]
    assert 0 < len(durations) <= 5 and {"offset", "a", "b", "change"} == set(durations[0])
    assert [abs(d["change"]) for d in durations] == sorted((abs(d["change"]) for d in durations), reverse=True)


def test_two_runs_of_one_file_as_a_real_subprocess(runs):
    result = cli("diff", str(runs["both"]), "--run", "1", "--run", "2")
    assert result.returncode == 1, result.stderr
    assert f"a: run 1 of {runs['both']}: succeeded" in result.stdout
    assert f"b: run 2 of {runs['both']}: failed" in result.stdout
    assert "item 3: $.totals[2].count: 3 -> 4" in result.stdout
    backwards = cli("diff", str(runs["both"]), "--run", "2", "--run", "1", "--json")
    assert backwards.returncode == 1, backwards.stderr
    items = {item["offset"]: item for item in json.loads(backwards.stdout)["items"]}
    assert items[2]["a"]["outcome"] == "failed" and items[2]["b"]["outcome"] == "succeeded"  # and back
    assert items[3]["result"]["a"] == 4 and items[3]["result"]["b"] == 3


def test_two_files_with_a_run_of_each(runs):
    result = invoke(str(runs["both"]), str(runs["good"]), "--run", "1", "--run", "1")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\nsame outcomes and results\n")


def test_the_same_run_diffed_with_its_copy_exits_0(runs, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy(runs["changed"], copy)
    result = cli("diff", str(runs["changed"]), str(copy))
    assert result.returncode == 0, result.stderr
    assert "6 items compared: 0 outcomes changed, 0 results differ, 0 errors differ, 0 inputs differ, " \
           "logs differ in 0 items\nsame outcomes and results\n" in result.stdout  # fmt: skip
    assert "outcomes changed (" not in result.stdout and "durations changed most" not in result.stdout
    assert json.loads(cli("diff", str(runs["changed"]), str(copy), "--json").stdout)["items"] == []


def test_another_input_at_an_offset_is_a_difference(runs, tmp_path):
    other = tmp_path / "other.db"
    record_tally(str(other), "good", items=[*ITEMS[:4], {"n": 4, "note": "new"}, ITEMS[5]])
    result = invoke(str(runs["good"]), str(other))
    assert result.exit_code == 1, result.output
    assert 'inputs differ (1):\n  item 4: $.note: (absent) -> "new"\n' in result.output
    assert "outcomes changed (" not in result.output and "results differ (" not in result.output


def test_items_that_needed_a_retry_are_reported_but_are_no_difference(tmp_path):
    """Issue 19's retries: the attempts an item took are shown, like its duration, and do not
    count against the runs being the same (their inputs, outcomes and results)."""
    from fixtures import retry_workers

    data = [{"counter": str(tmp_path / f"calls-{n}"), "value": n} for n in range(3)]  # the same in both runs
    for name, fails in (("flaky", 1), ("steady", 0)):
        MPmq(retry_workers.flaky, process_data=data, shared_data={"fails": fails}, processes_to_start=2,
             retries=1).execute(record=str(tmp_path / f"{name}.db"))
    result = invoke(str(tmp_path / "flaky.db"), str(tmp_path / "steady.db"))
    assert result.exit_code == 0, result.output
    assert "attempts changed (3):\n  item 0: 2 -> 1 attempts\n" in result.output
    assert "attempts changed in 3 items" in result.output and "same outcomes and results" in result.output
    diff = json.loads(invoke(str(tmp_path / "flaky.db"), str(tmp_path / "steady.db"), "--json").output)
    assert diff["same"] is True and diff["counts"]["attempts"] == 3
    assert [(item["offset"], item["a"]["attempts"], item["b"]["attempts"], item["differs"])
            for item in diff["items"]] == [(0, 2, 1, False), (1, 2, 1, False), (2, 2, 1, False)]


def test_items_only_one_run_has(runs, tmp_path):
    fewer = tmp_path / "fewer.db"
    record_tally(str(fewer), "good", items=ITEMS[:4])
    result = invoke(str(runs["good"]), str(fewer), "--json")
    assert result.exit_code == 1, result.output
    diff = json.loads(result.output)
    assert diff["counts"]["compared"] == 4 and diff["counts"]["only_in_a"] == 2 and diff["counts"]["only_in_b"] == 0
    assert [(item["offset"], item["b"]) for item in diff["items"]] == [(4, None), (5, None)]
    text = invoke(str(fewer), str(runs["good"])).output
    assert "only in b (2):\n  item 4: succeeded\n  item 5: succeeded\n" in text


@pytest.mark.deadline(60)
def test_a_run_cut_short_differs_in_the_items_it_never_finished(runs, tmp_path):
    cut = tmp_path / "cut.db"
    job = subprocess.run([sys.executable, "-m", "fixtures.diff_jobs", str(cut), "interrupted"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert job.returncode == -9, job.stderr  # item 5 killed the parent: the run never ended
    result = cli("diff", str(runs["good"]), str(cut))
    assert result.returncode == 1, result.stderr
    assert f"b: run 1 of {cut}: INCOMPLETE (recorded status 'running')" in result.stdout
    # Item 5 was running when the parent died; items 0 to 4 had finished, as in the good run.
    assert "outcomes changed (1):\n  item 5: succeeded -> running\n" in result.stdout


def test_the_format_1_fixture_against_a_fresh_recording(tmp_path):
    from fixtures.make_recordings import INPUTS, SHARED

    fresh = tmp_path / "fresh.db"
    MPmq(convert, process_data=INPUTS, shared_data=SHARED, processes_to_start=2).execute(record=str(fresh))
    result = cli("diff", str(FORMAT_1), str(fresh), "--run", "1", "--run", "1")
    # Redacted inputs, a tuple kept only as repr, the failure and the log lines all compare equal.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "function: convert:convert -> fixtures.diff_jobs:convert\n" in result.stdout
    assert "4 items compared: 0 outcomes changed" in result.stdout and "logs differ in 0 items" in result.stdout
    changed = tmp_path / "changed.db"
    MPmq(convert, process_data=INPUTS, shared_data={**SHARED, "variant": "list"},
         processes_to_start=2).execute(record=str(changed))  # fmt: skip
    result = cli("diff", str(FORMAT_1), str(changed), "--run", "1", "--run", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "results differ (1):\n  item 1: (repr): (1, 'tuple') -> (1, 'list')\n" in result.stdout
    assert 'shared data: $.variant: (absent) -> "list"\n' in result.stdout


@pytest.mark.parametrize("fixture", sorted(FORMAT_1.parent.glob("format-*.db")), ids=lambda path: path.name)
def test_every_format_fixture_diffs_as_the_same_runs_as_format_1(fixture, tmp_path):
    # The fixture of every format holds the same two runs: read through the reader API, they
    # compare equal to format 1's (a copy: the same file would name each run as both sides).
    copy = tmp_path / fixture.name
    shutil.copy(fixture, copy)
    for run in ("1", "2"):
        result = cli("diff", str(FORMAT_1), str(copy), "--run", run, "--run", run)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "outcomes changed (" not in result.stdout and "logs differ in 0 items" in result.stdout


def test_pickled_results_are_compared_by_repr_and_never_unpickled(tmp_path):
    marker, other = tmp_path / "pwned", tmp_path / "other"
    paths = [tmp_path / f"{name}.db" for name in ("first", "second", "third")]
    for path, target in zip(paths, (marker, marker, other)):
        MPmq(exploit, process_data=[{"path": str(target)}]).execute(record=str(path), record_pickle=True)
        target.unlink()  # the live parent unpickled its own worker's result; diff must not
    same = cli("diff", str(paths[0]), str(paths[1]))
    assert same.returncode == 0, same.stdout + same.stderr
    changed = cli("diff", str(paths[0]), str(paths[2]))
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert f"item 0: $.path: {json.dumps(str(marker))} -> {json.dumps(str(other))}" in changed.stdout  # the input
    assert f"item 0: (repr): Touched({str(marker)!r}) -> Touched({str(other)!r})" in changed.stdout  # the result
    assert not marker.exists() and not other.exists()


# --- bad usage: one line on stderr, exit status 2 --------------------------------------------


def bad_usage(runs: dict[str, Path], tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good, changed = str(runs["good"]), str(runs["changed"])
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n" * 20)
    return {
        "missing file": ([good, str(tmp_path / "missing.db")], "missing.db: no such file"),
        "not a recording": ([str(notes), good], "is not a SQLite database"),
        "unknown run": ([str(runs["both"]), "--run", "1", "--run", "9"], "has no run 9 (its runs: 1, 2)"),
        "one file, one run": ([good, "--run", "1"], "two of its runs to compare, --run A --run B (--run given 1 time)"),
        "one file, no run": ([good], "(no --run)"),
        "one file, three runs": ([good, "--run", "1", "--run", "1", "--run", "1"], "(--run given 3 times)"),
        "one file named twice": ([good, good], f"run 1 of {good} is both sides of the diff"),
        "a run named twice": ([good, "--run", "1", "--run", "1"], "is both sides of the diff"),
        "two files, one run": ([good, changed, "--run", "1"], "give --run twice (a run of each, in order)"),
        "three files": ([good, changed, good], "diff compares two runs: give two files"),
        "no file": ([], "diff compares two runs"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing file", "not a recording", "unknown run", "one file, one run", "one file, no run", "one file, three runs",
     "one file named twice", "a run named twice", "two files, one run", "three files", "no file"],
)  # fmt: skip
def test_bad_usage_is_one_line_exit_2(case, runs, tmp_path):
    args, words = bad_usage(runs, tmp_path)[case]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.output


def test_bad_usage_as_a_real_subprocess(runs, tmp_path):
    one_error_line(cli("diff", str(tmp_path / "missing.db"), str(runs["good"])), 2, "missing.db: no such file")
    one_error_line(cli("diff", str(runs["good"]), "--run", "1"), 2, "--run A --run B")


# --- the comparison itself: plain values, no processes ---------------------------------------


@pytest.mark.parametrize(
    "a, b, path, missing",
    [
        ({"totals": [{"count": 1}, {"count": 3}]}, {"totals": [{"count": 1}, {"count": 4}]}, "$.totals[1].count", None),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, None, None),  # key order is no difference
        ({"a": 1}, {"a": 1.0}, "$.a", None),  # JSON keeps int and float apart: so does the diff
        ({"a": 1}, {"a": True}, "$.a", None),
        ([1, 2], [1, 2, 3], "$[2]", "a"),
        ({"a": 1, "b": 2}, {"a": 1}, "$.b", "b"),
        ({"a": 1}, {"a": 1, "new key": 2}, '$["new key"]', "a"),
        ({"x": [1, {"y": None}]}, {"x": [1, {"y": 0}]}, "$.x[1].y", None),
        ("text", ["text"], "$", None),
        (None, None, None, None),
    ],
)
def test_json_difference_names_the_first_differing_path(a, b, path, missing):
    change = json_difference(a, b)
    if path is None:
        assert change is None
    else:
        assert change is not None and (change.path, change.missing, change.by) == (path, missing, "json")


def test_json_difference_of_deeply_nested_values_does_not_overflow():
    deep_a: list = []
    deep_b: list = [1]
    for _ in range(5000):
        deep_a, deep_b = [deep_a], [deep_b]
    change = json_difference(deep_a, deep_b)
    assert change is not None and change.path == "$" + "[0]" * 5000 + "[0]" and change.missing == "a"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 2.5]) | st.sampled_from("ab"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c d"]), inner, max_size=3),
    max_leaves=12,
)


def at(value, path: str):
    """The value at a path json_difference names (``$``, ``.key``, ``["key"]``, ``[index]``)."""
    for key, index in re.findall(r'\.(\w+)|\[(\d+|"[^"]*")\]', path[1:]):
        value = value[key] if key else value[json.loads(index)]
    return value


@given(JSON, JSON)
def test_json_difference_agrees_with_strict_json_equality(a, b):
    change = json_difference(a, b)
    strictly_equal = msgspec.json.encode(a, order="sorted") == msgspec.json.encode(b, order="sorted")
    assert (change is None) == strictly_equal
    assert json_difference(a, json.loads(json.dumps(a))) is None
    if change is not None:  # the path leads to the values it names, on the side that has them
        if change.missing != "a":
            assert at(a, change.path) == change.a
        if change.missing != "b":
            assert at(b, change.path) == change.b


def test_values_without_json_compare_by_repr_and_are_never_unpickled():
    poison = b"not a pickle: loading it would raise"
    same = payload_difference(Payload(pickle=poison, repr="(1, 2)"), Payload(pickle=b"other", repr="(1, 2)"))
    assert same is None
    change = payload_difference(Payload(repr="(1, 2)"), Payload(json=[1, 2], repr="[1, 2]"))
    assert change is not None and (change.by, change.a, change.b) == ("repr", "(1, 2)", "[1, 2]")


# --- printing: made-up runs, no processes ----------------------------------------------------


def made_up(path: str, outcomes: list[str], results: list[Payload | None] | None = None) -> RunFacts:
    results = results or [Payload(json={"n": n}, repr="") for n in range(len(outcomes))]
    items = [ItemFacts(offset=n, input=Payload(json={"n": n}), outcome=outcome, result=results[n],
                       error_type="builtins.ValueError" if outcome == "failed" else None,
                       error_message=f"bad {n}" if outcome == "failed" else None)
             for n, outcome in enumerate(outcomes)]  # fmt: skip
    return RunFacts(path, RunInfo(id=1, status="failed", shared_data={"k": 1}), items)


def test_long_sections_are_cut_and_json_lists_every_item():
    diff = compare(made_up("a.db", ["succeeded"] * 30), made_up("b.db", ["failed"] * 30))
    printed = text(diff)
    assert "outcomes changed (30):\n" in printed
    assert "  item 19: succeeded -> failed (builtins.ValueError: bad 19)\n" in printed
    assert "item 20:" not in printed and "  and 10 more (--json lists every one)\n" in printed
    assert [item["offset"] for item in as_json(diff)["items"]] == list(range(30))
    assert json.loads(json.dumps(as_json(diff))) == as_json(diff)  # plain JSON data throughout


def test_a_result_changed_into_a_value_json_cannot_hold():
    a = made_up("a.db", ["succeeded"], [Payload(json=[1, 2], repr="[1, 2]")])
    b = made_up("b.db", ["succeeded"], [Payload(repr="(1, 2)")])
    change = as_json(compare(a, b))["items"][0]["result"]
    assert change == {"path": "$", "by": "repr", "a": "[1, 2]", "b": "(1, 2)", "missing": None}
    assert "  item 0: (repr): [1, 2] -> (1, 2)\n" in text(compare(a, b))
