"""What a recording file is, and opening one to write a run into (issue 4).

The format: its version and tables (their SQL is ``schema.py``'s), the checks that recognise
an mpmq recording. Both the
writer (``writer.py``) and the reader (``reader.py``) take it from here, so they agree on
what a recording is. Opening to write is the file's side of starting a run: created 0600 if
new, switched to WAL, given its tables once even when several runs start into it at once; and
closing folds the log back into the one file people copy and share.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import quote_from_bytes

from .schema import APPLICATION_ID, FORMAT_VERSION, PAGE_SIZE, TABLES, create_schema, refresh_views

# SQLite is imported where a function needs it (``sqlite``): a new file's run imports it on the
# recorder's thread, not before its first worker starts (1.5 ms, issue 18).
if TYPE_CHECKING:
    from sqlite3 import Connection

__all__ = [
    "APPLICATION_ID", "FORMAT_VERSION", "RecordingError", "check_sqlite_file", "check_target", "create_schema",
    "abandon", "end_writing", "open_for_writing", "read_format", "sqlite", "write_ahead",
]  # fmt: skip

SQLITE_MAGIC = b"SQLite format 3\x00"
# The log is folded into the file every this many bytes' worth of pages, by the recorder's
# thread as the run goes on: SQLite's default, 1,000 pages, left up to 4 MB (16 MB at 16 KB a
# page) to fold as the run ended, 25 ms after the 100,000-log run's last event (issue 18);
# folding more often costs the thread a few fsyncs, not the run.
CHECKPOINT_BYTES = 409_600


def sqlite() -> ModuleType:
    """The module a recording is written with: ``_sqlite3``, the C module whose names
    ``sqlite3`` re-exports (the same ``connect``, ``Connection`` and exceptions), where there
    is one.

    ``sqlite3`` adds to it only its default datetime adapters and ABC registrations, which a
    recording never uses; imported on the recorder's thread after the workers were forked,
    they cost the parent ~1 ms of CPU more, mostly copy-on-write faults (issue 18).
    """
    try:
        import _sqlite3 as module
    except ImportError:  # an interpreter that has only the public module
        import sqlite3 as module
    return module


class RecordingError(ValueError):
    """A recording cannot be written or read; the one-line message names the file and the problem."""


def check_sqlite_file(path: str) -> None:
    """Refuse a file that is not SQLite, or is shorter than its own header says (truncated)."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
        size = os.path.getsize(path)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not header:
        return  # an empty file is an empty SQLite database
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise RecordingError(f"{path} is not a SQLite database (so not an mpmq recording)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid only when "version-valid-for" matches the change
    # counter (SQLite file format, 1.3.7). A partial copy or download is the usual truncation.
    # Beside a write-ahead log the file may be shorter than its header says: a checkpoint cut
    # short (the writer was killed) is completed from the log when the file is next opened.
    if header[92:96] == header[24:28] and size < pages * page_size and not _has_wal(path):
        raise RecordingError(f"{path} is truncated or corrupted: {size} bytes, its header says {pages * page_size}")


def _has_wal(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def read_format(conn: Connection, path: str) -> int | None:
    """The file's format version, read before anything else; ``None`` for an empty database.

    Refuses a foreign SQLite database and a recording of a newer format.
    """
    # One statement: another run may create the tables between two (a run starting at once).
    objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    tables = {name for kind, name in objects if kind == "table"}
    if not tables:
        if objects:  # views or indexes and no table: nobody's recording
            raise RecordingError(f"{path} is a SQLite database but not an mpmq recording")
        return None
    if "mpmq_meta" not in tables:
        raise RecordingError(f"{path} is a SQLite database but not an mpmq recording")
    row = conn.execute("SELECT value FROM mpmq_meta WHERE key = 'format_version'").fetchone()
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise RecordingError(f"{path} is not an mpmq recording: it has no valid format_version") from None
    if version > FORMAT_VERSION:
        raise RecordingError(
            f"{path} is a recording in format {version}, newer than this mpmq reads "
            f"(up to {FORMAT_VERSION}): upgrade mpmq to read it"
        )
    # Tables, not views: a reader only ever selects from these, and a crafted file could make
    # a view of one that never ends (a recursive WITH).
    missing = set(TABLES.get(version, ("runs", "items", "events"))) - tables
    if version < 1 or missing:
        raise RecordingError(f"{path} is not a valid mpmq recording (format {version}, missing {sorted(missing)})")
    return version


def check_target(path: str) -> bool:
    """Refuse, before anything else happens, a path ``open_for_writing`` could not record to; True
    if the file is new (then created here, empty, 0600, and removed again if starting fails).

    What a run checks before its first worker starts, when it starts its recording later.
    """
    created = _create_or_check(path)
    if not created:
        driver = sqlite()
        try:
            conn = driver.connect(f"{_uri(path)}?mode=ro", uri=True)
            try:
                read_format(conn, path)
            finally:
                conn.close()
        except driver.Error as exc:
            raise RecordingError(f"cannot record to {path}: {exc}") from None
    return created


def open_for_writing(path: str, created: bool) -> tuple[Connection, int]:
    """A connection to ``path`` with a recording's tables in it (made here in an empty file),
    and the file's format version: a new file gets the newest format; a run added to an older
    file is written in that file's format, so that every file holds one format.

    Raises ``RecordingError`` (naming the file) before anything is written when ``path`` holds
    something other than an mpmq recording of this format or an older one; a file created for
    the run (``created``, by ``check_target``) is removed again if anything fails. A file that
    holds runs gets today's views for its format (``schema.refresh_views``). SQLite
    creates its -wal, -shm and -journal files with the database file's permissions, 0600 too.

    A file that already holds runs is switched to WAL mode at once (``write_ahead``): its runs
    are never at the mercy of this one's writes. A file created for this run stays in rollback
    mode, unsynced (synchronous OFF), until ``write_ahead``: until its run's first commit it
    holds nothing a crash could tear but its own empty tables, and a run that ends before its
    first commit is due (``COMMIT_INTERVAL``) is written whole in one transaction, with no log
    to create, sync and delete (issue 18: 3.5 ms of I/O, most of a 3-item run's +7 ms).
    Killed, the process leaves a valid file (rollback journal); a power cut may lose a new
    file as it may lose any file written a moment before.
    """
    driver = sqlite()
    conn = None
    try:
        # A URI, so that no name (":memory:", "file:...") is taken as anything but a file.
        conn = driver.connect(f"{_uri(path)}?mode=rw", uri=True, timeout=5.0, check_same_thread=False)
        if created and not os.path.getsize(path):  # made empty, not from the template: before any read
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        read_format(conn, path)  # refuse a foreign file before changing anything in it
        conn.execute("PRAGMA synchronous = OFF")
        if not created:
            write_ahead(conn)
        # Read the format again inside the transaction: another run may have created the
        # tables meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        version = read_format(conn, path)
        if version is None:
            create_schema(conn)
            version = FORMAT_VERSION
        elif not created:  # a file of runs: today's views for its format (a new file has them)
            refresh_views(conn, version)
        conn.commit()
        return conn, version
    except (driver.Error, OSError) as exc:
        abandon(conn, path, created)
        raise RecordingError(f"cannot record to {path}: {exc}") from None
    except BaseException:
        abandon(conn, path, created)
        raise


def write_ahead(conn: Connection, synced: bool = True) -> None:
    """Switch to WAL mode, where every commit is atomic and cheap (synchronous NORMAL) and
    readers go on reading while the run writes; no-op for a file already in it.

    A file ``open_for_writing`` left unsynced (``synced=False``) is synced by the switch (a
    write to its header in rollback mode, under synchronous NORMAL): from here its commits are
    as safe as any other file's. A file already synced needs no sync to switch: only its header changes
    (the first 100 bytes of page 1, one sector), and torn or lost by a power cut it leaves the
    file as it was or in WAL mode, whole either way (issue 18: 1.5 ms of starting a run);
    see end_writing for the way back.
    """
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute(f"PRAGMA synchronous = {'OFF' if synced else 'NORMAL'}")
        _enter_wal(conn, timeout=5.0)
    conn.execute("PRAGMA synchronous = NORMAL")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, CHECKPOINT_BYTES // page_size)}")


def end_writing(conn: Connection) -> None:
    """Close a connection ``open_for_writing`` opened, leaving the whole run in the file itself.

    Back to a single self-contained file, easy to copy and share. Another connection (a
    concurrent run, a reader) may hold it: then it stays in WAL mode, without waiting, but with
    the log copied into the file all the same. A reader cannot do that when it closes last,
    and people share the file without its -wal.

    The checkpoint syncs the log, then the file: the run is on disk before the log goes (not
    TRUNCATE: the log is deleted next, and truncating it first cost up to 0.5 ms). What
    is left is the journal mode in the header, first 100 bytes of page 1, which is otherwise
    unchanged: torn or lost by a power cut, it leaves the file in WAL mode or in rollback mode,
    complete either way, so it is written without the rollback journal's three fsyncs (issue
    18: 0.5 ms of every recorded run's end).
    """
    driver = sqlite()
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and frames == copied:  # all in the file (no reader holds frames back)
                conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA journal_mode = DELETE")
        except driver.OperationalError:  # another connection holds the file: it keeps the log
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except driver.Error:
        pass
    finally:
        conn.close()


def abandon(conn: Connection | None, path: str, created: bool) -> None:
    """Close ``conn``; remove the file if it was created for the run (leave nothing behind for a
    recording that never started)."""
    if conn is not None:
        conn.close()
    if created:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(path + suffix)
            except OSError:
                pass


def _create_or_check(path: str) -> bool:
    """Create the file (0600) if it is new, from the template where it can (``template.py``),
    and return True; else check it can be written to."""
    if not path:
        raise RecordingError("cannot record: the recording path is empty")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise RecordingError(f"cannot record to {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise RecordingError(f"cannot record to {path}: it is a directory")
    from .template import create_from_template

    created = create_from_template(path)
    if created is None:
        created = _create_empty(path)
    if not created:  # an existing recording gets another run
        return _check_existing(path)
    _remove_stale_companions(path)
    return True


def _create_empty(path: str) -> bool:
    """Create ``path`` empty (0600) where the template cannot be used; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None
    os.close(fd)
    return True


def _remove_stale_companions(path: str) -> None:
    """Remove the log, journal and shared-memory file an earlier file of this name left behind.

    A writer killed mid-run leaves its ``-wal`` (or a hot ``-journal``) beside its file; if
    the file alone is deleted, SQLite applies them to the next file made under that name, as
    it opens it: a new recording then held a run it never had. Only files older than the new
    one go: another process starting a run into it at the same moment may already have made
    its own.
    """
    made = os.stat(path).st_mtime_ns
    for suffix in ("-wal", "-journal", "-shm"):  # the log before its index
        companion = path + suffix
        try:
            if os.stat(companion).st_mtime_ns < made:
                os.remove(companion)
        except OSError:
            pass


def _check_existing(path: str) -> bool:
    if not os.access(path, os.R_OK | os.W_OK):
        raise RecordingError(f"cannot record to {path}: the file is not writable")
    check_sqlite_file(path)
    return False


def _uri(path: str) -> str:
    """``Path(path).as_uri()`` of an absolute path, without pathlib where it is quoted alike.

    The recorder's thread opens the file after the workers were forked: there pathlib's first
    use cost 0.3 ms of CPU, mostly copy-on-write faults on pages shared with them (issue 18).
    """
    if os.name != "posix":
        return Path(path).as_uri()
    return "file://" + quote_from_bytes(os.fsencode(path))


def _enter_wal(conn: Connection, timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while the file is locked.

    When several runs start into one file at once, SQLite refuses the switch with "database is
    locked" straight away rather than waiting its busy timeout as other statements do, and all
    but one of the runs failed to record.
    """
    driver = sqlite()
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except driver.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # another connection holds the lock for a moment: wait, do not spin
        pause = min(pause * 2, 0.05)
