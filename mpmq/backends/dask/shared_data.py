"""A run's shared_data on a cluster: one copy on every worker, for the run's life (issue 17).

shared_data goes to the workers once per run, not with each task: scattered to every running
worker, and each task depends on it. Dask's scheduler places such a task only on a worker
that holds the dependency, unless the task's group is "root-ish" (more tasks than twice the
cluster's threads, as a long run's become; the worker then fetches it from another): a worker
without it idles while the run's tasks queue on the others. So a worker that joins while the
run goes on (its nanny restarted it, or the cluster grew) is given a copy by a thread of the
run's own, which looks for such workers twice a second, and takes tasks from then on. Tasks
the scheduler had already queued on another worker stay there (Dask's work stealing may move
them). The Active Memory Manager's ``ReduceReplicas`` (on by default in Dask) drops the copies
held by workers that are between two tasks, with the same effect: it is off on a cluster the
run starts, and the README says to turn it off on a cluster started for mpmq.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from .link import ClusterLink

ARRIVALS_EVERY = 0.5  # seconds between two looks for workers that joined the cluster mid-run
COPY_TIMEOUT = 120.0  # seconds a worker that joined has to fetch its copy of shared_data
WATCHER_WAIT = 5.0  # seconds a run's end waits for its watcher of workers to stop (an answer from the scheduler)


class SharedCopies:
    """The run's shared_data on the cluster (``future``, what each task depends on), and the
    thread that gives a copy to each worker that joins."""

    def __init__(self, link: ClusterLink, shared_data: Mapping[str, Any]) -> None:
        self.link = link
        self.shared_data = shared_data
        self.future: Any = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()

    def send(self) -> None:
        """Scatter shared_data to every running worker. Should every worker holding it die, it
        is lost; the tasks that needed it are cancelled, and it is sent again before they are
        (``backend._failed``)."""
        [self.future] = self.link.client.scatter([dict(self.shared_data)], broadcast=True, hash=False)

    @property
    def lost(self) -> bool:
        """Sent, and no worker holds it any more."""
        return self.future is not None and self.future.status != "finished"

    def watch(self) -> None:
        """From now on, give a copy to each worker that joins (``_share_with_arrivals``)."""
        self._watcher = threading.Thread(target=self._share_with_arrivals, daemon=True, name="mpmq-shared-data")
        self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the thread, before the client closes: its copies are released."""
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join(WATCHER_WAIT)

    def release(self) -> None:
        """Let go of shared_data on the cluster (raises if the cluster is gone)."""
        future, self.future = self.future, None
        if future is not None:
            future.release()

    def _share_with_arrivals(self) -> None:
        """The run's thread for workers that join while it goes on (a new one, or one its nanny
        restarted, at a new address): each gets a copy of shared_data from a worker holding
        it, so that the scheduler places tasks there too.

        The cluster's workers are asked for every ``ARRIVALS_EVERY`` s (one small request to
        the scheduler; nothing per task). Not its ``"all"`` topic, which announces each worker:
        in distributed 2026.8 a ``scatter(broadcast=True)`` or ``replicate`` publishes there a
        message that cannot be serialized, which breaks the connection of every client
        subscribed to it."""
        copies: dict[str, tuple[Any, float]] = {}  # address -> the copy's future, its deadline
        log = logging.getLogger(__name__)
        try:  # the scatter reached the workers running then: not one that was starting or paused
            known = self.link.holders(self.future)
        except Exception:
            known = set()
        while not self._stop_watching.wait(ARRIVALS_EVERY):
            try:
                now = self.link.workers()
                shared = self.future
                for address in now - known:
                    if shared is not None:
                        copies[address] = (self.link.copy_to(shared, address), time.monotonic() + COPY_TIMEOUT)
                        log.debug("copying shared_data to %s, which joined the cluster", address)
                known = now
                for address, (copy, deadline) in list(copies.items()):
                    if copy.done() or time.monotonic() >= deadline or address not in now:
                        copy.release()
                        del copies[address]
            except Exception:  # the run's cluster is gone: it ends
                log.debug("watching for workers that join", exc_info=True)
                break
        for copy, _ in copies.values():
            with contextlib.suppress(Exception):  # the client closed: the scheduler forgot them
                copy.release()
