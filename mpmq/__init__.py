"""mpmq: run one function across many worker processes, stream their logs, record and replay runs."""

from importlib import metadata as _metadata

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

try:
    __version__ = _metadata.version("mpmq")
except _metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "MPmq", "queue_handler", "Started", "Log", "Result", "Error", "Done",
    "NoActiveProcesses", "RunFailed", "ItemFailed", "RemoteError", "WorkerDied", "ItemTimeout",
    "ItemCancelled", "UnpicklableResult",
]
