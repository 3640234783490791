"""Reaching a cluster: the three forms of ``cluster=`` (issue 17), who closes what, and what
the run asks of the cluster itself (its workers' threads, its scheduler's settings, dropping
the run's event batches, restarting a worker).

- ``"local"``: an embedded ``LocalCluster`` the run owns (one worker process per
  ``processes_to_start``, one thread each), closed at the end whatever happens;
- an address (``"tcp://host:8786"``): a running scheduler; only our own client is closed;
- a ``distributed.Client``: used as it is; nothing is closed.

An owned cluster's scheduler runs with ``allowed-failures`` 0 and ``worker-saturation`` 1.0,
so a worker's death fails only the task it was running (the parent then decides what that
means for each item) and a one-thread worker never holds a second task that its death would
take down too; and without the Active Memory Manager, whose ``ReduceReplicas`` policy drops
the copies of a run's shared_data from workers that are between two tasks, after which the
scheduler places none of the run's tasks there (see ``backend.py``).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 10.0
RESTART_TIMEOUT = 30.0  # seconds for a scheduler that accepts the connection to answer
RESTART_THREAD = "mpmq-restart-worker"  # the name of each background restart's thread (tests wait for them)
OWNED_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.scheduler.active-memory-manager.start": False,
}


class ClusterLink:
    """A client connected to a cluster, with what this run must close at its end."""

    def __init__(self, client: Any, cluster: Any = None, owns_client: bool = False, kind: str = "client") -> None:
        self.client = client
        self.cluster = cluster  # a LocalCluster this run started, else None
        self.owns_client = owns_client
        self.kind = kind  # "local", "address" or "client": how the run reached it
        self.address: str = client.scheduler.address

        self._restarts: list[threading.Thread] = []
        self._can_forget = True

    @property
    def owned(self) -> bool:
        return self.cluster is not None

    def check_workers(self) -> None:
        """One item at a time per worker process: its logging is captured for the whole
        process, as in a local worker, so two items at once would mix their log lines."""
        threads = self.client.nthreads()
        crowded = sorted(address for address, count in threads.items() if count > 1)
        if crowded:
            raise ValueError(
                f"cluster worker {crowded[0]} runs {threads[crowded[0]]} threads: mpmq runs one item per worker "
                "process at a time (it captures the process's logging), so start workers with `--nthreads 1`"
            )

    def workers(self) -> set[str]:
        """The addresses of the cluster's workers now."""
        return set(self.client.nthreads())

    def removed_while_assigned(self, key: str) -> tuple[str, list[str]] | None:
        """The worker the scheduler removed while task ``key`` was assigned to it, and the
        keys of every task assigned to it then (running or queued there), from the
        scheduler's record of removed workers (its "remove-worker" events, among the last
        1,000 events of every kind by default: asked as the task's end is heard of); None if
        there is none.

        Looked up on the scheduler, which sends back only what is asked: the events as a
        client gets them may hold objects that cannot leave the scheduler (a ``WorkerState``),
        and then the whole answer fails."""

        def find(dask_scheduler: Any, key: str) -> tuple[str, list[str]] | None:  # defined here: sent by value
            for _, event in reversed(dask_scheduler.get_events("all")):
                if isinstance(event, dict) and event.get("action") == "remove-worker":
                    assigned = [str(k) for k in event.get("processing-tasks") or ()]
                    if key in assigned:
                        return str(event.get("worker")), assigned
            return None

        return self.client.run_on_scheduler(find, key=key)

    def holders(self, future: Any) -> set[str]:
        """The addresses of the workers holding ``future``'s data."""
        return set(self.client.who_has([future]).get(future.key, ()))

    def copy_to(self, future: Any, address: str) -> Any:
        """Have the worker at ``address`` hold a copy of ``future``'s data: a task that needs it
        and may run only there, so the worker fetches it from one that holds it (as for any
        task's dependency). The task's future, to release once done; held, until then, by the
        scheduler if the worker is not running yet, or gone (``release`` then ends it)."""
        from .task import hold

        return self.client.submit(hold, future, workers=[address], allow_other_workers=False, pure=False)

    def reruns_tasks(self) -> bool:
        """Whether the scheduler runs a dead worker's task again (``allowed-failures`` above 0)."""
        try:  # a lambda travels by value: the scheduler needs no mpmq for it
            return bool(self.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))
        except Exception:  # a scheduler that will not say: assume Dask's default (3)
            return True

    def forget_topic(self, topic: str) -> None:
        """Have the scheduler drop the messages it keeps of ``topic``.

        Dask's scheduler keeps the last ``distributed.admin.low-level-log-length`` (1,000)
        messages of every topic, for clients that ask later; a run's can be a megabyte each
        and were delivered already. Private API of the scheduler, so asked once in a while and
        given up on if refused."""
        if not self._can_forget:
            return
        try:
            self.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._broker.truncate(topic))
        except Exception:
            self._can_forget = False

    def restart_in_background(self, address: str) -> None:
        """Restart a worker (the only way to stop a Dask task) without waiting the seconds it
        takes: the nanny waits for a clean stop first."""
        thread = threading.Thread(target=self._restart, args=(address,), daemon=True, name=RESTART_THREAD)
        thread.start()
        self._restarts.append(thread)

    def _restart(self, address: str) -> None:
        try:
            self.client.restart_workers([address], timeout=RESTART_TIMEOUT, raise_for_error=False)
        except Exception:  # the run ended and its cluster closed meanwhile; or no nanny to ask
            logging.getLogger(__name__).debug("restarting %s failed", address, exc_info=True)

    def close(self, wait_for_restarts: bool = True) -> None:
        if self.owns_client and not self.owned and wait_for_restarts:
            # our client's restart requests must reach the scheduler before that client
            # closes, or hung items run on; an owned cluster closes its workers anyway, and
            # a caller's client stays open
            for thread in self._restarts:
                thread.join(RESTART_TIMEOUT)
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
