"""The facts a run is made of: what workers say about each item, as typed events.

Every item of a run produces, in this order:

    started -> log* -> (result | error) -> done

(On the wire, items that logged nothing may travel as one ``Ran`` chunk; see there.)

Workers encode events with msgspec in batches and send them to the parent, which stamps each
one with a sequence number and a receive time, folds it into the run's state (``state.py``),
records it (``recording/writer.py``) and hands it to the handlers. A recording is read back as the same
events, so replay is the same loop with another source.

Tags are written to disk: they never change. New fields get defaults; existing fields never
change type (msgspec's schema-evolution rules). This module imports nothing of ours.
Events are ``gc=False``: they hold only scalars, bytes and acyclic decoded values, so the
cycle collector need not track the million of them a log-heavy run creates.

Fields common to every event:

- ``offset``: the item's index in ``process_data``.
- ``pid``: the worker process that ran the item (for events the parent makes on a worker's
  behalf, such as a crash, the pid of the worker concerned; 0 when no worker was involved).
- ``time``: the worker's wall-clock time (``time.time()``) when the event happened.
- ``worker``: where the worker runs, when that is not this machine (a Dask worker's address,
  issue 17); ``None`` for local workers and in recordings made before it existed.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Origin(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Fields every event has that are given by keyword, after any event's own fields.

    Keyword-only, so an optional field can be common to every event without following
    each event's required fields (msgspec orders a base's keyword-only fields last).
    """

    worker: str | None = None


class Event(_Origin, frozen=True, tag_field="kind", gc=False):
    """Base of every event; see the module docstring for the common fields."""

    offset: int
    pid: int
    time: float


class Started(Event, frozen=True, tag="started"):
    """A worker began running the item.

    ``attempt`` counts from 1; above 1, the item is run again after a failed attempt
    (``retries=``, issue 19). Every attempt is its own ``started -> log* -> error`` story,
    and only the last attempt ends in ``done``.
    """

    attempt: int = 1  # issue 19 (retries)


class Log(Event, frozen=True, tag="log"):
    """The item logged a record.

    ``level`` is the record's level number, ``logger`` its logger name, ``message`` the fully
    formatted message (``record.getMessage()``: ``%``-arguments applied, newlines kept), and
    ``exc_text`` the formatted exception when the record carried one (``logger.exception``).
    """

    level: int
    logger: str
    message: str
    exc_text: str | None = None


class Payload(msgspec.Struct, frozen=True, gc=False):
    """A Python value as it travels or rests.

    Live, between our own processes, a value travels as ``pickle`` (exact types, any object),
    or, if it is a scalar msgpack and JSON both keep exactly, as itself in ``json``.
    At rest in a recording it is ``json`` when JSON can represent it, always ``repr``, and a
    pickle only when the caller opted in; recordings are shared data, so reading a pickle back
    needs an explicit ``allow_pickle`` (see ``payload.py``).
    """

    pickle: bytes | None = None
    json: Any = msgspec.UNSET
    repr: str | None = None


class Result(Event, frozen=True, tag="result"):
    """The item's function returned ``value``."""

    value: Payload


class Error(Event, frozen=True, tag="error"):
    """The item failed.

    ``type`` is the exception's qualified name (``module.QualName``), ``message`` is
    ``str(exc)``, ``traceback`` the formatted traceback text. These three survive any
    exception, even one that cannot be pickled or rebuilt. ``exception`` is the pickled
    exception when it could be pickled, so the parent can hand the caller the real object;
    ``args`` are its ``args`` when JSON holds them, so that a builtin exception can be rebuilt
    from a recording without unpickling anything (``outcomes.py``).
    Failures the parent observes itself (a worker that died, a timeout, a cancelled item)
    are errors too, with types under ``mpmq.errors``.

    Retries (issue 19): ``retryable`` is the verdict of whoever saw the failure (the item
    runner, per ``retry_on``; the backend for a dead worker or a timeout, always retryable);
    ``retrying`` is the engine's: this attempt failed and another follows, so this is not
    the item's outcome and no ``done`` follows it.
    """

    type: str
    message: str
    traceback: str = ""
    exception: bytes | None = None
    retryable: bool = False  # issue 19 (retries)
    retrying: bool = False  # issue 19 (retries)
    args: list | None = None  # the exception's args when JSON holds them (issue 19): rebuilt without pickle


