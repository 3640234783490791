"""A new recording starts as the shipped template (``recording/template.py``, issue 18): the
template is exactly what ``schema.py`` makes, it appears at its path whole or not at all, and
where it cannot be used (no hard links) the file is made the old way, empty, its tables then.

Real files, real SQLite, a real recorded run.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing

import pytest

from mpmq import MPmq
from mpmq.recording import FORMAT_VERSION, open_recording
from mpmq.recording.file import check_target, read_format
from mpmq.recording.schema import PAGE_SIZE
from mpmq.recording.template import TEMPLATE, create_from_template, make

REMAKE = "the template differs from schema.py: run `python -m mpmq.recording.template` and commit it"


def describe(path: str) -> dict:
    """Everything about an empty recording that a reader or a writer could tell apart."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {
            "objects": conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall(),
            "meta": conn.execute("SELECT key, value FROM mpmq_meta ORDER BY key").fetchall(),
            "runs": conn.execute("SELECT count(*) FROM runs").fetchone(),
            **{pragma: conn.execute(f"PRAGMA {pragma}").fetchone()[0]
               for pragma in ("application_id", "user_version", "page_size", "encoding", "auto_vacuum",
                              "journal_mode", "integrity_check")},
        }  # fmt: skip


def test_the_template_is_what_the_schema_makes(tmp_path):
    fresh = str(tmp_path / "fresh.db")
    make(fresh)
    assert describe(TEMPLATE) == describe(fresh), REMAKE
    with closing(sqlite3.connect(f"file:{TEMPLATE}?mode=ro", uri=True)) as conn:
        assert read_format(conn, TEMPLATE) == FORMAT_VERSION, REMAKE
    with open(TEMPLATE, "rb") as f:
        header = f.read(100)
    assert header[18:20] == b"\x01\x01", "the template must be in rollback mode: WAL is entered per run"


def test_a_new_recording_starts_as_the_template_0600_with_nothing_left_beside_it(tmp_path):
    path = str(tmp_path / "new.db")
    assert check_target(path) is True
    with open(path, "rb") as made, open(TEMPLATE, "rb") as template:
        assert made.read() == template.read()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["new.db"]


@pytest.mark.parametrize("kernel", ["refuses", "copies 5,000 bytes at a time"])
def test_the_template_is_copied_whole_whatever_the_kernel_copies(tmp_path, monkeypatch, kernel):
    # copy_file_range fails between some file systems (EXDEV) and may copy less than asked
    copy_file_range = getattr(os, "copy_file_range", None)

    def refuses(source, target, count):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def in_pieces(source, target, count):
        return copy_file_range(source, target, min(count, 5_000))

    if kernel == "refuses":
        monkeypatch.setattr(os, "copy_file_range", refuses, raising=False)
    elif copy_file_range is None:
        pytest.skip("no copy_file_range on this system")
    else:
        monkeypatch.setattr(os, "copy_file_range", in_pieces)
    path = str(tmp_path / "new.db")
    assert create_from_template(path) is True
    with open(path, "rb") as made, open(TEMPLATE, "rb") as template:
        assert made.read() == template.read()
    assert sorted(os.listdir(tmp_path)) == ["new.db"]


def test_a_recorded_run_writes_with_sqlites_c_module_alone(tmp_path):
    # The package sqlite3 wraps _sqlite3 with datetime adapters a recording never uses; imported
    # on the recorder's thread after the workers were forked it cost the parent ~1 ms more
    # (issue 18). The file is whole and reads as any other.
    path = str(tmp_path / "run.db")
    (tmp_path / "work.py").write_text("def double(n=0):\n    return 2 * n\n")
    code = (
        "import sys\n"
        "from mpmq import MPmq\n"
        "from work import double\n"
        "if __name__ == '__main__':\n"
        "    run = MPmq(double, process_data=[{'n': n} for n in range(3)], processes_to_start=2)\n"
        f"    print(run.execute(record={path!r}))\n"
        "    print('sqlite3' in sys.modules, '_sqlite3' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[0, 2, 4]", "False True"]
    assert describe(path)["integrity_check"] == "ok"
    with open_recording(path) as recording:
        assert recording.run().status == "succeeded"


