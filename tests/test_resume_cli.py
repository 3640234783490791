"""``mpmq-replay resume`` (issue 19, point 2): a real subprocess resumes a recorded run, with
rerun's safety rules for the function the recording names."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fixtures import retry_workers
from mpmq import MPmq
from mpmq.recording import open_recording
from replay.cli import main

ROOT = Path(__file__).resolve().parent.parent


def recorded_with_a_failure(tmp_path):
    db = str(tmp_path / "run.db")
    data = [{"counter": str(tmp_path / f"calls-{i}"), "fails": 1 if i == 1 else 0, "value": i} for i in range(4)]
    MPmq(retry_workers.flaky, process_data=data).execute(record=db)
    return db, data


def test_mpmq_replay_resume_runs_only_what_did_not_succeed(tmp_path):
    db, data = recorded_with_a_failure(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    done = subprocess.run([sys.executable, "-m", "replay.cli", "resume", db], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [f"resumed run 1 of {db}: 3 items taken from it, 1 run",
                                              "4 succeeded, 0 failed"]
    assert "[1] INFO: call 2" in done.stdout.splitlines()  # the item that ran again, live
    assert [retry_workers.calls(item["counter"]) for item in data] == [1, 2, 1, 1]
    with open_recording(db) as recording:
        resumed = recording.run()
        assert (resumed.id, resumed.status, resumed.options["resumed_from"]) == (2, "succeeded", 1)
    summary = CliRunner().invoke(main, ["summary", db]).output
    assert "  resumed:   run 1 (3 items taken from its recording)" in summary
    listed = CliRunner().invoke(main, ["runs", db]).output.splitlines()
    assert listed[-1].split()[0] == "2" and listed[-1].endswith("1 (resumed)")


def test_resume_refuses_a_function_that_is_not_the_users_own_code(tmp_path):
    db, data = recorded_with_a_failure(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET function = 'os:system'")

    result = CliRunner().invoke(main, ["resume", db])

    assert result.exit_code == 2
    assert "not one of yours" in result.output and "--function" in result.output
    assert [retry_workers.calls(item["counter"]) for item in data] == [1, 1, 1, 1]  # nothing ran
    with open_recording(db) as recording:
        assert [run.id for run in recording.runs()] == [1]
