"""``mpmq-replay rerun``: failed items again, with recorded inputs and function (issue 5).

Real subprocesses on real recordings. Exit status 0 when every re-run item succeeds, 1 when
any fails, 2 when the re-run cannot start (and then each missing input is named, with how to
supply it).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

import replay
from fixtures import tamper
from fixtures.replay_cli import ROOT, cli, one_error_line
from fixtures.replay_workers import work
from mpmq import MPmq


def record(db, data, shared, **options):
    MPmq(work, process_data=data, shared_data=shared, processes_to_start=2).execute(record=str(db), **options)
    return db


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Item 3 of six fails (``bad`` is 3 in the shared data)."""
    return record(tmp_path_factory.mktemp("rerun") / "run.db", [{"n": n} for n in range(6)], {"bad": 3})


def test_failed_items_fail_again_in_process_with_traceback_and_logs(recorded):
    result = cli("rerun", str(recorded), "--failed")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert out.startswith("re-running item 3 of run 1: fixtures.replay_workers:work\n")
    assert "[3] INFO: item 3 starting\n[3] WARN: odd item 3\n    second line\n[3] ERROR: about to fail on 3\n" in out
    assert 'raise ValueError(f"bad item {n}")' in out
    assert out.endswith("item 3: failed: ValueError: bad item 3\n")


