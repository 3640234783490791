"""``python -m bench``: every scenario, every implementation, medians, ratios, targets.

Example:

    python -m bench                       # the full run, 5 repetitions (make bench)
    python -m bench --quick               # 1 repetition, smaller sizes (make bench-quick)
    python -m bench --only "10,000" --repeat 9 --json /tmp/bench.json
    python -m bench --only cluster        # the Dask cluster rows alone (bench/cluster.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .cluster import section as cluster_section
from .one import PREFIX
from .report import Footnotes, Runs, medians, results_table
from .scenarios import COLUMN, WORKERS, Scenario, select
from .targets import evaluate, targets_table

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, 200,000 instead of 1,000,000 messages, 5 MB results")
    parser.add_argument("--only", metavar="NAME", help="scenarios whose name or key contains NAME")
    parser.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 5, quick 1)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every target passes")
    parser.add_argument("--start-method", default="fork", choices=("fork", "spawn", "forkserver"))
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="give up on one measurement after S seconds (default 180, quick 60)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.timeout = args.timeout or (60.0 if args.quick else 180.0)
    return args


def measure(scenario: Scenario, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``bench.one`` in a fresh interpreter (its own session, so a timeout kills the
    workers too) and return its measurement."""
    command = [sys.executable, "-m", "bench.one", scenario.key, impl,
               "--start-method", args.start_method] + (["--quick"] if args.quick else [])
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"no result after {args.timeout:.0f} s (killed)"}
    for line in reversed(out.splitlines()):
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])
    tail = (err.strip().splitlines() or ["no output"])[-1]
    return {"error": f"bench.one exited with {proc.returncode}: {tail}"}


def run_all(scenarios: list[Scenario], args: argparse.Namespace) -> Runs:
    """Repetitions interleave the implementations, so drift on the machine hits all alike.
    An implementation that fails or times out is not retried in that scenario."""
    runs: Runs = {}
    for scenario in scenarios:
        repeat = min(args.repeat, scenario.max_repeat or args.repeat)
        given_up: set[str] = set()
        for rep in range(repeat):
            for impl in scenario.impls:
                if impl in given_up:
                    continue
                started = time.perf_counter()
                m = measure(scenario, impl, args)
                runs.setdefault((scenario.key, impl), []).append(m)
                took = time.perf_counter() - started
                status = f"ERROR {m['error']}" if m.get("error") else f"{took:.2f} s"
                print(f"  {scenario.name(args.quick)} | {COLUMN[impl]} | {rep + 1}/{repeat}: {status}",
                      file=sys.stderr, flush=True)
                if m.get("error"):
                    given_up.add(impl)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.only and args.only.lower() == "cluster":
        print(cluster_section(args.quick, args.repeat))
        return 0
    scenarios = select(args.only)
    if not scenarios:
        print(f"no scenario matches {args.only!r}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    runs = run_all(scenarios, args)
    notes = Footnotes()
    print(f"\nmpmq benchmark: {'quick, ' if args.quick else ''}medians of up to {args.repeat} runs, "
          f"{WORKERS} worker processes, start method {args.start_method}, Python "
          f"{platform.python_version()}, {os.cpu_count()} cores; "
          f"ratios against PPE cs=1 (ProcessPoolExecutor, chunksize 1)\n")
    print(results_table(scenarios, runs, args.quick, notes))
    verdicts = evaluate(medians(runs), args.quick, {s.key for s in scenarios})
    print("\ntargets\n")
    print(targets_table(verdicts))
    if notes.notes:
        print("\n" + "\n".join(notes.lines()))
    if not args.only:  # the Dask cluster rows (issue 17), in an interpreter of their own
        print("\n" + cluster_section(args.quick, args.repeat))
    print(f"\n(python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}: "
          f"{time.perf_counter() - started:.0f} s)")
    if args.json:
        raw = {"args": vars(args), "runs": [m for cell in runs.values() for m in cell],
               "targets": [{"target": v.target, "measured": v.measured, "result": v.status}
                           for v in verdicts]}
        Path(args.json).write_text(json.dumps(raw, indent=2))
    failed = [v for v in verdicts if v.passed is not True]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
