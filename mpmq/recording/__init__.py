"""Recordings: a run's events in a SQLite file, written as it runs and read back anywhere.

``writer.py`` appends a live run (``session.py`` opens it for the engine), ``reader.py`` reads
every format version (a run's events through ``events_read.py``), ``file.py`` holds the format
itself (``schema.py`` its tables), ``batches.py`` turns received batches into format 2's rows
and back, ``rows.py`` values and format 1's event rows, ``redact.py`` keeps secrets out.
"""

from .reader import FORMAT_VERSION, ItemRecord, Recording, RecordingError, RunInfo, open_recording

__all__ = ["FORMAT_VERSION", "ItemRecord", "Recording", "RecordingError", "RunInfo", "open_recording"]
