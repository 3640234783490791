"""A Dask task's way out for events: msgspec batches through the worker's ``log_event``.

    item thread --emit--> TopicSender (one per task) --flush: [task id, batch no, bytes, last]-->
        worker.log_event(topic) --> scheduler --> Client.subscribe_topic (the parent)

The same batching as the local worker's pipe (``local/worker_channel.py``): a batch leaves
when it is large, when the item's end calls for it, and at most ``FLUSH_INTERVAL`` after its
first event (one flusher thread per worker process serves every running task). Every batch
is numbered within its task and the task's last one says it is the last, so the parent knows
when it has them all rather than trusting that they arrived before the task's end (issue 17).
Events are stamped with the worker's address here, on their way out.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from ...events import encode_batch

FLUSH_INTERVAL = 0.01
FLUSH_EVENTS = 2048
FLUSH_BYTES = 1 << 20

_replace = msgspec.structs.replace


class TopicSender:
    """Batches one task's events and sends them, in order, as numbered messages."""

    def __init__(self, worker: Any, topic: str, task_id: int, stamp: dict[str, Any]) -> None:
        self._worker = worker
        self._topic = topic
        self._task_id = task_id
        self.stamp = stamp  # fields every event gets (the worker's address)
        self._batch: list = []
        self._size = 0
        self._lock = threading.Lock()
        self.sent = 0  # batches sent so far: the task returns it

    def emit(self, event: Any, size: int = 64) -> None:
        batch = self._batch
        batch.append(event)
        self._size += size
        if len(batch) >= FLUSH_EVENTS or self._size >= FLUSH_BYTES:
            self.flush()
        elif len(batch) == 1:
            _flusher.wake(self)

    def emit_ran(self, started: Any, result: Any) -> bool:
        return False  # no coalesced events on a cluster: each event names its worker as it is

    def emit_large(self, event: Any) -> None:
        self.emit(event, len(event.value.pickle))

    def flush(self, last: bool = False) -> None:
        with self._lock:
            batch, count = self._batch, len(self._batch)
            if not count and not last:
                return
            stamp = self.stamp
            data = encode_batch([_replace(event, **stamp) for event in batch[:count]])
            del batch[:count]
            self._size = 0
            self.sent += 1
            self._worker.log_event(self._topic, [self._task_id, self.sent, data, last])

    def close(self) -> int:
        """Send what is left, marked as the task's last batch; how many batches it sent."""
        _flusher.forget(self)
        self.flush(last=True)
        return self.sent


class _Flusher:
    """One thread per worker process flushing every task's batch ``FLUSH_INTERVAL`` after its
    first event, so a live display sees what an item logs while it runs."""

    def __init__(self) -> None:
        self._waiting: set[TopicSender] = set()
        self._lock = threading.Lock()
        self._has_data = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, sender: TopicSender) -> None:
        with self._lock:
            self._waiting.add(sender)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mpmq-flusher", daemon=True)
                self._thread.start()
        self._has_data.set()

    def forget(self, sender: TopicSender) -> None:
        with self._lock:
            self._waiting.discard(sender)

    def _run(self) -> None:
        while True:
            self._has_data.wait()
            time.sleep(FLUSH_INTERVAL)  # let the batch grow; a live display still sees it promptly
            self._has_data.clear()
            with self._lock:
                senders, self._waiting = self._waiting, set()
            for sender in senders:
                try:
                    sender.flush()
                except Exception:  # the worker is closing: nothing left to send to
                    pass


_flusher = _Flusher()
