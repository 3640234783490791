"""``MPmq``: the engine with mpmq 0.7.0's face, down to the seams real clients use.

mpcurses, mppbar and mp4ansi subclass ``MPmq``; some run their own loop out of its methods
(``start_processes``, ``message_queue.get(False)``, ``get_message``,
``process_control_message``). Every one of those paths reads the same event stream: the
default ``process_event`` turns each event into 0.7.0's messages (``#<offset>-<text>``,
``#<offset>-ERROR``, ``#<offset>-DONE``) and hooks, and the messages are either handed
straight to ``process_message`` (our own loop, when ``get_message`` is not overridden) or
queued for whoever calls ``message_queue.get``. The engine parses nothing it did not make:
user text such as ``DONE`` is an ordinary message.

mp4ansi 0.4.2 was written against mpmq 0.2.0: a subclass defining
``process_non_control_message`` gets that version's seams (``finished_processes``, that hook,
positional calls, results written into ``process_data[offset]['result']``).
"""

from __future__ import annotations

import datetime
import logging
import re
from collections import deque
from collections.abc import Iterator, Mapping
from queue import Empty
from typing import Any

from .calling import POSITIONAL
from .engine import Engine
from .errors import NoActiveProcesses
from .events import EVENT_TYPES, AnyEvent, Done, Error, Log, Result, Started

logger = logging.getLogger(__name__)

IDLE_WAIT = 0.05  # how long get(False) waits before queue.Empty: a caller's spin loop stays cool
_CONTROL = re.compile(r"^#(?P<offset>\d+)-(?P<control>DONE|ERROR)$")
_MESSAGE = re.compile(r"^#(?P<offset>\d+)-(?P<message>.*)$", re.S)


def prefixed(level: int, message: str) -> str:
    """0.7.0's prefixes: ERROR for >= 40, WARN for >= 30, INFO for exactly 20."""
    if level >= 40:
        return f"ERROR: {message}"
    if level >= 30:
        return f"WARN: {message}"
    if level == 20:
        return f"INFO: {message}"
    return message


class _MessageQueue:
    """0.7.0's ``message_queue``: ``get`` returns ``#<offset>-<text>`` strings from the events."""

    def __init__(self, owner: MPmq) -> None:
        self._owner = owner

    def get(self, block: bool = True, timeout: float | None = None) -> str:
        return self._owner._next_message(block, timeout)

    def get_nowait(self) -> str:
        return self.get(False)

    def put(self, message: str, block: bool = True, timeout: float | None = None) -> None:
        self._owner._outbox.append(message)

    def qsize(self) -> int:
        return len(self._owner._outbox)

    def empty(self) -> bool:
        return not self._owner._outbox

    def close(self) -> None:
        pass

    def join_thread(self) -> None:
        pass


class _ProcessQueue:
    """0.7.0's ``process_queue``: the items not started yet (only ``qsize``/``empty`` are read)."""

    def __init__(self, owner: MPmq) -> None:
        self._owner = owner

    def qsize(self) -> int:
        return self._owner.state.pending if self._owner._source is not None else 0

    def empty(self) -> bool:
        return self.qsize() == 0


