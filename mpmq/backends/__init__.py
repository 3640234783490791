"""Where items run: one small interface (``base.Backend``), one folder per implementation.

``local/`` runs items in long-lived worker processes of this machine; ``dask/`` runs them as
tasks on a Dask cluster (issue 17), chosen by ``cluster=`` or ``$MPMQ_CLUSTER``. The engine
drives a backend only through the interface ``sources.LiveSource`` wraps, and imports none of
a backend's details: ``distributed`` is imported here, lazily, only for a run on a cluster.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .base import Backend

CLUSTER_ENV = "MPMQ_CLUSTER"
_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s/:]+(:\d+)?/?$", re.IGNORECASE)


def start_context(context: str | Any | None) -> Any:
    """The ``multiprocessing`` context local workers start with: ``context`` (a start method's
    name or a context), else ``$MPMQ_START_METHOD``, else Python's default."""
    import multiprocessing

    if context is None:
        context = os.environ.get("MPMQ_START_METHOD") or None
    if context is None or isinstance(context, str):
        return multiprocessing.get_context(context)
    if not hasattr(context, "Process"):
        raise TypeError(f"context must be a start method name or a multiprocessing context, got {context!r}")
    return context


def local_backend(function: Callable, items: list, shared_data: Mapping, **options: Any) -> Backend:
    """Worker processes on this machine (``local/pool.py``; ``options`` as ``WorkerPool`` takes them)."""
    from .local.pool import WorkerPool

    return WorkerPool(function, items, shared_data, **options)


def cluster_option(cluster: Any) -> Any:
    """The run's cluster: ``cluster`` as given, else ``$MPMQ_CLUSTER`` (so programs built on
    mpmq run on a cluster unmodified), checked now, before anything starts."""
    if cluster is None:
        cluster = os.environ.get(CLUSTER_ENV) or None
        if cluster is None:
            return None
        where = f"${CLUSTER_ENV}"
    else:
        where = "cluster"
    if isinstance(cluster, str):
        if cluster != "local" and not _ADDRESS.match(cluster):
            raise ValueError(
                f"{where}={cluster!r} is neither 'local' nor a scheduler address such as 'tcp://host:8786'"
            )
        return cluster
    distributed = sys.modules.get("distributed")  # a Client exists only if it was imported
    if distributed is not None and isinstance(cluster, distributed.Client):
        return cluster
    raise TypeError(
        f"{where} must be None, 'local', a scheduler address ('tcp://host:8786') or a distributed.Client, "
        f"not {type(cluster).__qualname__}"
    )


def describe_cluster(cluster: Any) -> str:
    return cluster if isinstance(cluster, str) else "a distributed.Client"


def connect_cluster(cluster: Any, workers: int) -> Any:
    """Reach the cluster (``dask/link.py``); a clear error if Dask is not installed."""
    try:
        from .dask.link import connect
    except ImportError as exc:
        raise ImportError(f"cluster= needs Dask distributed: pip install 'mpmq[dask]' ({exc})") from None
    return connect(cluster, workers)


def check_leaves_machine(items: list, shared_data: Mapping) -> None:
    """Refuse, before the cluster is even reached, a value only this machine can use."""
    from .dask.portable import check_portable

    check_portable(items, shared_data)


def cluster_backend(link: Any, function: Callable, items: list, shared_data: Mapping, *, workers: int,
                    style: str, item_timeout: float | None, stop_on_error: bool, offsets: list[int] | None = None,
                    retry_on: tuple | None = None, engine_decides: bool = False) -> Backend:
    """The Dask backend over a connected cluster (``link``); see ``dask/backend.py``."""
    from .dask.backend import DaskBackend

    return DaskBackend(function, items, shared_data, workers=workers, style=style, link=link,
                       item_timeout=item_timeout, stop_on_error=stop_on_error, offsets=offsets,
                       retry_on=retry_on, engine_decides=engine_decides)
