"""A run's events as JSON lines (``mpmq-replay events``), for jq, pandas or another tool.

Each line is the typed event as msgspec encodes it (``kind`` is its stable tag) with the
live parent's ``seq`` and ``received_at`` added, so ``msgspec.json.decode(line,
type=mpmq.events.AnyEvent)`` reads it back (unknown fields are ignored). Pickled bytes are
never loaded here; they are exported as base64 only with ``--pickles``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TextIO

import msgspec

from mpmq.events import AnyEvent, Error, Payload, Result, kind_of
from mpmq.recording import Recording, RunInfo

_encode = msgspec.json.Encoder().encode


def event_record(seq: int, received_at: float, event: AnyEvent, pickles: bool = False) -> dict[str, Any]:
    """One event as a plain dict: ``seq``, ``received_at``, then the event's own fields."""
    if not pickles:
        if type(event) is Result:
            event = msgspec.structs.replace(event, value=_without_pickle(event.value))
        elif type(event) is Error:
            event = msgspec.structs.replace(event, exception=None)
    fields = msgspec.to_builtins(event)
    fields["kind"] = kind_of(event)
    return {"seq": seq, "received_at": received_at, **fields}


def _without_pickle(value: Payload) -> Payload:
    return msgspec.structs.replace(value, pickle=None)


def write_jsonl(
    recording: Recording,
    header: RunInfo,
    out: TextIO,
    offsets: Collection[int] | None = None,
    until: int | None = None,
    kinds: Collection[str] | None = None,
    pickles: bool = False,
) -> int:
    """Write the run's events, one JSON object a line; returns how many were written."""
    written = 0
    for seq, received_at, event in recording.events(header.id, offsets=offsets, until=until):
        if kinds and kind_of(event) not in kinds:
            continue
        out.write(_encode(event_record(seq, received_at, event, pickles)).decode() + "\n")
        written += 1
    return written
