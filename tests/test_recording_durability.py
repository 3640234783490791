"""A recorded run's parent killed with SIGKILL mid-run leaves a valid recording holding what it
had received (issue 4, kept by format 2 in issue 18): events are committed within 0.1 s of
arriving, while the run goes on, in WAL mode, so the kill tears nothing.

A real parent (a subprocess running MPmq with record=), real workers, a real SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from fixtures import workers
from mpmq import MPmq
from mpmq.recording import open_recording

ROOT = Path(__file__).resolve().parent.parent
LINES = 5
PARENT = textwrap.dedent(
    """
    import sys
    from mpmq import MPmq
    from fixtures.recording_workers import log_then_hang

    class Announcing(MPmq):
        def process_message(self, offset, message):
            print(message, flush=True)

    lines = int(sys.argv[2])
    Announcing(log_then_hang, process_data=[{"lines": lines}, {"lines": 0}], processes_to_start=2).execute(
        record=sys.argv[1])
    """
)


def recorded_lines(path: Path) -> int:
    try:
        with open_recording(path) as recording:
            return sum(1 for _, _, event in recording.events() if type(event).__name__ == "Log")
    except Exception:  # not even created yet, or its run not yet in it
        return 0


def test_a_sigkilled_recording_parent_leaves_a_valid_file_with_what_it_received(tmp_path):
    db = tmp_path / "run.db"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(db), str(LINES)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        received = [parent.stdout.readline() for _ in range(LINES)]  # the test deadline bounds this
        assert all("INFO: line" in line for line in received), (received, parent.stderr.read())
        # Committed while the run goes on (within 0.1 s of arriving): wait for it, then kill.
        while recorded_lines(db) < LINES:  # the test deadline bounds this wait
            time.sleep(0.02)
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.wait()
        parent.stdout.close()
        parent.stderr.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    with open_recording(db) as recording:
        run = recording.run()
        events = [event for _, _, event in recording.events()]
        items = recording.items()
    assert run.status == "running" and not run.complete and run.ended_at is None
    assert [e.message for e in events if type(e).__name__ == "Log"] == [f"line {n}" for n in range(LINES)]
    assert [i.status for i in items] == ["pending", "pending"]  # item rows are written at the end
    summary = subprocess.run([sys.executable, "-m", "replay.cli", "summary", str(db)], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert summary.returncode == 0 and "INCOMPLETE (recorded status 'running')" in summary.stdout, summary


def test_a_new_file_takes_nothing_from_the_log_a_deleted_file_of_its_name_left(tmp_path):
    """A writer killed mid-run leaves its -wal beside its file; deleting the file alone must not
    hand that log to the next recording made under the name (SQLite applies a -wal it finds)."""
    db = tmp_path / "run.db"
    MPmq(workers.add, process_data=[{"number": 1, "pid": 1}]).execute(record=db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE runs SET function = 'a run of the deleted file'")
    left = {suffix: Path(f"{db}{suffix}").read_bytes() for suffix in ("-wal", "-shm")}  # what a kill leaves
    conn.close()
    db.unlink()
    left["-journal"] = b"a hot journal of the deleted file"
    an_hour_ago = time.time() - 3600
    for suffix, data in left.items():
        Path(f"{db}{suffix}").write_bytes(data)
        os.utime(f"{db}{suffix}", (an_hour_ago, an_hour_ago))
    assert len(left["-wal"]) > 32  # a header and at least one frame: SQLite would apply it

    assert MPmq(workers.add, process_data=[{"number": 2, "pid": 1}]).execute(record=db) == [3]

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    with open_recording(db) as recording:
        assert [run.function for run in recording.runs()] == ["fixtures.workers:add"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.db"]
