"""Recordings: a run's events in a SQLite file, written as it runs and read back anywhere.

``writer.py`` appends a live run, ``reader.py`` reads every format version, ``file.py`` holds
the format itself, ``rows.py`` turns events into rows, ``redact.py`` keeps secrets out.
"""

from .reader import FORMAT_VERSION, ItemRecord, Recording, RecordingError, RunInfo, open_recording

__all__ = ["FORMAT_VERSION", "ItemRecord", "Recording", "RecordingError", "RunInfo", "open_recording"]
