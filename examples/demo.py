"""``make demo``: 16 simulated downloads on 4 worker processes, watched live, recorded, replayed.

    python -m examples.demo [RECORDING]    (default ./demo.db, replaced on every run)
    python -m examples.demo --cluster local [RECORDING]    (the downloads run on a Dask cluster)

1. runs the downloads with a live per-worker display (``examples/status_display.py``) and
   records the run with ``execute(record=...)``; one download fails on purpose;
2. runs ``mpmq-replay summary`` on the recording: counts, slowest items, the failure's traceback;
3. re-drives the same display from the recording, starting no workers.
"""

import importlib.util
import os
import subprocess
import sys

from examples.status_display import StatusDisplay
from examples.workload import download

FILES = [{"name": f"archive-{n:02}.tar", "size_mb": 20 + (37 * n) % 90} for n in range(16)]
FILES[11]["fail"] = True  # fails on purpose: a checksum mismatch


def main(argv):
    cluster = None
    if "--cluster" in argv:  # "local" or a scheduler's address: see README, Running on a cluster
        at = argv.index("--cluster")
        cluster, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    path = argv[0] if argv else "demo.db"
    for stale in (path, path + "-wal", path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    live = sys.stdout.isatty()

    where = "4 worker processes" if cluster is None else f"4 Dask workers (cluster={cluster})"
    heading(f"1. Live: {len(FILES)} downloads on {where}, recorded to {path}")
    live_run = StatusDisplay(download, process_data=FILES, processes_to_start=4, cluster=cluster)
    results = live_run.execute(record=path)
    print(f"execute() returned {len(results)} results in item order; results[0] = {results[0]}")
    for offset, result in enumerate(results):
        if isinstance(result, Exception):
            print(f"results[{offset}] is the exception {result!r}")

    heading(f"2. mpmq-replay summary {path}")
    summary_ok = mpmq_replay("summary", path)

    heading(f"3. The same display, re-driven from {path} (no workers started)")
    StatusDisplay(download, process_data=FILES, processes_to_start=4).replay(path, speed=2.0 if live else None)

    print(f"\nLook further ({path} stays behind):")
    hints = {
        f"mpmq-replay {path}": "every message, as process_message received it",
        f"mpmq-replay logs {path} --offset 11": "the failed item's log lines",
        f"mpmq-replay rerun {path} --failed --pdb": "run the failed item again here, in the debugger",
    }
    width = max(map(len, hints))
    for command, what in hints.items():
        print(f"  {command:<{width}}   {what}")
    return 0 if summary_ok else 1


def heading(text):
    print(f"\n== {text}", flush=True)


def mpmq_replay(*args):
    """Run ``mpmq-replay ARGS`` as a user would; say so plainly if this checkout lacks it."""
    if importlib.util.find_spec("replay.cli") is None:
        print(f"(skipped: mpmq-replay is not in this checkout yet, replay/cli.py is missing; "
              f"later, try: mpmq-replay {' '.join(args)})")
        return True
    status = subprocess.run([sys.executable, "-m", "replay.cli", *args]).returncode
    if status != 0:
        print(f"mpmq-replay {' '.join(args)} failed with exit status {status}")
    return status == 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
