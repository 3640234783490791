"""``python -m bench`` runs end to end and prints its tables (issue 6). No timing is asserted:
the benchmark reports, the tests only check that it still works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_prints_the_table_and_targets(tmp_path: Path) -> None:
    raw = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "3 trivial", "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,  # a hang fails, never stalls CI
    )
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("| scenario"))
    for column in ("mpmq", "mpmq+record", "PPE cs=1", "PPE chunked", "Pool.map"):
        assert column in header
    assert "| 3 trivial items, end to end" in done.stdout
    assert "within 1.5x PPE" in done.stdout.split("targets", 1)[1]
    runs = json.loads(raw.read_text())["runs"]
    assert {run["impl"] for run in runs} == {"mpmq", "mpmq+record", "ppe", "ppe-chunked", "pool"}
    # the stdlib peers need nothing of ours: they must always measure
    assert all(run["error"] is None for run in runs if not run["impl"].startswith("mpmq"))
    # the CPU of every process of the run: the parent's own, and the workers' it reaped
    assert all(run["all_cpu_s"] >= run["parent_cpu_s"] > 0 for run in runs if run["error"] is None)


def test_record_overhead_shows_the_cpu_the_recorded_run_needs() -> None:
    from bench.scenarios import MPMQ, RECORD
    from bench.targets import evaluate

    medians = {
        ("log100k", MPMQ): {"wall_s": 0.40, "all_cpu_s": 0.70},
        ("log100k", RECORD): {"wall_s": 0.60, "all_cpu_s": 1.00},
    }
    [overhead] = [v for v in evaluate(medians, quick=False, keys={"log100k"}) if "overhead" in v.target]
    assert overhead.measured == "1.50x mpmq (CPU, all processes: 1.43x)"
    assert overhead.passed is False


def test_the_recorder_s_own_throughput_is_measured_and_targeted(tmp_path: Path) -> None:
    """Issue 18: the recorder's events/s written, checked against 1,000,000/s."""
    raw = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "recorder", "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads(raw.read_text())["runs"]
    assert run["error"] is None and run["events_per_s"] > 0
    assert ">= 1,000,000 events/s" in done.stdout.split("targets", 1)[1]
