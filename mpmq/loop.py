"""The engine's loop: batches of events from one source, recorded, folded, handed to handlers.

    source.receive() -> batches (first seq, received_at, events)   (the one blocking wait)
    -> Recorder.append_batch(batch)          as received, Ran chunks and all (recording/)
    -> fold each event into the state        (state.py's folds: the only state change)
    -> hand it to its handler                (process_event, or 0.7.0's hooks: compat.py)

Events are folded and handed out one at a time, in receive order, as the consumer asks for
them: whichever loop drives the run (``run()``, a client's own loop over
``message_queue.get``, or a replay), the state a handler sees is exactly the state after the
event it is handling. A ``Ran`` chunk of items that only returned a value is folded in one
step when no handler looks at those items one by one, and handed out as its per-item events
when one does (issue 18). ``engine.py`` starts and ends a run around this loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .events import EVENT_TYPES, AnyEvent, Done, Ran, Result, Started, expand
from .retries import FailurePolicy
from .sources import EventSource
from .state import FOLDS, RunState, reduce


class EventLoop:
    """Hands a source's events, folded into ``state``, to this object's handlers."""

    def __init__(self) -> None:
        self._source: EventSource | None = None
        self._ended_source: EventSource | None = None
        self._state = RunState.new(0)
        self._batches: deque = deque()  # (first seq, received_at, events) not yet handed out
        self._events: list = []  # the batch being handed out, event by event
        self._index = 0
        self._seq0 = 0
        self._received_at = 0.0
        self._recorder: Any = None
        self._folds = FOLDS
        self._replay: Any = None
        self._policy: FailurePolicy | None = None  # a live run's retries and stop (retries.py)

    # -- the typed-event handler -------------------------------------------------------------

    def process_event(self, event: AnyEvent) -> None:
        """Receives every event of the run, in order. Override it to watch typed events."""

    @property
    def state(self) -> RunState:
        """The run's state after the last event handed to the handlers."""
        return self._state

    def _event_handlers(self) -> dict[type, Callable[[Any], None] | None]:
        """What our own loop calls for each kind of event; ``None`` where nothing would happen.

        A run of 10,000 trivial items carries 30,000 events: calling a handler that does
        nothing for each is most of the parent's work, so hooks nobody overrode are skipped.
        """
        handler = self.process_event if type(self).process_event is not EventLoop.process_event else None
        return dict.fromkeys(EVENT_TYPES, handler)

    def _own_loop_handlers(self) -> dict[type, Callable[[Any], None] | None]:
        """``_event_handlers`` for ``_hand_out_received``, with what it does with an ``events.Ran``.

        A chunk of items that started, returned and ended is folded in one step when nobody
        looks at those events one by one (issue 18: a million trivial items). When a handler
        does (``on_start_process``, ``on_complete_process``, ``process_event``...), or a replay
        checks every event, the chunk is handed out as the events it stands for, each folded
        before its handler runs: the state a handler sees is exact either way.
        """
        handlers = self._event_handlers()
        folds = dict(FOLDS)
        if self._replay is not None or any(handlers[kind] is not None for kind in (Started, Result, Done)):
            handlers[Ran] = self._expand_chunks
            folds[Ran] = _fold_later
        else:
            handlers[Ran] = None
        self._folds = folds
        return handlers

    def _expand_chunks(self, event: Ran) -> None:
        """Put the per-item events of every chunk left in the batch in their place (``event``
        first), to be folded and handed out one by one."""
        index = self._index - 1
        events = self._events
        self._events = events[:index] + expand(events[index:])
        self._index = index

    @property
    def _over(self) -> bool:
        source = self._source
        return source is None or (
            self._index >= len(self._events) and not self._batches and source.exhausted
            and (self._policy is None or not self._policy.waiting)
        )

    def _hand_out_received(self, timeout: float | None, handlers: dict[type, Any]) -> bool:
        """Hand every event received so far to ``handlers`` (waiting up to ``timeout`` for one).

        The same steps as ``_next_event``, in one loop, for consumers that take every event
        as it comes (our own loops); False if no event came within ``timeout``.
        """
        if self._index >= len(self._events) and not self._batches and not self._receive(timeout):
            return False
        state, replay, folds = self._state, self._replay, self._folds
        while True:
            events, index = self._events, self._index
            count = len(events)
            while index < count:
                event = events[index]
                index += 1
                kind = type(event)
                folds[kind](state, event)  # what reduce(state, event) does, a call shorter
                if replay is not None:
                    replay.at(self._seq0 + index - 1, self._received_at, event)
                handler = handlers[kind]
                if handler is not None:
                    self._index = index  # what the handler sees, should it look
                    handler(event)
                    if self._index != index or self._events is not events:
                        break  # the handler took events itself: go on from where it left off
            else:
                self._index = index
                if replay is None and len(self._batches) < 2:
                    # A look (no wait) between batches: a worker asking for its next chunk is
                    # answered now, not after everything already received has been handed out.
                    self._receive(0)
                if not self._batches:
                    return True
                self._seq0, self._received_at, self._events = self._batches.popleft()
                self._index = 0

    def _next_event(self, timeout: float | None) -> bool:
        """Hand the next event to the handlers; False if none came within ``timeout``."""
        index = self._index
        if index >= len(self._events):
            if not self._batches and not self._receive(timeout):
                return False
            self._seq0, self._received_at, self._events = self._batches.popleft()
            index = 0
        event = self._events[index]
        if type(event) is Ran:  # whoever pulls events pulls them one by one
            self._events = self._events[:index] + expand(self._events[index:])
            event = self._events[index]
        self._index = index + 1
        reduce(self._state, event)
        if self._replay is not None:
            self._replay.at(self._seq0 + index, self._received_at, event)
        self.process_event(event)
        return True

    def _receive(self, timeout: float | None) -> bool:
        """Wait for the next batches from the source (and record them); False if none came."""
        if self._source is None:
            return False
        policy = self._policy
        if policy is not None and policy.waiting:  # a retry is due later (issue 19)
            if self._source.exhausted:
                policy.wait_for_due(timeout)
            else:
                timeout = policy.bound(timeout)
        batches = self._source.receive(timeout)
        if not batches:
            return False
        recorder = self._recorder
        if recorder is not None:  # its own thread commits them (recording/writer.py)
            for batch in batches:  # as they came, Ran chunks and all (issue 18)
                recorder.append_batch(*batch)
        self._batches.extend(batches)
        return True

    def process_for(self, pid: int) -> Any:
        """The worker process object for ``pid`` while it runs (None in a replay)."""
        source = self._source or self._ended_source
        return source.process_for(pid) if source is not None else None




def _fold_later(state: RunState, event: Ran) -> None:
    """A chunk someone looks at item by item is folded as its events, as they are handed out."""
