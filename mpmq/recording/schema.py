"""Every format's tables, as SQL frozen when the format was made (``file.py`` uses them).

Format 1 kept one row per event; format 2 (issue 18) keeps the events in the batches the
parent received them in, with format 1's ``events`` rows as a view.
"""

from __future__ import annotations

import sqlite3

FORMAT_VERSION = 2  # the newest format this mpmq reads and the one it writes into a new file
APPLICATION_ID = 0x6D706D71  # b"mpmq", in the SQLite header for tools like file(1)

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
