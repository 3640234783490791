"""One Dask cluster shared by the cluster tests (issue 17): starting one costs ~0.4 s.

``shared_client()`` is a ``LocalCluster`` of two one-thread worker processes, started once
per session with the settings mpmq gives a cluster it owns (``allowed-failures`` 0,
``worker-saturation`` 1.0); the ``dask_client`` fixture of each test module closes it at the
session's end. Tests that need a cluster of
their own (``cluster="local"``, a real ``dask scheduler``) start it themselves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from mpmq.backends.dask.link import OWNED_CONFIG, RESTART_THREAD

_shared: dict[str, Any] = {}


def shared_client() -> Any:
    if "client" not in _shared:
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set(OWNED_CONFIG):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                   host="127.0.0.1",
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        _shared["cluster"] = cluster
        _shared["client"] = Client(cluster, set_as_default=False)
    return _shared["client"]


def close_shared() -> None:
    client, cluster = _shared.pop("client", None), _shared.pop("cluster", None)
    # A worker a test killed may still be restarting as the module ends; closing the cluster
    # then can report that worker's stream as closed. What the tests check is done by then.
    with contextlib.suppress(Exception):
        if client is not None:
            client.close()
    with contextlib.suppress(Exception):
        if cluster is not None:
            cluster.close()


def run_keys(client: Any, within: float = 5.0) -> list[str]:
    """Keys of mpmq's tasks the scheduler still knows after waiting at most ``within`` s for
    them to go (a released key is forgotten a moment later): none once a run is over."""
    deadline = time.monotonic() + within
    while True:
        keys = client.run_on_scheduler(_mpmq_keys)
        if not keys or time.monotonic() >= deadline:
            return keys
        time.sleep(0.02)


def _mpmq_keys(dask_scheduler: Any) -> list[str]:
    return [str(key) for key in dask_scheduler.tasks if str(key).startswith("mpmq-")]


def wait_for_workers(client: Any, count: int = 2, within: float = 30.0) -> None:
    """Workers killed by a test come back (their nannies restart them): wait until ``count``
    workers run, so that no run of the next test starts with one of them missing (its tasks
    would all queue on the other, and one death would take two items down).

    First the restarts a run asked for in the background (``item_timeout``): the run ends
    without waiting for them, and until the nanny acts the scheduler still counts the old
    worker as running. A restart returns once the new worker has joined."""
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name == RESTART_THREAD:
            thread.join(max(0.0, deadline - time.monotonic()))
    client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))


def kept_batches(client: Any, run: Any) -> int:
    """Messages of ``run``'s topic the scheduler still keeps (it keeps the last 1,000 of each)."""
    return client.run_on_scheduler(_kept_batches, topic=run._ended_source.pool.topic)


def _kept_batches(dask_scheduler: Any, topic: str) -> int:
    kept = dask_scheduler._broker._topics.get(topic)
    return len(kept.events) if kept is not None else 0
