"""Recordings are shared data (issue 4): a crafted format 2 or 3 file (issue 18) cannot make a
reader run code or hang. Every case is a real file altered with plain SQL, then read through the API
and the CLI: one RecordingError line naming the file, or, where the reader never looks (the
events view), the right answer regardless.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mpmq.recording import RecordingError, open_recording

ROOT = Path(__file__).resolve().parent.parent
FORMAT_2 = ROOT / "fixtures" / "recordings" / "format-2.db"
FORMAT_3 = ROOT / "fixtures" / "recordings" / "format-3.db"
FOREVER = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"


def crafted(tmp_path: Path, *statements: str, source: Path = FORMAT_2) -> Path:
    path = tmp_path / "crafted.db"
    shutil.copyfile(source, path)
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


def first_batch(run: int = 1) -> str:
    return f"WHERE run_id = {run} AND seq = 0"


CHUNK = (
    '[{"kind":"ran","offset":0,"pid":1,"time":1.0,"offsets":[0,1],"starts":[1.0],"ends":[2.0,2.0],'
    '"values":[{"json":1},{"json":2}]}]'
)
BAD_ROWS = {
    "not JSON": (f"UPDATE batches SET events = 'not json at all' {first_batch()}", "batch 0"),
    "not an array": (f"UPDATE batches SET events = '{{\"kind\":\"log\"}}' {first_batch()}", "batch 0"),
    "a number for events": (f"UPDATE batches SET events = 42 {first_batch()}", "batch 0: Expected `array`"),
    "a blob for events": (f"UPDATE batches SET events = x'00ff' {first_batch()}", "wrong type"),
    "an unknown kind": (f"UPDATE batches SET events = json_set(events, '$[1].kind', 'teleported') {first_batch()}",
                        "event 1 has kind 'teleported', unknown to this mpmq"),
    "an offset the run does not have": (
        f"UPDATE batches SET events = json_set(events, '$[1].offset', 4000000000) {first_batch()}",
        "event 1 is for item 4000000000, but the run has 4 items"),
    "a negative offset": (f"UPDATE batches SET events = json_set(events, '$[0].offset', -1) {first_batch()}",
                          "event 0 is for item -1"),
    "a string for a pid": (f"UPDATE batches SET events = json_set(events, '$[0].pid', 'x') {first_batch()}",
                           "event 0: Expected `int`"),
    "nesting beyond reason": (
        "UPDATE batches SET events = '[{\"kind\":\"result\",\"offset\":0,\"pid\":1,\"time\":1.0,\"value\":{\"json\":'"
        f" || replace(hex(zeroblob(200000)), '00', '[') || replace(hex(zeroblob(200000)), '00', ']') || '}}}}]'"
        f" {first_batch()}", "batch 0"),
    "a chunk without seqs": (f"UPDATE batches SET events = '{CHUNK}', seqs = NULL {first_batch()}",
                             "holds a chunk of items but not the seqs"),
    "a chunk of uneven arrays": (f"UPDATE batches SET events = '{CHUNK}', seqs = '[0]' {first_batch()}",
                                 "offsets, starts, ends and values of different lengths"),
    "seqs that do not match": (f"UPDATE batches SET seqs = '[0, 1, 2]' {first_batch()}", "has 2 events but 3 seqs"),
    "seqs not a list of ints": (f"UPDATE batches SET seqs = '[\"a\"]' {first_batch()}", "batch 0: its seqs"),
    "a receive time that is text": (f"UPDATE batches SET received_at = 'noon' {first_batch()}",
                                    "batch 0 received at 'noon'"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_ROWS)
def test_a_crafted_batch_is_one_recording_error_naming_the_file(case, tmp_path):
    statement, words = BAD_ROWS[case]
    path = crafted(tmp_path, statement)
    with open_recording(path) as recording, pytest.raises(RecordingError) as info:
        list(recording.events(1))
    message = str(info.value)
    assert str(path) in message and "corrupted" in message and words in message and "\n" not in message
    cli = subprocess.run([sys.executable, "-m", "replay.cli", "events", str(path), "--run", "1"], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and str(path) in cli.stderr, cli.stderr


@pytest.mark.parametrize("table", ["batches", "pickles", "runs", "items"])
def test_a_table_made_a_view_that_never_ends_is_refused_before_it_is_read(table, tmp_path):
    path = crafted(tmp_path, f"DROP TABLE {table}", f"CREATE VIEW {table} AS {FOREVER}")
    with pytest.raises(RecordingError, match=rf"is not a valid mpmq recording \(format 2, missing \['{table}'\]\)"):
        open_recording(path)


def test_the_events_view_made_to_loop_forever_is_never_read_by_mpmq(tmp_path):
    """People's SQL reads the view; mpmq reads the batches, so a crafted view changes nothing."""
    path = crafted(tmp_path, "DROP VIEW events", f"CREATE VIEW events AS {FOREVER}")
    with open_recording(path) as recording:
        assert len(list(recording.events(1))) == 15 and recording.run(1).status == "failed"
    for command in ("summary", "logs", "events"):
        done = subprocess.run([sys.executable, "-m", "replay.cli", command, str(path), "--run", "1"], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)


