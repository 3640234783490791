"""The cluster rows of ``make bench`` (issue 17): mpmq on Dask, side by side with raw Dask.

Run by ``python -m bench`` in an interpreter of its own (``section``), or alone:

    python -m bench.cluster [--quick] [--repeat N]

On a cluster of one ``dask scheduler`` and two ``dask worker --nthreads 1`` processes started
here (so the parent's CPU is the client's alone), each row runs mpmq and its baseline in the
same run, alternating which goes first, and prints medians and the ratio against its target:

- trivial items: ``cluster=client`` against ``client.map(f, items, pure=False)`` + ``gather``
  on the same cluster, at least 20x faster;
- 100,000 log lines delivered to ``process_message`` from 2 workers: the cluster's rate at
  least 0.8x the local backend's (the client's connection timed);
- ``cluster="local"``, 3 trivial items end to end (cluster start and close included): within
  1.3x of ``LocalCluster`` + ``Client`` + ``map`` + ``gather`` + close;
- the parent's CPU while 2 cluster items sleep 2 s: under 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # what the README tells users to start a scheduler with
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    "DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START": "False",
}
logger = logging.getLogger("bench.cluster")


# -- what the workers run -------------------------------------------------------------------

def trivial(value=0):
    return value


def log_lines(value=0, count=50_000):
    for number in range(count):
        logger.info("line %d of item %d", number, value)
    return count


def nap(value=0, seconds=2.0):
    time.sleep(seconds)
    return value


# -- one cluster for the run ----------------------------------------------------------------

class Cluster:
    """``dask scheduler`` and two one-thread ``dask worker`` processes on 127.0.0.1."""

    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="mpmq-bench-")
        file = Path(self.directory.name, "scheduler.json")
        dask = str(Path(sys.executable).parent / "dask")
        env = {**os.environ, **SETTINGS, "PYTHONPATH": str(ROOT)}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": ROOT}
        self.processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                            "--no-dashboard", "--scheduler-file", str(file)], **quiet)]
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(2):
            self.processes.append(subprocess.Popen([dask, "worker", "--nthreads", "1", "--host", "127.0.0.1",
                                                    "--no-dashboard", "--scheduler-file", str(file)], **quiet))
        self.address = json.loads(file.read_text())["address"]
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.directory.cleanup()


# -- the measurements -----------------------------------------------------------------------

def raw_map(address: str, count: int) -> float:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        started = time.perf_counter()
        results = client.gather(client.map(trivial, range(count), pure=False))
        took = time.perf_counter() - started
    assert results == list(range(count))
    return took


def mpmq_items(address: str, count: int) -> float:
    from distributed import Client

    from mpmq import MPmq

    with Client(address, set_as_default=False) as client:
        started = time.perf_counter()
        results = MPmq(trivial, process_data=[{"value": v} for v in range(count)], processes_to_start=2,
                       cluster=client).execute()
        took = time.perf_counter() - started
    assert results == list(range(count))
    return took


class _Counting:
    def __init__(self) -> None:
        self.lines = 0


def log_rate(address: str | None, lines: int) -> float:
    """Lines per second delivered to ``process_message`` (cluster: the client's connection timed)."""
    from mpmq import MPmq

    seen = _Counting()

    class Count(MPmq):
        def process_message(self, offset: int, message: str) -> None:
            seen.lines += 1

    items = [{"value": v, "count": lines // 2} for v in range(2)]
    started = time.perf_counter()
    if address is None:
        Count(log_lines, process_data=items, processes_to_start=2).execute()
    else:
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            Count(log_lines, process_data=items, processes_to_start=2, cluster=client).execute()
    took = time.perf_counter() - started
    assert seen.lines == lines, seen.lines
    return lines / took


def raw_local_cluster() -> float:
    from distributed import Client, LocalCluster

    started = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster, set_as_default=False) as client:
        assert client.gather(client.map(trivial, range(3), pure=False)) == [0, 1, 2]
    return time.perf_counter() - started


def mpmq_local_cluster() -> float:
    from mpmq import MPmq

    started = time.perf_counter()
    assert MPmq(trivial, process_data=[{"value": v} for v in range(3)], processes_to_start=2,
                cluster="local").execute() == [0, 1, 2]
    return time.perf_counter() - started


def parent_cpu_while_sleeping(address: str) -> float:
    from distributed import Client

    from mpmq import MPmq

    with Client(address, set_as_default=False) as client:
        before = resource.getrusage(resource.RUSAGE_SELF)
        MPmq(nap, process_data=[{"value": v} for v in range(2)], processes_to_start=2, cluster=client).execute()
        after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# -- the rows ---------------------------------------------------------------------------------

def pairs(repeat: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[list, list]:
    """``repeat`` measurements of each, alternating which goes first."""
    a, b = [], []
    for rep in range(repeat):
        if rep % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return a, b


def measure(quick: bool, repeat: int) -> list[dict[str, Any]]:
    import distributed  # noqa: F401 (imported before anything is timed, as the issue measures)

    rows = []
    cluster = Cluster()
    try:
        for count in (2_000,) if quick else (2_000, 10_000):
            raw, ours = pairs(min(repeat, 3), lambda c=count: raw_map(cluster.address, c),
                              lambda c=count: mpmq_items(cluster.address, c))
            rows.append(row(f"{count:,} trivial items: raw client.map / mpmq", raw, ours, "s", ">=", 20.0))
        lines = 20_000 if quick else 100_000
        local, remote = pairs(repeat, lambda: log_rate(None, lines), lambda: log_rate(cluster.address, lines))
        rows.append(row(f"{lines:,} log lines to process_message: cluster / local rate", local, remote, "lines/s",
                        ">=", 0.8, rate=True))
        cpu = [parent_cpu_while_sleeping(cluster.address) for _ in range(min(repeat, 3))]
        rows.append({"row": "parent CPU while 2 cluster items sleep 2 s", "baseline": None,
                     "mpmq": statistics.median(cpu), "unit": "s CPU", "ratio": statistics.median(cpu),
                     "target": "< 0.1 s", "passed": statistics.median(cpu) < 0.1})
    finally:
        cluster.close()
    raw, ours = pairs(repeat, raw_local_cluster, mpmq_local_cluster)
    rows.append(row('cluster="local", 3 items end to end: mpmq / raw LocalCluster', raw, ours, "s", "<=", 1.3,
                    slower=True))
    return rows


def row(name: str, baseline: list[float], ours: list[float], unit: str, sense: str, target: float,
        rate: bool = False, slower: bool = False) -> dict[str, Any]:
    base, mine = statistics.median(baseline), statistics.median(ours)
    if rate:
        ratio = mine / base  # higher is better
    elif slower:
        ratio = mine / base  # mpmq's time over the baseline's: lower is better
    else:
        ratio = base / mine  # how many times faster mpmq is
    passed = ratio >= target if sense == ">=" else ratio <= target
    return {"row": name, "baseline": base, "mpmq": mine, "unit": unit, "ratio": ratio,
            "target": f"{sense} {target:g}x", "passed": passed}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["cluster rows (issue 17): 2 dask workers, 1 thread each; medians; baseline = raw Dask "
             "(or the local backend for the log rate)", ""]
    for r in rows:
        base = "-" if r["baseline"] is None else f"{r['baseline']:,.3f}"
        lines.append(f"  {r['row']:<62} baseline {base:>12}  mpmq {r['mpmq']:>12,.3f} {r['unit']:<8} "
                     f"ratio {r['ratio']:>7.2f}  target {r['target']:<8} {'PASS' if r['passed'] else 'FAIL'}")
    return "\n".join(lines)


def section(quick: bool, repeat: int, timeout: float = 900.0) -> str:
    """The cluster rows measured in an interpreter of their own (``python -m bench``)."""
    command = [sys.executable, "-m", "bench.cluster", "--repeat", str(repeat)] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"cluster rows: no result after {timeout:.0f} s"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"cluster rows: python -m bench.cluster exited with {done.returncode}: {tail}"
    return done.stdout.rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 2,000 items, 20,000 lines")
    parser.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 5, quick 1)")
    parser.add_argument("--json", metavar="PATH", help="write the rows to PATH")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    rows = measure(args.quick, repeat)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