def test_set_supplies_a_value_and_the_item_succeeds(recorded):
    result = cli("rerun", str(recorded), "--failed", "--set", "bad=-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("item 3: succeeded: {'n': 3, 'square': 9}\n")
    assert cli("rerun", str(recorded), "--offset", "0").returncode == 0


def test_pdb_opens_at_the_failing_line(recorded):
    result = cli("rerun", str(recorded), "--failed", "--pdb", stdin="p n * 100\nq\n")
    assert result.returncode == 1, result.stderr
    assert '-> raise ValueError(f"bad item {n}")' in result.stdout
    assert "(Pdb) 300" in result.stdout


def test_workers_and_record_link_the_new_run_to_the_original(recorded, tmp_path):
    failing = cli("rerun", str(recorded), "--failed", "--workers")
    assert failing.returncode == 1, failing.stderr
    assert "[3] ERROR: bad item 3" in failing.stdout and "item 3: failed" in failing.stdout
    out = tmp_path / "rerun.db"
    result = cli("rerun", str(recorded), "--failed", "--set", "bad=-1", "--record", str(out))
    assert result.returncode == 0, result.stderr
    assert "item 3: succeeded: {'n': 3, 'square': 9}" in result.stdout
    (run,) = replay.runs(out)
    assert (run.parent_run, run.status, run.item_count, run.shared_data) == (1, "succeeded", 1, {"bad": -1})
    assert run.command_line[-4:] == ["--set", "bad=[redacted]", "--record", str(out)]  # --set may carry secrets
    assert replay.load(out).results == [{"n": 3, "square": 9}]
    assert run.options["parent_offsets"] == [[3, 3]]  # what its item 0 was in run 1

    # diff matches the re-run's item with item 3 of the run it re-ran, and compares only it
    shown = cli("diff", str(recorded), str(out))
    assert shown.returncode == 1, shown.stderr
    assert "b re-ran 1 item of run 1: matched by their offsets there, only they are compared" in shown.stdout
    assert "item 3: failed (builtins.ValueError: bad item 3) -> succeeded" in shown.stdout, shown.stdout
    assert "b: DEBUG fixtures.replay_workers: item 3 done" in shown.stdout  # its own line 3, read as item 0
    diff = json.loads(cli("diff", str(recorded), str(out), "--json").stdout)
    assert diff["b"]["rerun_of"] == 1 and diff["a"]["rerun_of"] is None
    assert diff["counts"]["compared"] == 1 and diff["counts"]["only_in_a"] == 0
    assert [(item["offset"], item["a"]["outcome"], item["b"]["outcome"]) for item in diff["items"]] == [
        (3, "failed", "succeeded")]

    # Crafted offsets (more than its items, or not one each) are not followed: matched as they are
    crafted = tmp_path / "crafted.db"
    shutil.copy(out, crafted)
    for ranges in ([[0, 10**15]], [[3, 3], [3, 3]], [[-1, -1]], "3", [[3, "x"]]):
        with sqlite3.connect(crafted) as db:
            db.execute("UPDATE runs SET options = json_set(options, '$.parent_offsets', json(?))",
                       (json.dumps(ranges),))
        diff = json.loads(cli("diff", str(recorded), str(crafted), "--json").stdout)
        assert diff["b"]["rerun_of"] is None and diff["counts"]["compared"] == 1, ranges
        assert diff["counts"]["only_in_a"] == 5, ranges


def test_redacted_input_is_named_with_how_to_supply_it(tmp_path):
    db = record(tmp_path / "run.db", [{"n": 0, "api_token": "t0k3n"}, {"n": 1}], {"bad": 0})
    result = cli("rerun", str(db), "--failed")
    line = one_error_line(result, 2, str(db), "item 0", "'api_token' was redacted", "--set api_token=VALUE")
    assert "t0k3n" not in line
    assert cli("rerun", str(db), "--failed", "--set", "api_token=x", "--set", "bad=-1").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET function = '__main__:work'")
    conn.close()
    both = cli("rerun", str(db), "--failed")  # every problem at once: one round of fixes
    assert both.returncode == 2
    assert [("__main__:work" in line, "api_token" in line) for line in both.stderr.splitlines()] == [
        (True, False),
        (False, True),
    ]


def test_input_only_a_pickle_or_repr_holds(tmp_path):
    data, shared = [{"n": 0, "tags": ("a", "b")}], {"bad": 0}
    only_repr = record(tmp_path / "repr.db", data, shared)
    one_error_line(cli("rerun", str(only_repr), "--failed"), 2, "item 0", "only as its repr", "--input 0=JSON")
    given = cli("rerun", str(only_repr), "--failed", "--input", '0={"n": 0, "tags": ["a", "b"]}', "--set", "bad=-1")
    assert given.returncode == 0, given.stderr
    pickled = record(tmp_path / "pickled.db", data, shared, record_pickle=True)
    one_error_line(cli("rerun", str(pickled), "--failed"), 2, "item 0", "as a pickle", "--allow-pickle")
    allowed = cli("rerun", str(pickled), "--failed", "--allow-pickle", "--set", "bad=-1")
    assert allowed.returncode == 0, allowed.stderr
    assert "item 0: succeeded" in allowed.stdout


def test_function_defined_in_main_needs_function_option(tmp_path):
    db = tmp_path / "run.db"
    subprocess.run([sys.executable, "-m", "fixtures.replay_jobs", "main", str(db)], cwd=ROOT, check=True, timeout=30)
    one_error_line(cli("rerun", str(db), "--failed"), 2, "__main__:local_work", "--function")
    again = cli("rerun", str(db), "--failed", "--function", "fixtures.replay_jobs:local_work")
    assert again.returncode == 1 and "item 1: failed: ValueError: local failure" in again.stdout


@pytest.mark.parametrize(
    "function",
    [
        "os:system",  # the standard library
        "subprocess:run",  # called with the item's keys: args="...", shell=True
        "click.testing:CliRunner",  # a package installed in site-packages
        "sqlite_utils.cli:cli",
        "mpmq.backends.local.worker:worker_main",  # mpmq itself
    ],
)
def test_a_recording_cannot_make_rerun_call_a_function_that_is_not_the_users(function, recorded, tmp_path):
    crafted = tmp_path / "crafted.db"
    shutil.copy(recorded, crafted)
    marker = tmp_path / "pwned"
    with sqlite3.connect(crafted) as conn:
        conn.execute("UPDATE runs SET function = ?", (function,))
        tamper.set_every_input(conn, {"args": f"touch {marker}", "shell": True})
    conn.close()
    one_error_line(cli("rerun", str(crafted), "--failed"), 2, f"{function!r}, not one of yours", "--function")
    assert not marker.exists()


def test_usage_and_data_errors(recorded, tmp_path):
    assert cli("rerun", str(recorded)).returncode == 2  # which items?
    assert cli("rerun", str(recorded), "--failed", "--pdb", "--workers").returncode == 2
    one_error_line(cli("rerun", str(recorded), "--offset", "9"), 2, str(recorded), "no item 9")
    one_error_line(cli("rerun", str(recorded), "--failed", "--set", "nope=1"), 2, "--set nope")
    clean = record(tmp_path / "clean.db", [{"n": 0}], {})
    result = cli("rerun", str(clean), "--failed")
    assert result.returncode == 0 and "no failed items" in result.stdout
