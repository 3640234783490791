"""One measurement in a fresh interpreter: ``python -m bench.one SCENARIO IMPL [--quick]``.

Prints one line, ``BENCH-RESULT {json}``, last on stdout (workers or the engine may print
too). Errors are reported in the JSON, not raised, so the driver can show them as footnotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import tempfile
import traceback
from typing import Any

from .measure import Measurement, Meter, Sink, parent_peak_mb, reaped_children_peak_mb
from .scenarios import BY_KEY, IMPLS, MPMQ, POOL, PPE, PPE_CHUNKED, RECORD, WORKERS, Scenario

PREFIX = "BENCH-RESULT "


def run(scenario: Scenario, impl: str, quick: bool, start_method: str) -> Measurement:
    """Run ``impl`` on ``scenario`` once and measure it."""
    m = Measurement(scenario=scenario.key, impl=impl)
    items = scenario.items(quick)
    sink = Sink(scenario.track_latency) if scenario.forwards_logs else None
    runner = _runner(impl)  # imports mpmq for the mpmq columns: failures become "n/a"
    with tempfile.TemporaryDirectory(prefix="mpmq-bench-") as tmp:
        record = os.path.join(tmp, "run.db") if impl == RECORD else None
        gc.collect()
        with Meter() as meter:
            results = _execute(runner, impl, scenario, items, start_method, record, sink)
        if impl in (MPMQ, RECORD):
            from .mpmqrun import raise_on_failed

            raise_on_failed(results)  # outside the measurement, as Pool.map's column has none
        m.wall_s, m.parent_cpu_s, m.parent_base_mb = meter.wall_s, meter.cpu_s, meter.base_mb
        if start_method != "forkserver":  # there the workers are not our children
            m.all_cpu_s = meter.cpu_s + meter.children_cpu_s
        m.parent_rss_mb = parent_peak_mb()
        if record:
            from .mpmqrun import count_recorded_events

            m.recorded_events = count_recorded_events(record)
            if m.recorded_events is not None:
                m.events_per_s = m.recorded_events / m.wall_s
            m.extra["record_file_mb"] = os.path.getsize(record) / 2**20 if os.path.exists(record) else None
    if scenario.result_metric:
        setattr(m, scenario.result_metric, results[0])
        results = []
    reports_rss = scenario.function.__name__ not in ("trivial", "inc")  # the others return their peak RSS
    reported = [r / 1024 for r in results if isinstance(r, int) and reports_rss]
    m.workers_rss_mb = max([reaped_children_peak_mb(), *reported])
    problem = scenario.check(items, results) if scenario.check else None
    if sink is not None:
        m.messages = sink.count
        expected = scenario.expected_messages(items)
        if sink.count != expected:
            problem = problem or f"handler received {sink.count:,} of {expected:,} messages"
        if sink.latencies:
            # the worst message of the run: issue 6 promises every message within 50 ms
            m.latency_ms = max(sink.latencies) * 1000
            m.extra["latency_median_ms"] = statistics.median(sink.latencies) * 1000
    if problem:
        m.error = f"wrong outcome: {problem}"
    return m


def _runner(impl: str) -> Any:
    if impl in (MPMQ, RECORD):
        from .mpmqrun import run_mpmq

        return run_mpmq
    from . import peers

    return peers.run_pool if impl == POOL else peers.run_ppe


def _execute(runner: Any, impl: str, scenario: Scenario, items: list[dict[str, Any]],
             start_method: str, record: str | None, sink: Sink | None) -> list[Any]:
    args = (scenario.function, items, WORKERS, start_method)
    if impl in (MPMQ, RECORD):
        return runner(*args, record=record, sink=sink)
    if impl == PPE_CHUNKED:
        return runner(*args, chunksize=max(1, len(items) // (4 * WORKERS)), sink=sink)
    if impl == PPE:
        return runner(*args, chunksize=1, sink=sink)
    return runner(*args, sink=sink, task=scenario.pool_task)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one", description=__doc__)
    parser.add_argument("scenario", choices=sorted(BY_KEY))
    parser.add_argument("impl", choices=IMPLS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--start-method", default="fork")
    args = parser.parse_args(argv)
    try:
        m = run(BY_KEY[args.scenario], args.impl, args.quick, args.start_method)
    except BaseException as error:  # reported, not raised: the driver turns it into a footnote
        m = Measurement(scenario=args.scenario, impl=args.impl,
                        error=f"{type(error).__name__}: {error}".strip())
        traceback.print_exc()
    sys.stdout.flush()
    print(PREFIX + json.dumps(dataclasses.asdict(m)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