class MPmq(Engine):
    """Run ``function`` once per item of ``process_data`` across processes; watch them live.

    Override ``process_message(offset, message)`` for 0.7.0-style log lines, or
    ``process_event(event)`` for typed events (call ``super().process_event(event)`` to keep
    the 0.7.0 messages and hooks too).
    """

    def __init__(self, function: Any, *, process_data: Any = None, shared_data: Any = None,
                 processes_to_start: Any = None, timeout: Any = None, **options: Any) -> None:
        super().__init__(function, process_data=process_data, shared_data=shared_data,
                         processes_to_start=processes_to_start, timeout=timeout, **options)
        self.processes = ProcessTable(self)
        self.message_queue = _MessageQueue(self)
        self.process_queue = _ProcessQueue(self)
        self._outbox: deque[str] = deque()
        self._direct = False
        self._v02 = _written_for_0_2(type(self))
        self._text_handler = self.process_non_control_message if self._v02 else self.process_message
        if self._v02:
            self.finished_processes: dict[int, dict] = {}

    # -- counters, read from the state ------------------------------------------------------

    @property
    def active_processes(self) -> int:
        return self.state.running

    @property
    def completed_processes(self) -> int:
        return self.state.finished

    # -- hooks to override -------------------------------------------------------------------

    def process_message(self, offset: int, message: str) -> None:
        """A worker's log line, with 0.7.0's level prefix. Override to watch workers."""

    def on_start_process(self) -> None:
        """An item started (``active_processes`` already counts it)."""

    def on_complete_process(self) -> None:
        """An item finished (``completed_processes`` already counts it)."""

    def final(self) -> None:
        """Called at the end of ``execute``/``replay`` in a ``finally``. Override to tidy up."""

    # -- events to 0.7.0 messages and hooks -------------------------------------------------

    def process_event(self, event: AnyEvent) -> None:
        kind = type(event)
        if kind is Log:  # the hot path: a run may carry a million of these
            text = event.message if event.level < 20 else prefixed(event.level, event.message)
            if self._direct:
                self._text_handler(event.offset, text)
            else:
                self._outbox.append(f"#{event.offset}-{text}")
        elif kind is Started:
            if event.attempt == 1:  # a retry: the item never stopped being active (issue 19)
                self.on_start_process()  # active_processes already counts it (from the state)
        elif kind is Done:
            self._control(event.offset, "DONE")
        elif kind is Error:
            if event.retrying:  # issue 19: not the item's outcome, so no ERROR control either
                self._message(event.offset, self._retry_warning(event))
                return
            self._message(event.offset, f"ERROR: {event.message}")
            self._control(event.offset, "ERROR")

    def _retry_warning(self, error: Error) -> str:
        failed = len(self.state.items[error.offset].attempts)  # this one included: reduced first
        return f"WARN: attempt {failed} of {self.attempts_allowed} failed, retrying: {error.message}"

    def _event_handlers(self) -> dict[type, Any]:
        """Our loop's handlers: the 0.7.0 hooks a subclass overrides, and nothing for the rest."""
        if type(self).process_event is not MPmq.process_event or not self._direct:
            return dict.fromkeys(EVENT_TYPES, self.process_event)
        finishing = self._v02 or any(
            self._overrides(name) for name in ("process_control_message", "complete_process", "on_complete_process")
        )
        return {
            Log: self._log_direct,
            Started: (
                (lambda event: event.attempt == 1 and self.on_start_process())
                if self._overrides("on_start_process") else None
            ),
            Result: None,
            Error: self.process_event,
            Done: (lambda event: self._control(event.offset, "DONE")) if finishing else None,
        }

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(MPmq, name) or name in vars(self)

    def _log_direct(self, event: Log) -> None:
        self._text_handler(event.offset, event.message if event.level < 20 else prefixed(event.level, event.message))

    def _message(self, offset: int, text: str) -> None:
        if self._direct:
            self._text_handler(offset, text)
        else:
            self._outbox.append(f"#{offset}-{text}")

    def _control(self, offset: int, control: str) -> None:
        if self._direct:
            try:
                self.process_control_message(offset, control)
            except NoActiveProcesses:
                # Our own loop ends on the state; raising here would skip whatever a
                # subclass does after super().process_event(event) for the last event.
                pass
        else:
            self._outbox.append(f"#{offset}-{control}")

    # -- 0.7.0's loop and seams -------------------------------------------------------------

    def execute_run(self) -> None:
        self.run()

    def run(self) -> None:
        """Start the run and process messages until every item is done."""
        self.start_processes()
        self._direct = type(self).get_message is MPmq.get_message
        handlers = self._own_loop_handlers()
        try:
            while True:
                try:
                    if self._direct:
                        if not self._hand_out_received(None, handlers) and self._over:
                            break
                        continue
                    message = self.get_message()
                    if message["control"]:
                        self.process_control_message(message["offset"], message["control"])
                    else:
                        self._text_handler(message["offset"], message["message"])
                except NoActiveProcesses:
                    break
                except Empty:
                    if self._over and not self._outbox:
                        break
        finally:
            self._direct = False

    def start_processes(self) -> None:
        """Check the input and start the workers (or open the recording, in a replay)."""
        self._outbox.clear()
        self._begin()
        self.processes = ProcessTable(self)

    def start_next_process(self) -> None:
        """Kept for 0.7.0 callers: the pool hands out items by itself."""

    def get_message(self) -> dict:
        """The next message as ``{'offset', 'control', 'message'}``; ``queue.Empty`` if none."""
        message = self.message_queue.get(False)
        match = _CONTROL.match(message)
        if match:
            return {"offset": int(match["offset"]), "control": match["control"], "message": message}
        match = _MESSAGE.match(message)
        if match:
            return {"offset": int(match["offset"]), "control": None, "message": match["message"]}
        raise ValueError(f"message {message} is not formatted correctly")

    def _next_message(self, block: bool, timeout: float | None) -> str:
        outbox = self._outbox
        wait = timeout if block else IDLE_WAIT
        while not outbox:
            if not self._next_event(wait) and not outbox:
                if self._over:
                    raise NoActiveProcesses()  # ends any loop shaped like 0.7.0's run()
                if block and timeout is None:
                    continue
                raise Empty
        return outbox.popleft()

    def process_control_message(self, offset: int, control: str) -> None:
        """``DONE`` completes the item; raises ``NoActiveProcesses`` once nothing is left."""
        if control == "DONE":
            self.complete_process(offset)
            if self.state.pending == 0 and self.state.running == 0:
                raise NoActiveProcesses()
        else:
            logger.info(f"error detected for process at offset:{offset}")

    def complete_process(self, offset: int) -> None:
        """The item is finished: call ``on_complete_process`` (``processes`` reads the state)."""
        if self._v02:
            meta = self.processes[offset]
            self.finished_processes[offset] = {
                "process": meta["process"], "start_time": meta["start_time"],
                "end_time": meta["stop_time"].strftime("%H:%M:%S") if meta["stop_time"] else None,
                "duration": meta["duration"],
            }
        self.on_complete_process()

    def terminate_processes(self) -> None:
        """Kept for 0.7.0 callers: stop every worker now."""
        if self._source is not None:
            self._source.close(terminate=True)

    def purge_process_queue(self) -> None:
        """Kept for 0.7.0 callers; queued items are handled by the error policy."""

    @staticmethod
    def get_duration(start_time: datetime.datetime, stop_time: datetime.datetime) -> str:
        return duration_text(start_time, stop_time)

    def get_results(self) -> list:
        return self.results()

    def execute(self, raise_if_error: bool = False, **options: Any) -> list:
        results = super().execute(raise_if_error=False, **options)
        self._write_back(results)
        if raise_if_error:
            self.check_results(results)
        return results

    def replay(self, path: Any, run: int | None = None, allow_pickle: bool = False, **options: Any) -> list:
        results = super().replay(path, run, allow_pickle, **options)
        self._write_back(results)
        return results

    def _write_back(self, results: list) -> None:
        """0.2.0 returned nothing and wrote each result into ``process_data[offset]['result']``."""
        if self._v02:
            for offset, result in enumerate(results):
                if offset < len(self.process_data):
                    self.process_data[offset]["result"] = result

    def _call_style(self) -> str:
        return POSITIONAL if self._v02 else super()._call_style()


