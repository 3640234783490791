"""The functions the workers run, shared by every implementation.

They live in an importable module and import only the standard library, so they pickle by
reference under spawn and forkserver and cost nothing to import in a worker. Each takes
``(data, shared_data)`` the way mpmq calls it; the stdlib pools get
``functools.partial(fn, shared_data={})``. Except ``inc`` (the scale rows of issue 18), which
mpmq calls with keywords, ``inc(**item)``, and the stdlib pools through ``inc_item``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

# Only messages carrying the marker are counted, so whatever else reaches a handler (an
# engine's own debug logs, say) cannot make a lost message look delivered.
MARKER = "~bench~"

log = logging.getLogger("bench.worker")


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM) in kB, 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def trivial(data: dict[str, Any], shared_data: dict[str, Any]) -> int:
    """Do nothing worth timing: what is left is the pool's own overhead."""
    return data["i"]


def inc(i: int = 0) -> int:
    """A trivial item called with keywords: what is left of a million is the pool's overhead."""
    return i + 1


def inc_item(item: dict[str, Any]) -> int:
    """``Pool.map``'s one-line wrapper: the same item dicts, the same call."""
    return inc(**item)


def log_lines(data: dict[str, Any], shared_data: dict[str, Any]) -> int:
    """Log ``data["n"]`` debug records as fast as possible; return the worker's peak RSS (kB)."""
    debug = log.debug
    for i in range(data["n"]):
        debug("~bench~ %d", i)
    return peak_rss_kb()


def big_result(data: dict[str, Any], shared_data: dict[str, Any]) -> bytes:
    """Return ``data["size"]`` bytes."""
    return b"\x01" * data["size"]


def sleep(data: dict[str, Any], shared_data: dict[str, Any]) -> int:
    """Sleep ``data["seconds"]``; the parent should burn no CPU meanwhile."""
    time.sleep(data["seconds"])
    return peak_rss_kb()


def log_then_idle(data: dict[str, Any], shared_data: dict[str, Any]) -> int:
    """Log one message stamped with its send time, then stay silent for ``data["idle"]`` s.

    The time is formatted into the message itself (not as a %-argument) so it survives
    forwarders that send ``record.msg`` unformatted.
    """
    log.info(f"{MARKER} sent={time.time():.6f}")
    time.sleep(data["idle"])
    return peak_rss_kb()
