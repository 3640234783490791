"""What a recording file is, and opening one to write a run into (issue 4).

The format: its tables, its version, the checks that recognise an mpmq recording. Both the
writer (``writer.py``) and the reader (``reader.py``) take it from here, so they agree on
what a recording is. Opening to write is the file's side of starting a run: created 0600 if
new, switched to WAL, given its tables once even when several runs start into it at once; and
closing folds the log back into the one file people copy and share.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

FORMAT_VERSION = 2  # the newest format this mpmq reads and the one it writes into a new file
SQLITE_MAGIC = b"SQLite format 3\x00"
APPLICATION_ID = 0x6D706D71  # b"mpmq", in the SQLite header for tools like file(1)


class RecordingError(ValueError):
    """A recording cannot be written or read; the one-line message names the file and the problem."""


# Format 1's tables, exactly as sqlite-utils 4 declared them when format 1 was released. The
# text is frozen here rather than generated at run time: a format cannot depend on the installed
# sqlite-utils (3.x writes FLOAT and [names] where 4.x writes REAL and "names"), and importing
# sqlite-utils cost ~45 ms, a sixth of a recorded 100,000-log run, before its first worker.
FORMAT_1_SCHEMA = (
    """CREATE TABLE "mpmq_meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
)""",
    """CREATE TABLE "runs" (
   "id" INTEGER PRIMARY KEY,
   "format_version" INTEGER,
   "mpmq_version" TEXT,
   "python_version" TEXT,
   "platform" TEXT,
   "start_method" TEXT,
   "function" TEXT,
   "handler" TEXT,
   "processes_to_start" INTEGER,
   "error_policy" TEXT,
   "command_line" TEXT,
   "started_at" REAL,
   "ended_at" REAL,
   "utc_offset" INTEGER,
   "status" TEXT,
   "item_count" INTEGER,
   "succeeded" INTEGER,
   "failed" INTEGER,
   "shared_data" TEXT,
   "shared_data_repr_keys" TEXT,
   "shared_data_pickle" BLOB,
   "options" TEXT,
   "parent_run" INTEGER,
   "recording_error" TEXT
)""",
    """CREATE TABLE "items" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "offset" INTEGER,
   "input" TEXT,
   "input_repr" TEXT,
   "input_pickle" BLOB,
   "status" TEXT,
   "pid" INTEGER,
   "started_at" REAL,
   "ended_at" REAL,
   "duration" REAL,
   "result" TEXT,
   "result_repr" TEXT,
   "result_pickle" BLOB,
   "error_type" TEXT,
   "error_message" TEXT,
   "traceback" TEXT,
   PRIMARY KEY ("run_id", "offset")
)""",
    """CREATE TABLE "events" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "seq" INTEGER,
   "kind" TEXT,
   "offset" INTEGER,
   "pid" INTEGER,
   "worker_time" REAL,
   "received_at" REAL,
   "level" INTEGER,
   "logger" TEXT,
   "message" TEXT,
   "data" TEXT,
   "pickle" BLOB,
   PRIMARY KEY ("run_id", "seq")
)""",
    # "events of run R in order" is the primary key; this one is "events of item N".
    """CREATE INDEX "events_by_item"
    ON "events" ("run_id", "offset", "seq")""",
)  # fmt: skip


# Format 2 (issue 18): the events of a run are stored in the batches in which the parent
# received them, one row per batch holding them as a JSON array (one indexed row per event cost
# 8x more to write), and ``events`` is a view that gives people format 1's rows back.
# ``runs``, ``items`` and ``mpmq_meta`` are format 1's, word for word.
FORMAT_2_SCHEMA = FORMAT_1_SCHEMA[:3] + (
    # seq: the first event's sequence number; count: the events in it, a chunk of items
    # counted as the three events each item stands for; first/last_offset: the lowest and
    # highest item offsets in it, so one item's events are found without decoding every
    # batch; seqs: NULL when the batch's events are numbered seq, seq + 1, ...; else, when it
    # holds chunks, each element's own first seq (a JSON array); events: the JSON array.
    """CREATE TABLE "batches" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "seq" INTEGER,
   "received_at" REAL,
   "count" INTEGER,
   "first_offset" INTEGER,
   "last_offset" INTEGER,
   "seqs" TEXT,
   "events" TEXT,
   PRIMARY KEY ("run_id", "seq")
)""",
    # Pickles kept with record_pickle=True, by the seq of the result or error they belong to:
    # binary, so apart from the JSON (which would carry them as base64 text).
    """CREATE TABLE "pickles" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "seq" INTEGER,
   "pickle" BLOB,
   PRIMARY KEY ("run_id", "seq")
)""",
    # Format 1's events table as a view: one row per event, the same columns and meanings.
    # A chunk of items (kind "ran": offsets, starts, ends, values) becomes each item's
    # started, result and done rows. Its arrays are read in one json_tree pass per chunk and
    # regrouped by index: json_extract by index would parse the whole chunk once per item.
    """CREATE VIEW "events" AS
