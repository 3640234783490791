"""The recorder's own throughput (issue 18: at least 1,000,000 events/s written).

Measured inside one worker of an mpmq run (``bench.scenarios``' ``recorder`` row), apart from
any run: the events a 4-item log-heavy run sends, built beforehand, handed to a ``Recorder``
in the batches the parent receives them in, written by its thread and committed, the file
closed. The figure is events per CPU-second of that process (every thread: the recorder's
work, not the disk's latency, which a shared machine makes noise of); the wall-clock rate is
printed beside it for the record.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

BATCH = 500  # events per received batch: what a log-heavy run's parent receives at once


def recorder_throughput(data: dict[str, Any], shared_data: dict[str, Any]) -> float:
    """Write ``data["n"]`` log events through a Recorder; return events per CPU-second."""
    from mpmq.events import Log
    from mpmq.recording.writer import Recorder

    n = data["n"]
    events = [Log(i % 4, 4100 + i % 2, 1.7e9 + i / 1e5, 10, "bench.worker", f"~bench~ {i}") for i in range(n)]
    batches = [events[i : i + BATCH] for i in range(0, n, BATCH)]
    with tempfile.TemporaryDirectory(prefix="mpmq-bench-recorder-") as tmp:
        recorder = Recorder.open(os.path.join(tmp, "r.db"), {}, [{"n": i} for i in range(4)], {})
        cpu, wall = time.process_time(), time.perf_counter()
        recorder.write_in_background()
        seq = 1
        for batch in batches:
            recorder.append_batch(seq, time.time(), batch)
            seq += len(batch)
        recorder.close()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if recorder.failure:
            raise RuntimeError(recorder.failure)
    print(f"recorder: {n:,} events, {n / wall:,.0f} events/s wall", file=sys.stderr)
    return n / cpu
