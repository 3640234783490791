"""Reaching a cluster: the three forms of ``cluster=`` (issue 17), and who closes what.

- ``"local"``: an embedded ``LocalCluster`` the run owns (one worker process per
  ``processes_to_start``, one thread each), closed at the end whatever happens;
- an address (``"tcp://host:8786"``): a running scheduler; only our own client is closed;
- a ``distributed.Client``: used as it is; nothing is closed.

An owned cluster's scheduler runs with ``allowed-failures`` 0 and ``worker-saturation`` 1.0,
so a worker's death fails only the task it was running (the parent then decides what that
means for each item) and a one-thread worker never holds a second task that its death would
take down too.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 10.0  # seconds for a scheduler that accepts the connection to answer
OWNED_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}


class ClusterLink:
    """A client connected to a cluster, with what this run must close at its end."""

    def __init__(self, client: Any, cluster: Any = None, owns_client: bool = False, kind: str = "client") -> None:
        self.client = client
        self.cluster = cluster  # a LocalCluster this run started, else None
        self.owns_client = owns_client
        self.kind = kind  # "local", "address" or "client": how the run reached it
        self.address: str = client.scheduler.address

    @property
    def owned(self) -> bool:
        return self.cluster is not None

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect(cluster: Any, workers: int) -> ClusterLink:
    """Reach ``cluster`` (already checked by ``backends.check_cluster``); raises before anything
    is submitted if it cannot be reached."""
    import dask
    from distributed import Client, LocalCluster

    if isinstance(cluster, Client):
        return ClusterLink(cluster)
    if cluster == "local":
        with dask.config.set(OWNED_CONFIG):
            local = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                host="127.0.0.1",
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its health page: any free port
            )
        try:
            client = Client(local, set_as_default=False)
        except BaseException:
            local.close()
            raise
        return ClusterLink(client, local, owns_client=True, kind="local")
    _check_reachable(cluster)
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except OSError as exc:
        raise ConnectionError(f"cluster={cluster!r}: no Dask scheduler answered there ({exc})") from None
    return ClusterLink(client, owns_client=True, kind="address")


def _check_reachable(address: str) -> None:
    """A refused or unresolvable address fails at once, not after Dask's connect retries."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx): Dask's own connect says what is wrong
    try:
        port = parts.port or 8786
        with socket.create_connection((parts.hostname or "", port), timeout=CONNECT_TIMEOUT):
            pass
    except (OSError, ValueError) as exc:
        raise ConnectionError(
            f"cluster={address!r}: cannot reach a Dask scheduler there ({exc}); start one with "
            "`dask scheduler`, or use cluster='local' for a cluster on this machine"
        ) from None
