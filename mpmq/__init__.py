"""mpmq: run one function across many worker processes, stream their logs, record and replay runs."""

# The one place the version is written: pyproject.toml reads it from here (a constant: looking
# it up in the installed metadata cost a recorded run milliseconds, issue 18).
__version__ = "1.0.0"

from .compat import MPmq
from .errors import (
    ItemCancelled,
    ItemFailed,
    ItemTimeout,
    NoActiveProcesses,
    RemoteError,
    RunFailed,
    UnpicklableResult,
    WorkerDied,
)
from .events import Done, Error, Log, Result, Started
from .handler import queue_handler

__all__ = [
    "MPmq", "queue_handler", "Started", "Log", "Result", "Error", "Done",
    "NoActiveProcesses", "RunFailed", "ItemFailed", "RemoteError", "WorkerDied", "ItemTimeout",
    "ItemCancelled", "UnpicklableResult",
]
