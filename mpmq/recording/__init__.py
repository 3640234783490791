"""Recordings: a run's events in a SQLite file, written as it runs and read back anywhere.

``writer.py`` appends a live run (``session.py`` opens it for the engine), ``reader.py`` reads
every format version (a run's events through ``events_read.py``), ``file.py`` holds the format
itself (``schema.py`` its tables), ``batches.py`` turns received batches into format 2's rows
and back, ``rows.py`` values and format 1's event rows, ``redact.py`` keeps secrets out.

The reader's names are imported on first use: a recorded run never reads, and importing the
reader cost it 0.7 ms before its first worker started (issue 18).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reader import FORMAT_VERSION, ItemRecord, Recording, RecordingError, RunInfo, open_recording

__all__ = ["FORMAT_VERSION", "ItemRecord", "Recording", "RecordingError", "RunInfo", "open_recording"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