def test_an_existing_path_is_left_as_it_is(tmp_path):
    path = tmp_path / "taken.db"
    path.write_bytes(b"")
    assert create_from_template(str(path)) is False
    assert path.read_bytes() == b"" and sorted(os.listdir(tmp_path)) == ["taken.db"]


@pytest.mark.parametrize("links", [True, False])
def test_a_new_file_clears_what_an_older_file_of_its_name_left_and_nothing_newer(tmp_path, monkeypatch, links):
    """Beside a new file, an older -wal, -journal or -shm is a deleted file's, which SQLite would
    apply to the new one (tests/test_recording_durability.py); a newer one is another run's, made
    as it starts into the same file at the same moment, and stays."""
    def no_links(source, target):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    if not links:  # the file is made empty: the same rule
        monkeypatch.setattr(os, "link", no_links)
    path = str(tmp_path / "run.db")
    ages = {"-wal": -60, "-journal": -60, "-shm": +60}  # seconds from now
    for suffix, age in ages.items():
        with open(path + suffix, "wb") as companion:
            companion.write(b"left behind")
        os.utime(path + suffix, (time.time() + age, time.time() + age))
    assert check_target(path) is True
    assert sorted(os.listdir(tmp_path)) == ["run.db", "run.db-shm"]


def double(n: int = 0) -> int:
    return 2 * n


@pytest.mark.parametrize("link_error", [errno.EPERM, errno.EXDEV])
def test_without_hard_links_a_new_file_starts_empty_and_the_run_makes_its_tables(tmp_path, monkeypatch, link_error):
    def no_links(source, target):
        raise OSError(link_error, os.strerror(link_error))

    monkeypatch.setattr(os, "link", no_links)  # a file system without hard links (FAT, some network ones)
    path = str(tmp_path / "nolinks.db")
    assert check_target(path) is True
    assert os.path.getsize(path) == 0 and sorted(os.listdir(tmp_path)) == ["nolinks.db"]
    os.remove(path)
    results = MPmq(double, process_data=[{"n": n} for n in range(3)], processes_to_start=2).execute(record=path)
    assert results == [0, 2, 4]
    with open_recording(path) as recording:
        assert recording.run().status == "succeeded"
        assert [item.status for item in recording.items()] == ["succeeded"] * 3
    made, template = describe(path), describe(TEMPLATE)
    assert made["objects"] == template["objects"]
    assert made["page_size"] == template["page_size"] == PAGE_SIZE  # the run's file is as the template would be


def test_a_short_run_into_a_new_file_leaves_one_file_in_rollback_mode(tmp_path):
    """A run over before its first commit was due is written in one transaction, without the
    log WAL mode keeps; the file is whole, alone, and reads as any other."""
    path = str(tmp_path / "short.db")
    results = MPmq(double, process_data=[{"n": n} for n in range(3)], processes_to_start=2).execute(record=path)
    assert results == [0, 2, 4]
    assert sorted(os.listdir(tmp_path)) == ["short.db"]
    facts = describe(path)
    assert facts["journal_mode"] == "delete" and facts["integrity_check"] == "ok" and facts["runs"] == (1,)
    with open_recording(path) as recording:
        assert recording.run().status == "succeeded"


def test_starting_a_new_recording_leaves_sqlite3_to_the_recorders_thread(tmp_path):
    # What runs before the first worker (issue 18): a new file is checked and made from the
    # template without loading sqlite3, whose import (1.5-2 ms) happens on the recorder's thread.
    code = (
        "import sys\n"
        "import mpmq, mpmq.recording.session\n"
        "from mpmq.recording.file import check_target\n"
        f"assert check_target({str(tmp_path / 'new.db')!r}) is True\n"
        "print('sqlite3' in sys.modules, '_sqlite3' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert describe(str(tmp_path / "new.db"))["integrity_check"] == "ok"