WITH plain AS (
   SELECT b.run_id, b.received_at, e.value AS v,
      CASE WHEN b.seqs IS NULL THEN b.seq + e.key ELSE json_extract(b.seqs, '$[' || e.key || ']') END AS seq
   FROM batches AS b, json_each(b.events) AS e
   WHERE b.seqs IS NULL OR json_extract(e.value, '$.kind') IS NOT 'ran'
), chunk_items AS (
   SELECT b.run_id, b.received_at, json_extract(b.seqs, '$[' || e.key || ']') + 3 * t.key AS seq,
      json_extract(e.value, '$.pid') AS pid, e.value AS chunk,
      max(CASE t.path WHEN '$.offsets' THEN t.value END) AS "offset",
      max(CASE t.path WHEN '$.starts' THEN t.value END) AS started,
      max(CASE t.path WHEN '$.ends' THEN t.value END) AS ended,
      max(CASE t.path WHEN '$.values' THEN t.value END) AS value
   FROM batches AS b, json_each(b.events) AS e, json_tree(e.value) AS t
   WHERE b.seqs IS NOT NULL AND json_extract(e.value, '$.kind') = 'ran'
      AND t.path IN ('$.offsets', '$.starts', '$.ends', '$.values')
   GROUP BY b.run_id, b.seq, e.key, t.key
), steps (step, kind) AS (VALUES (0, 'started'), (1, 'result'), (2, 'done'))
SELECT p.run_id AS run_id, p.seq AS seq, json_extract(p.v, '$.kind') AS kind,
   json_extract(p.v, '$.offset') AS "offset", json_extract(p.v, '$.pid') AS pid,
   json_extract(p.v, '$.time') AS worker_time, p.received_at AS received_at,
   json_extract(p.v, '$.level') AS level, json_extract(p.v, '$.logger') AS logger,
   json_extract(p.v, '$.message') AS message,
   CASE json_extract(p.v, '$.kind') WHEN 'result' THEN json_extract(p.v, '$.value')
      ELSE nullif(json_patch('{}', json_remove(p.v, '$.kind', '$.offset', '$.pid', '$.time', '$.level',
                                               '$.logger', '$.message', '$.exception')), '{}') END AS data,
   k.pickle AS pickle
FROM plain AS p LEFT JOIN pickles AS k ON k.run_id = p.run_id AND k.seq = p.seq
UNION ALL
SELECT c.run_id, c.seq + s.step, s.kind, c."offset", c.pid, CASE s.step WHEN 0 THEN c.started ELSE c.ended END,
   c.received_at, NULL, NULL, NULL, CASE s.step WHEN 1 THEN c.value END, k.pickle
FROM chunk_items AS c CROSS JOIN steps AS s
   LEFT JOIN pickles AS k ON s.step = 1 AND k.run_id = c.run_id AND k.seq = c.seq + 1""",
)  # fmt: skip

SCHEMAS = {1: FORMAT_1_SCHEMA, 2: FORMAT_2_SCHEMA}
# What each format keeps its rows in (checked to be tables: a crafted view could loop forever).
TABLES = {1: ("runs", "items", "events"), 2: ("runs", "items", "batches", "pickles")}


def create_schema(conn: sqlite3.Connection, version: int = FORMAT_VERSION) -> None:
    """A format's tables in an empty database (inside the caller's transaction)."""
    for statement in SCHEMAS[version]:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO mpmq_meta (key, value) VALUES (?, ?)",
        [("format_version", str(version)), ("application", "mpmq")],
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


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


def read_format(conn: sqlite3.Connection, path: str) -> int | None:
    """The file's format version, read before anything else; ``None`` for an empty database.

    Refuses a foreign SQLite database and a recording of a newer format.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
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
    """Refuse, before anything else happens, a path ``starting_run`` could not record to; True
    if the file is new (then created here, empty, 0600, and removed again if starting fails).

    What a run checks before its first worker starts, when it starts its recording later.
    """
    created = _create_or_check(path)
    if not created:
        try:
            conn = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)
            try:
                read_format(conn, path)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise RecordingError(f"cannot record to {path}: {exc}") from None
    return created


