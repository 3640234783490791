"""Offline tools for mpmq recordings: read a run back, re-drive handlers, re-run failed items.

    import replay
    replay.runs("run.db")            # every run in the file
    run = replay.load("run.db")      # the latest run: header, events, items, results, state

The command line is ``mpmq-replay`` (``replay/cli.py``). ``replay`` imports ``mpmq``; ``mpmq``
never imports ``replay``.
"""

from mpmq.recording import RecordingError, RunInfo

from .loader import RecordedRun, Stamped, load, runs

__all__ = ["load", "runs", "RecordedRun", "Stamped", "RunInfo", "RecordingError"]
