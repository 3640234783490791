"""What the engine tells the recorder about a run before its first event: the run header."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from collections.abc import Mapping
from typing import Any

from .writer import Recorder


def qualified(obj: Any) -> str:
    """``module:qualname``, the form ``mpmq-replay --handler`` and rerun import by."""
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"


def platform_name() -> str:
    """``platform.platform()``'s answer on Linux, e.g. ``Linux-6.1.0-x86_64-with-glibc2.36``,
    without the ``uname -p`` subprocess it runs for a processor name it then leaves out (7 ms
    before a recorded run's first worker)."""
    name = "-".join(part for part in (platform.system(), platform.release(), platform.machine()) if part)
    libc = "".join(platform.libc_ver())  # os.confstr where there is glibc: no subprocess
    return f"{name}-with-{libc}" if libc else name


def local_utc_offset() -> int:
    offset = datetime.datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def open_recorder(engine: Any, items: list, shared: Mapping, workers: int) -> Recorder:
    """Open ``engine``'s recording (raises ``RecordingError`` before any worker starts)."""
    from .. import __version__

    options = engine._record_options
    header = {
        "mpmq_version": __version__,
        "python_version": platform.python_version(),
        "platform": platform_name(),
        "start_method": engine.context.get_start_method(),
        "function": qualified(engine.function),
        "handler": qualified(type(engine)),
        "processes_to_start": workers,
        "error_policy": "stop_on_error" if engine.stop_on_error else "run_all",
        "command_line": list(sys.argv),
        "started_at": time.time(),
        "utc_offset": local_utc_offset(),
        "item_count": len(items),
        "options": {
            "item_timeout": engine.item_timeout,
            "max_items_per_worker": engine.max_items_per_worker,
            "record_pickle": bool(options.get("keep_pickle")),
            **getattr(engine, "backend_options", {}),  # a cluster run: the backend and scheduler
        },
        "parent_run": options.get("parent_run"),
    }
    return Recorder.open(
        options["path"], header, items, shared,
        redact=options.get("redact", True), keep_pickle=bool(options.get("keep_pickle")),
    )