@contextlib.contextmanager
def starting_run(path: str, created: bool | None = None) -> Iterator[tuple[sqlite3.Connection, int]]:
    """A connection to ``path`` in WAL mode, inside a ``BEGIN IMMEDIATE`` transaction, with
    the file's format version, for the body to write a run's first rows; committed at the end
    of it. A new file gets the newest format; a run added to an older file is written in that
    file's format, so that every file holds one format.

    One transaction: a run is in the file with all its items, or not at all. Raises
    ``RecordingError`` (naming the file) before anything is written when the path cannot be
    written, or holds something other than an mpmq recording of this format or an older one;
    a file created here is removed again if anything fails. A new file is made readable by
    its owner only (0600).
    """
    if created is None:
        created = _create_or_check(path)
    conn = None
    try:
        # A URI, so that no name (":memory:", "file:...") is taken as anything but a file.
        conn = sqlite3.connect(f"{Path(path).as_uri()}?mode=rw", uri=True, timeout=5.0, check_same_thread=False)
        read_format(conn, path)  # refuse a foreign file before changing anything in it
        # SQLite creates the -wal and -shm files with the database file's permissions, so
        # they are 0600 too; synchronous=NORMAL in WAL mode keeps every commit atomic.
        _enter_wal(conn, timeout=5.0)
        conn.execute("PRAGMA synchronous = NORMAL")
        # SQLite's default checkpoint every ~4 MB (1,000 pages), done by the writer thread
        # during the run, leaves little for closing to copy after the run (measured: a
        # 40 MB interval made the 100,000-log recording 10 % slower end to end).
        # Read the format again inside the transaction: another run may have created the
        # tables meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        version = read_format(conn, path)
        if version is None:
            create_schema(conn)
            version = FORMAT_VERSION
        yield conn, version
        conn.commit()
    except (sqlite3.Error, OSError) as exc:
        _abandon(conn, path, created)
        raise RecordingError(f"cannot record to {path}: {exc}") from None
    except BaseException:
        _abandon(conn, path, created)
        raise


def end_writing(conn: sqlite3.Connection) -> None:
    """Close a connection ``starting_run`` opened, leaving the whole run in the file itself.

    Back to a single self-contained file, easy to copy and share. Another connection (a
    concurrent run, a reader) may hold it: then it stays in WAL mode, without waiting, but with
    the log copied into the file all the same. A reader cannot do that when it closes last,
    and people share the file without its -wal.
    """
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def _abandon(conn: sqlite3.Connection | None, path: str, created: bool) -> None:
    if conn is not None:
        conn.close()
    if created:  # leave nothing behind for a recording that never started
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(path + suffix)
            except OSError:
                pass


def _create_or_check(path: str) -> bool:
    """Create the file (0600) if it is new and return True; else check it can be written to."""
    if not path:
        raise RecordingError("cannot record: the recording path is empty")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise RecordingError(f"cannot record to {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise RecordingError(f"cannot record to {path}: it is a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # an existing recording gets another run; checked below
    except OSError as exc:
        raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None
    else:
        os.close(fd)
        return True
    if not os.access(path, os.R_OK | os.W_OK):
        raise RecordingError(f"cannot record to {path}: the file is not writable")
    check_sqlite_file(path)
    return False


def _enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while the file is locked.

    When several runs start into one file at once, SQLite refuses the switch with "database is
    locked" straight away rather than waiting its busy timeout as other statements do, and all
    but one of the runs failed to record.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # another connection holds the lock for a moment: wait, do not spin
        pause = min(pause * 2, 0.05)
