"""The ``events`` and ``items`` views cost what their rows cost, however big the chunks of items
a run's workers sent (issue 18).

Their first SQL carried a chunk's whole JSON through the sort of every one of its items' rows:
counting the events of 100,000 trivial items took a minute and ran out of temporary space at
1,000,000. Measured in memory rather than time: SQLite, held to 64 MB, answers the README's
queries over a run of 10,000 items; the first views needed gigabytes for it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from fixtures.workers import fail_on
from mpmq import MPmq

ITEMS = 10_000
QUERIES = {
    "SELECT count(*) FROM events": [(3 * ITEMS,)],
    "SELECT count(*) FROM items WHERE status = 'succeeded'": [(ITEMS,)],
    "SELECT kind, \"offset\" FROM events WHERE \"offset\" = 2 ORDER BY seq":
        [("started", 2), ("result", 2), ("done", 2)],
    "SELECT result FROM items WHERE \"offset\" = 7777": [("7777",)],
    "SELECT message FROM events WHERE \"offset\" = 2 AND kind = 'log'": [],
}
# SQLite's own memory held to 64 MB, its temporary tables kept in that memory (not on disk)
ASK_IN_64_MB = """
import json, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
conn.execute("PRAGMA temp_store = MEMORY")
conn.execute("PRAGMA hard_heap_limit = 64000000")
print(json.dumps([conn.execute(query).fetchall() for query in json.loads(sys.argv[2])]))
"""


def test_the_views_answer_over_big_chunks_of_items_in_bounded_memory(start_method, tmp_path):
    path = str(tmp_path / "run.db")
    results = MPmq(fail_on, process_data=[{"value": n} for n in range(ITEMS)], processes_to_start=2,
                   context=start_method).execute(record=path)
    assert results == list(range(ITEMS))
    with sqlite3.connect(path) as conn:  # what makes the test bite: chunks of many items
        biggest = conn.execute("SELECT max(json_array_length(e.value, '$.offsets')) FROM batches AS b, "
                               "json_each(b.events) AS e WHERE b.seqs IS NOT NULL").fetchone()[0]
    conn.close()
    assert biggest >= 100
    done = subprocess.run([sys.executable, "-c", ASK_IN_64_MB, path, json.dumps(list(QUERIES))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [[tuple(row) for row in rows] for rows in json.loads(done.stdout)]
    assert dict(zip(QUERIES, answers)) == QUERIES
