"""Every format's tables, as SQL frozen when the format was made (``file.py`` uses them), and
its views, which hold no data and may be rewritten for the same rows (``refresh_views``).

Format 1 kept one row per event; format 2 (issue 18) keeps the events in the batches the
parent received them in, with format 1's ``events`` rows as a view; format 3 keeps the items
the same way, inputs and outcomes in chunks, with format 1's ``items`` rows as a view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite3 import Connection

FORMAT_VERSION = 3  # the newest format this mpmq reads and the one it writes into a new file
APPLICATION_ID = 0x6D706D71  # b"mpmq", in the SQLite header for tools like file(1)

# The views' chunks of items (kind "ran"), one row per chunk with its own fields read once, for
# the views to regroup its arrays by item (``chunks``; see format 2's events view).
CHUNKS_CTE = """), chunks AS (
   SELECT b.run_id, b.seq AS batch_seq, e.key AS position, b.received_at,
      json_extract(b.seqs, '$[' || e.key || ']') AS first_seq, json_extract(e.value, '$.pid') AS pid,
      e.value AS chunk
   FROM batches AS b, json_each(b.events) AS e
   WHERE b.seqs IS NOT NULL AND json_extract(e.value, '$.kind') = 'ran'
   LIMIT -1 OFFSET 0
"""

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
    # A chunk's own fields are read first, one row per chunk (``chunks``; OFFSET 0 keeps
    # SQLite from folding it into the grouping query): read in that query, they made every
    # item's row carry the chunk's whole JSON through the GROUP BY's sort.
    """CREATE VIEW "events" AS
WITH plain AS (
   SELECT b.run_id, b.received_at, e.value AS v,
      CASE WHEN b.seqs IS NULL THEN b.seq + e.key ELSE json_extract(b.seqs, '$[' || e.key || ']') END AS seq
   FROM batches AS b, json_each(b.events) AS e
   WHERE b.seqs IS NULL OR json_extract(e.value, '$.kind') IS NOT 'ran'
""" + CHUNKS_CTE + """), chunk_items AS (
   SELECT c.run_id, c.received_at, c.first_seq + 3 * t.key AS seq, c.pid,
      max(CASE t.path WHEN '$.offsets' THEN t.value END) AS "offset",
      max(CASE t.path WHEN '$.starts' THEN t.value END) AS started,
      max(CASE t.path WHEN '$.ends' THEN t.value END) AS ended,
      max(CASE t.path WHEN '$.values' THEN t.value END) AS value
   FROM chunks AS c, json_tree(c.chunk) AS t
   WHERE t.path IN ('$.offsets', '$.starts', '$.ends', '$.values')
   GROUP BY c.run_id, c.batch_seq, c.position, t.key
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


# Format 3 (issue 18): the items too are kept in chunks, as they travel. An UPDATE of each
# item's row as it finished, even 200 to a statement, cost a recorded run of trivial items
# ~10 us of parent CPU an item, four times the unrecorded run; a chunk row costs ~0.1 us an
# item. ``items`` is a view that gives people format 1's rows back.
FORMAT_3_SCHEMA = FORMAT_2_SCHEMA[:2] + FORMAT_2_SCHEMA[3:5] + (
    # The inputs of items first_offset, first_offset + 1, ... (count of them), redacted, as
    # a JSON array written as the run starts: each element an item's input, or null where
    # JSON cannot hold it exactly; then reprs is a JSON array of the same length holding the
    # repr of those inputs (null elsewhere), else NULL. An input JSON holds exactly is its
    # own repr's source, so its repr is not kept (the reader rebuilds it).
    """CREATE TABLE "inputs" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "first_offset" INTEGER,
   "count" INTEGER,
   "inputs" TEXT,
   "reprs" TEXT,
   PRIMARY KEY ("run_id", "first_offset")
)""",
    # The outcomes of the items that finished, written as they finish (seq: the order of the
    # writes), each item once: a JSON array of [offset, status, pid, started_at, ended_at,
    # result, result_repr, error_type, error_message, traceback], result as its JSON text,
    # trailing nulls left out (a success returning None or a count: its repr is its result).
    """CREATE TABLE "outcomes" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "seq" INTEGER,
   "outcomes" TEXT,
   PRIMARY KEY ("run_id", "seq")
)""",
    # Inputs' and results' pickles, only with record_pickle=True: column is 'input' or 'result'.
    """CREATE TABLE "item_pickles" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "offset" INTEGER,
   "column" TEXT,
   "pickle" BLOB,
   PRIMARY KEY ("run_id", "offset", "column")
)""",
    # Format 1's items table as a view. An item's outcome is its own row in ``outcomes`` if it
    # has one, else its place in a chunk of items stored in ``batches`` (kind "ran", values
    # as they came: the items view and the events view read them alike), else it is pending.
    """CREATE VIEW "items" AS
WITH given AS (
   SELECT c.run_id, c.first_offset + e.key AS "offset", e.type AS type, e.value AS value,
      CASE WHEN c.reprs IS NOT NULL THEN json_extract(c.reprs, '$[' || e.key || ']') END AS input_repr
   FROM inputs AS c, json_each(c.inputs) AS e
), ended AS (
   SELECT o.run_id, json_extract(e.value, '$[0]') AS "offset", e.value AS v
   FROM outcomes AS o, json_each(o.outcomes) AS e
""" + CHUNKS_CTE + """), chunked AS (
   SELECT c.run_id, c.pid,
      max(CASE t.path WHEN '$.offsets' THEN t.value END) AS "offset",
      max(CASE t.path WHEN '$.starts' THEN t.value END) AS started,
      max(CASE t.path WHEN '$.ends' THEN t.value END) AS ended,
      max(CASE t.path WHEN '$.values' THEN t.value END) AS value,
      max(CASE t.path WHEN '$.values' THEN t.type END) AS value_type
   FROM chunks AS c, json_tree(c.chunk) AS t
   WHERE t.path IN ('$.offsets', '$.starts', '$.ends', '$.values')
   GROUP BY c.run_id, c.batch_seq, c.position, t.key
), outcome AS (
   SELECT g.run_id, g."offset", g.type, g.value, g.input_repr,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[1]') WHEN c."offset" IS NOT NULL THEN 'succeeded'
         ELSE 'pending' END AS status,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[2]') ELSE c.pid END AS pid,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[3]') ELSE c.started END AS started_at,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[4]') ELSE c.ended END AS ended_at,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[5]') ELSE CASE c.value_type
         WHEN 'object' THEN CASE WHEN json_type(c.value, '$.json') IS NOT NULL
            THEN json_quote(json_extract(c.value, '$.json')) END
         WHEN 'null' THEN 'null' WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
         ELSE CAST(c.value AS TEXT) END END AS result,
      CASE WHEN d.v IS NOT NULL THEN json_extract(d.v, '$[6]') ELSE CASE c.value_type
         WHEN 'object' THEN json_extract(c.value, '$.repr') WHEN 'true' THEN 'True' WHEN 'false' THEN 'False'
         END END AS shown,
      json_extract(d.v, '$[7]') AS error_type, json_extract(d.v, '$[8]') AS error_message,
      json_extract(d.v, '$[9]') AS traceback
   FROM given AS g LEFT JOIN ended AS d ON d.run_id = g.run_id AND d."offset" = g."offset"
      LEFT JOIN chunked AS c ON c.run_id = g.run_id AND c."offset" = g."offset"
)
SELECT o.run_id AS run_id, o."offset" AS "offset",
   CASE WHEN o.input_repr IS NOT NULL THEN NULL WHEN o.type IN ('object', 'array') THEN o.value
      WHEN o.type IN ('true', 'false', 'null') THEN o.type ELSE json_quote(o.value) END AS input,
   o.input_repr AS input_repr,
   (SELECT p.pickle FROM item_pickles AS p
      WHERE p.run_id = o.run_id AND p."offset" = o."offset" AND p."column" = 'input') AS input_pickle,
   o.status AS status, o.pid AS pid, o.started_at AS started_at, o.ended_at AS ended_at,
   o.ended_at - o.started_at AS duration, o.result AS result,
   coalesce(o.shown, CASE o.result WHEN 'null' THEN 'None' ELSE o.result END) AS result_repr,
   (SELECT p.pickle FROM item_pickles AS p
      WHERE p.run_id = o.run_id AND p."offset" = o."offset" AND p."column" = 'result') AS result_pickle,
   o.error_type AS error_type, o.error_message AS error_message, o.traceback AS traceback
FROM outcome AS o""",
    # Format 2's events view, but for a chunk's values: from format 3 on, None, a bool or a
    # count is stored as it came, and its result row says it as format 2 stored it.
    """CREATE VIEW "events" AS
WITH plain AS (
   SELECT b.run_id, b.received_at, e.value AS v,
      CASE WHEN b.seqs IS NULL THEN b.seq + e.key ELSE json_extract(b.seqs, '$[' || e.key || ']') END AS seq
   FROM batches AS b, json_each(b.events) AS e
   WHERE b.seqs IS NULL OR json_extract(e.value, '$.kind') IS NOT 'ran'
""" + CHUNKS_CTE + """), chunk_items AS (
   SELECT c.run_id, c.received_at, c.first_seq + 3 * t.key AS seq, c.pid,
      max(CASE t.path WHEN '$.offsets' THEN t.value END) AS "offset",
      max(CASE t.path WHEN '$.starts' THEN t.value END) AS started,
      max(CASE t.path WHEN '$.ends' THEN t.value END) AS ended,
      max(CASE t.path WHEN '$.values' THEN t.value END) AS value,
      max(CASE t.path WHEN '$.values' THEN t.type END) AS value_type
   FROM chunks AS c, json_tree(c.chunk) AS t
   WHERE t.path IN ('$.offsets', '$.starts', '$.ends', '$.values')
   GROUP BY c.run_id, c.batch_seq, c.position, t.key
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
   c.received_at, NULL, NULL, NULL, CASE s.step WHEN 1 THEN CASE c.value_type WHEN 'object' THEN c.value
      WHEN 'null' THEN '{"repr":"None","json":null}' WHEN 'true' THEN '{"repr":"True","json":true}'
      WHEN 'false' THEN '{"repr":"False","json":false}'
      ELSE '{"repr":"' || c.value || '","json":' || c.value || '}' END END, k.pickle
FROM chunk_items AS c CROSS JOIN steps AS s
   LEFT JOIN pickles AS k ON s.step = 1 AND k.run_id = c.run_id AND k.seq = c.seq + 1""",
)  # fmt: skip

SCHEMAS = {1: FORMAT_1_SCHEMA, 2: FORMAT_2_SCHEMA, 3: FORMAT_3_SCHEMA}
# A format's views, by name. Unlike its tables, a view holds no data: a better one for the same
# rows replaces the old one in any file a run is added to (``refresh_views``).
VIEWS = {
    version: {statement.split('"')[1]: statement for statement in statements if statement.startswith("CREATE VIEW")}
    for version, statements in SCHEMAS.items()
}
# What each format keeps its rows in (checked to be tables: a crafted view could loop forever).
TABLES = {
    1: ("runs", "items", "events"),
    2: ("runs", "items", "batches", "pickles"),
    3: ("runs", "inputs", "outcomes", "item_pickles", "batches", "pickles"),
}


# Batch rows are kilobytes of JSON each: with SQLite's default 4 KB pages most of a row lived in
# overflow pages, and writing 100,000 log events took 9,600 writes and 2,900 reads, each page
# once to the log and once to the file; with 16 KB pages 2,700 and 800, and 8 % less of the
# parent's CPU (issue 18). The cost: an empty recording is 14 pages, 224 KB instead of 68.
PAGE_SIZE = 16_384


def create_schema(conn: Connection, version: int = FORMAT_VERSION) -> None:
    """A format's tables in an empty database (inside the caller's transaction)."""
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only an empty database takes it
    for statement in SCHEMAS[version]:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO mpmq_meta (key, value) VALUES (?, ?)",
        [("format_version", str(version)), ("application", "mpmq")],
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def refresh_views(conn: Connection, version: int) -> None:
    """Replace a file's views that are not today's SQL for its format (inside the caller's
    transaction): the same rows, read faster. Until the format 2 and 3 views of 2026-12-05,
    a chunk of items dragged its whole JSON through every one of its items' rows: a minute to
    count the events of 100,000 items, and more memory than the machine had for 1,000,000."""
    wanted = VIEWS[version]
    if not wanted:
        return
    names = ", ".join("?" * len(wanted))
    have = dict(conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'view' AND name IN ({names})",
                             list(wanted)).fetchall())
    for name, sql in wanted.items():
        if have.get(name) != sql:
            conn.execute(f'DROP VIEW IF EXISTS "{name}"')
            conn.execute(sql)