def duration_text(start: datetime.datetime | None, stop: datetime.datetime | None) -> str | None:
    """0.7.0's ``H:MM:SS`` duration."""
    if start is None or stop is None:
        return None
    return str(datetime.timedelta(seconds=round((stop - start).total_seconds())))


class ProcessTable(Mapping):
    """0.7.0's ``processes``: offset -> ``{process, start_time, stop_time, duration}``.

    Read from the run's state when asked, so handing out an item costs nothing here; there is
    an entry for every offset (``None`` values until the item starts and ends).
    """

    def __init__(self, owner: MPmq) -> None:
        self._owner = owner
        self._finished: dict[int, dict] = {}

    def __getitem__(self, offset: int) -> dict:
        cached = self._finished.get(offset)
        if cached is not None:
            return cached
        items = self._owner.state.items
        if not isinstance(offset, int) or not 0 <= offset < len(items):
            raise KeyError(offset)
        item = items[offset]
        start = datetime.datetime.fromtimestamp(item.started_at) if item.started_at is not None else None
        stop = datetime.datetime.fromtimestamp(item.ended_at) if item.ended_at is not None else None
        process = self._owner.process_for(item.pid) if item.pid else None
        meta = {"process": process, "start_time": start, "stop_time": stop, "duration": duration_text(start, stop)}
        if item.finished:
            self._finished[offset] = meta
        return meta

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._owner.state.items)))

    def __len__(self) -> int:
        return len(self._owner.state.items)


def _written_for_0_2(cls: type) -> bool:
    return any("process_non_control_message" in vars(base) for base in cls.__mro__ if base is not MPmq)