class Done(Event, frozen=True, tag="done"):
    """The item is finished; nothing more will be said about it."""


class Ran(Event, frozen=True, tag="ran"):
    """Transport: items one worker ran back to back, each started, returned and ended, nothing else.

    A worker sends one of these instead of ``started``, ``result`` and ``done`` for a run of
    consecutive items that logged nothing (issue 18: most short items): one event to encode,
    send, decode and fold for hundreds of items. It stands for those per-item events, in
    order (``expanded``), and counts as them: ``3 * len(offsets)`` events and sequence
    numbers. Handlers never see it: whoever looks at items one by one gets the expansion.
    ``offset`` and ``time`` are the first item's; ``starts[i]``, ``ends[i]`` and ``values[i]``
    belong to ``offsets[i]``.

    A value that is ``None``, a ``bool`` or a 64-bit ``int`` travels as itself, standing for
    ``Payload(json=value)`` (``payload_of``): issue 18, half the bytes of a chunk of counts, and
    no ``Payload`` made by the worker nor decoded by the parent per item.
    """

    offsets: list[int]
    starts: list[float]
    ends: list[float]
    values: list[Payload | bool | int | None]

    def expanded(self) -> list[AnyEvent]:
        """The ``started``, ``result`` and ``done`` of every item, in order."""
        pid, worker = self.pid, self.worker
        events: list[AnyEvent] = []
        for offset, start, end, value in zip(self.offsets, self.starts, self.ends, self.values):
            if type(value) is not Payload:
                value = Payload(json=value)
            events += (Started(offset, pid, start, worker=worker), Result(offset, pid, end, value, worker=worker),
                       Done(offset, pid, end, worker=worker))
        return events

    @property
    def size(self) -> int:
        """How many events this stands for (and how many sequence numbers it takes)."""
        return 3 * len(self.offsets)


def consecutive(offsets: list[int]) -> bool:
    """Whether ``offsets`` are consecutive and in order, as a worker runs a chunk: two passes in C."""
    if not offsets:
        return False
    first, last = offsets[0], offsets[-1]
    return last - first == len(offsets) - 1 and offsets == list(range(first, last + 1))


def payload_of(value: Payload | bool | int | None) -> Payload:
    """A value of ``Ran.values`` as the ``Payload`` it stands for."""
    return value if type(value) is Payload else Payload(json=value)


AnyEvent = Started | Log | Result | Error | Done
EVENT_TYPES = (Started, Log, Result, Error, Done)
KINDS = ("started", "log", "result", "error", "done")

# Made once and reused: building encoders and decoders is the expensive part.
batch_encoder = msgspec.msgpack.Encoder()
batch_decoder = msgspec.msgpack.Decoder(list[AnyEvent | Ran])


def expand(events: list) -> list[AnyEvent]:
    """``events`` with every ``Ran`` replaced by the per-item events it stands for."""
    expanded: list[AnyEvent] = []
    for event in events:
        if type(event) is Ran:
            expanded += event.expanded()
        else:
            expanded.append(event)
    return expanded


def expanded_size(events: list) -> int:
    """How many events ``events`` stand for: a ``Ran`` counts as the events it replaces."""
    return len(events) + sum(event.size - 1 for event in events if type(event) is Ran)


def encode_batch(events: list[AnyEvent]) -> bytes:
    """Encode a list of events as one message (one send, one receive)."""
    return batch_encoder.encode(events)


def decode_batch(data: bytes) -> list[AnyEvent]:
    """Decode a message made by ``encode_batch``."""
    return batch_decoder.decode(data)


def kind_of(event: Event) -> str:
    """The event's stable tag (``started``, ``log``, ...)."""
    return event.__struct_config__.tag
