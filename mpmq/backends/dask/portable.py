"""Values that cannot leave this machine, refused before anything is submitted (issue 17).

A ``multiprocessing`` queue, lock or manager proxy only works between processes of this
machine (it is a pipe, a semaphore, or a socket to a manager here), and an open file is a
descriptor of this process: left to Dask, such a value fails deep in its serializer with a
message about a task graph, or, for a proxy, reaches a worker that cannot use it. Each is
found wherever it sits in a value (the walk is a pickling that writes nothing), and the
error names the item, the key and what to use instead.
"""

from __future__ import annotations

import io
import multiprocessing.connection
import multiprocessing.managers
import multiprocessing.queues
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import pickle
import socket
from collections.abc import Mapping
from typing import Any

_INSTEAD = "use distributed.Queue / distributed.Lock / distributed.Variable, or run locally (cluster=None)"
_LOCAL_ONLY: tuple[tuple[type, str, str], ...] = (
    (multiprocessing.queues.Queue, "a multiprocessing queue", _INSTEAD),
    (multiprocessing.queues.SimpleQueue, "a multiprocessing queue", _INSTEAD),
    (multiprocessing.synchronize.SemLock, "a multiprocessing lock or semaphore", _INSTEAD),
    (multiprocessing.synchronize.Condition, "a multiprocessing condition or barrier", _INSTEAD),
    (multiprocessing.synchronize.Event, "a multiprocessing event", _INSTEAD),
    (multiprocessing.sharedctypes.SynchronizedBase, "a multiprocessing shared value", _INSTEAD),
    (multiprocessing.managers.BaseProxy, "a multiprocessing manager proxy", _INSTEAD),
    (multiprocessing.connection.Connection, "a multiprocessing connection", _INSTEAD),
    (io.IOBase, "an open file", "pass the file's path and open it in the function"),
    (socket.socket, "an open socket", "pass the address and connect in the function"),
)


class _Found(Exception):
    def __init__(self, what: str, instead: str, kind: type) -> None:
        super().__init__(what)
        self.what, self.instead, self.kind = what, instead, kind


class _Nowhere:
    def write(self, data: bytes) -> None:
        pass


class _Finder(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        for kind, what, instead in _LOCAL_ONLY:
            if isinstance(obj, kind):
                raise _Found(what, instead, type(obj))
        return NotImplemented


def _local_only(value: Any) -> _Found | None:
    try:
        _Finder(_Nowhere(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except _Found as found:
        return found
    except Exception:  # not picklable for another reason: cloudpickle (Dask's) may still manage
        return None
    return None


def check_portable(items: list[Mapping], shared_data: Mapping) -> None:
    """Raise ``TypeError`` naming the first value that cannot leave this machine."""
    places = [("shared_data", shared_data), *((f"process_data[{i}]", item) for i, item in enumerate(items))]
    for where, mapping in places:
        if _local_only(mapping) is None:
            continue
        for key, value in mapping.items():
            found = _local_only(value)
            if found is not None:
                raise TypeError(
                    f"{where}[{key!r}] is {found.what} ({found.kind.__module__}.{found.kind.__qualname__}), "
                    f"which cannot leave this machine for a Dask cluster: {found.instead}"
                )
