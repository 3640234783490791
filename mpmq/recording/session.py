"""What the engine tells the recorder about a run before its first event: the run header."""

from __future__ import annotations

import datetime
import functools
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__
from .writer import Recorder


def qualified(obj: Any) -> str:
    """``module:qualname``, the form ``mpmq-replay --handler`` and rerun import by."""
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"


@functools.cache
def platform_name() -> str:
    """``platform.platform()``'s answer on Linux, e.g. ``Linux-6.1.0-x86_64-with-glibc2.36``,
    without the ``uname -p`` subprocess it runs for a processor name it then leaves out (7 ms
    before a recorded run's first worker). Asked on the recorder's thread, as is the import of
    ``platform`` (1 ms of the main thread's time before a recorded run's first worker)."""
    import platform

    name = "-".join(part for part in (platform.system(), platform.release(), platform.machine()) if part)
    libc = "".join(platform.libc_ver())  # os.confstr where there is glibc: no subprocess
    return f"{name}-with-{libc}" if libc else name


def local_utc_offset() -> int:
    offset = datetime.datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def open_recorder(engine: Any, items: list, shared: Mapping, workers: int) -> Recorder:
    """Open ``engine``'s recording (raises ``RecordingError`` before any worker starts).

    The run starts in the file on the recorder's thread, once the first workers have started
    (issue 18); so does the part of its header that takes time to find out.
    """
    options = engine._record_options
    backend = getattr(engine, "backend_options", {})  # a cluster run: the backend and scheduler
    header = {
        # How local workers start; a cluster's workers are the cluster's own (issue 17).
        "start_method": None if backend else engine.context.get_start_method(),
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
            **_retry_options(engine),
            **_resume_options(options.get("resumed")),
            **_parent_options(options.get("parent_offsets"), len(items)),
            **backend,
        },
        "parent_run": options.get("parent_run"),
    }

    def whole_header() -> dict[str, Any]:
        import platform

        return {**header, "python_version": platform.python_version(), "mpmq_version": __version__,
                "platform": platform_name()}

    return Recorder.open(
        options["path"], whole_header, items, shared,
        redact=options.get("redact", True), keep_pickle=bool(options.get("keep_pickle")), start_later=True,
    )


def _retry_options(engine: Any) -> dict[str, Any]:
    """Issue 19: a replay says "attempt 1 of 3" as the live run did (only runs with retries)."""
    if not engine.retries:
        return {}
    retry_on = [qualified(kind) for kind in engine.retry_on] if engine.retry_on else None
    return {"retries": engine.retries, "retry_delay": engine.retry_delay, "retry_on": retry_on}


def _resume_options(resumption: Any) -> dict[str, Any]:
    """Issue 19: a resumed run names the run it resumed and the items it took from it."""
    if resumption is None:
        return {}
    return {"resumed_from": resumption.run_id, "resumed_items": offset_ranges(resumption.reused)}


def _parent_options(offsets: Sequence[int] | None, count: int) -> dict[str, Any]:
    """A re-run of some items of another run (``mpmq-replay rerun``): the offsets they had there,
    one per item (refused before any worker starts if not)."""
    if offsets is None:
        return {}
    given = list(offsets)
    if len(given) != count or not all(type(offset) is int and offset >= 0 for offset in given) \
            or len(set(given)) != count:
        raise ValueError(f"parent_offsets= must give each of the {count} items its offset in the parent run "
                         f"(an int >= 0, each once), not {given[:10]!r}{' ...' if len(given) > 10 else ''}")
    return {"parent_offsets": offset_ranges(given)}


def offset_ranges(offsets: Sequence[int]) -> list[list[int]]:
    """``[[first, last], ...]``: a long list of offsets kept short in the run's options."""
    ranges: list[list[int]] = []
    for offset in offsets:
        if ranges and ranges[-1][1] == offset - 1:
            ranges[-1][1] = offset
        else:
            ranges.append([offset, offset])
    return ranges
