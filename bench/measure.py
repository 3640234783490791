"""What the parent measures: wall time, its own CPU and peak RSS, the workers' peak RSS, and
the messages its handler saw."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Any

from .workloads import MARKER


def status_kb(field_name: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field (``VmHWM``, ``VmRSS``) of /proc/<pid>/status, None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def parent_peak_mb() -> float | None:
    """Peak RSS of this process (VmHWM), in MB."""
    kb = status_kb("VmHWM")
    return None if kb is None else kb / 1024


def reaped_children_peak_mb() -> float:
    """Largest peak RSS among the children this process has waited for, in MB.

    ``RUSAGE_CHILDREN.ru_maxrss`` covers each worker's whole life, but only once it is reaped;
    workers that report their own VmHWM fill the gap (see ``Measurement.workers_rss_mb``).
    """
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class Sink:
    """The user's handler: counts marked messages and, if asked, their delivery latency."""

    def __init__(self, track_latency: bool = False) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.track_latency = track_latency

    def __call__(self, message: str) -> None:
        if MARKER in message:
            self.count += 1
            if self.track_latency:
                sent = float(message.rsplit("sent=", 1)[1].split()[0])
                self.latencies.append(time.time() - sent)


@dataclass
class Measurement:
    """One run of one implementation on one scenario; the JSON line ``bench.one`` prints."""

    scenario: str
    impl: str
    wall_s: float | None = None
    parent_cpu_s: float | None = None
    all_cpu_s: float | None = None  # parent and workers: what the run asks of the machine's cores
    parent_rss_mb: float | None = None
    parent_base_mb: float | None = None
    workers_rss_mb: float | None = None
    messages: int | None = None
    latency_ms: float | None = None
    recorded_events: int | None = None
    events_per_s: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Meter:
    """Times a block in wall-clock and parent-CPU seconds (``process_time`` counts every
    thread of this process, none of its children), and the CPU of the children it reaped.

    Every peer joins its workers before it returns, so ``children_cpu_s`` is their whole CPU,
    except under forkserver, whose workers are the fork server's children, not ours.
    """

    def __enter__(self) -> Meter:
        base = status_kb("VmRSS")
        self.base_mb = None if base is None else base / 1024
        self._children = _children_cpu()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        self.children_cpu_s = _children_cpu() - self._children


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