def test_a_trigger_or_a_function_in_a_crafted_file_does_not_run_on_reading(tmp_path):
    """Reading writes nothing, so a trigger never fires; the connection refuses functions with
    side effects in the file's own schema (trusted_schema off)."""
    path = crafted(
        tmp_path,
        "CREATE TABLE audit (n INTEGER)",
        "CREATE TRIGGER spy AFTER INSERT ON runs BEGIN INSERT INTO audit VALUES (1); END",
    )
    with open_recording(path) as recording:
        recording.runs()
        list(recording.events(1))
        recording.items(1)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM audit").fetchone() == (0,)
    conn.close()


def test_a_crafted_pickle_in_the_pickles_table_comes_back_as_bytes(tmp_path):
    payload = b"cos\nsystem\n(S'touch pwned'\ntR."  # what pickle.loads would run
    path = crafted(tmp_path, f"UPDATE pickles SET pickle = x'{payload.hex()}'")
    with open_recording(path) as recording:
        results = [event for _, _, event in recording.events(2) if type(event).__name__ == "Result"]
    assert results[0].value.pickle == payload and not (tmp_path / "pwned").exists()
    json.dumps(results[0].value.json)  # the JSON value is there beside it, untouched


# --- format 3: items in chunks (issue 18) ---------------------------------------------------

BAD_ITEM_ROWS = {
    "an input row claiming a billion items": ("UPDATE inputs SET count = 1000000000 WHERE run_id = 1",
                                              "input row lying about its size"),
    "inputs that are not JSON": ("UPDATE inputs SET inputs = 'not JSON at all' WHERE run_id = 1", "run 1's items"),
    "inputs fewer than their count": ("UPDATE inputs SET inputs = '[1,         2]' WHERE run_id = 1",
                                      "does not hold 4 items"),
    "reprs of another length": ("UPDATE inputs SET reprs = '[null]' WHERE run_id = 1", "does not hold 4 items"),
    "an outcome for an item the run lacks": ("UPDATE outcomes SET outcomes = '[[99, \"succeeded\"]]' WHERE run_id = 1",
                                             "names item 99, not one of the run's 4"),
    "an outcome with a text pid": ("UPDATE outcomes SET outcomes = '[[0, \"succeeded\", \"x\"]]' WHERE run_id = 1",
                                   "Expected `int | null`, got `str`"),
    "an outcome too long": (f"UPDATE outcomes SET outcomes = '[[0{', 1' * 11}]]' WHERE run_id = 1", "has 12 fields"),
    "a chunk of uneven lists": (
        "UPDATE batches SET events = json_set(events, '$[0].starts', json('[1.0]')) WHERE run_id = 4",
        "whose lists differ in length"),
    "a chunk naming an item the run lacks": (
        "UPDATE batches SET events = json_set(events, '$[0].offsets[2]', 7) WHERE run_id = 4", "names item 7"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_ITEM_ROWS)
def test_a_crafted_item_row_is_one_recording_error_naming_the_file(case, tmp_path):
    statement, words = BAD_ITEM_ROWS[case]
    path = crafted(tmp_path, statement, source=FORMAT_3)
    run = 4 if "chunk" in case else 1
    with open_recording(path) as recording, pytest.raises(RecordingError) as info:
        recording.items(run)
    message = str(info.value)
    assert str(path) in message and "corrupted" in message and words in message and "\n" not in message
    cli = subprocess.run([sys.executable, "-m", "replay.cli", "rerun", str(path), "--run", str(run), "--failed"],
                         cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and str(path) in cli.stderr, cli.stderr


@pytest.mark.parametrize("table", ["inputs", "outcomes", "item_pickles"])
def test_a_format_3_table_made_a_view_that_never_ends_is_refused_before_it_is_read(table, tmp_path):
    path = crafted(tmp_path, f"DROP TABLE {table}", f"CREATE VIEW {table} AS {FOREVER}", source=FORMAT_3)
    with pytest.raises(RecordingError, match=rf"is not a valid mpmq recording \(format 3, missing \['{table}'\]\)"):
        open_recording(path)


def test_the_items_view_made_to_loop_forever_is_never_read_by_mpmq(tmp_path):
    path = crafted(tmp_path, "DROP VIEW items", f"CREATE VIEW items AS {FOREVER}", source=FORMAT_3)
    with open_recording(path) as recording:
        assert [item.status for item in recording.items(1)] == ["succeeded", "succeeded", "failed", "succeeded"]
        assert recording.item_count(4) == 3
    for command in ("summary", "logs", "report"):
        done = subprocess.run([sys.executable, "-m", "replay.cli", command, str(path), "--run", "1",
                               *(["-o", str(tmp_path / "r.html")] if command == "report" else [])], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
