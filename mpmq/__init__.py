"""mpmq: run one function across many worker processes, stream their logs, record and replay runs."""

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


def __getattr__(name: str) -> str:
    if name == "__version__":  # looked up on demand: importlib.metadata costs ~25 ms at import
        from importlib import metadata

        try:
            return metadata.version("mpmq")
        except metadata.PackageNotFoundError:  # a checkout that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'mpmq' has no attribute {name!r}")

__all__ = [
    "MPmq", "queue_handler", "Started", "Log", "Result", "Error", "Done",
    "NoActiveProcesses", "RunFailed", "ItemFailed", "RemoteError", "WorkerDied", "ItemTimeout",
    "ItemCancelled", "UnpicklableResult",
]
