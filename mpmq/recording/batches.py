"""The event rows of formats 2 and 3: a batch of events as the parent received it, one row, a
JSON array.

Issue 18: one indexed row per event cost more to write than the whole unrecorded run of
100,000 log lines; a JSON array of the batch costs about an eighth of that, and the ``events``
view (``file.py``) still shows people one row per event. Events are stored as msgspec encodes
them, tagged by ``kind``, so a field added to an event later (with its default, as
``events.py`` requires) is stored and read back with no change here or to the schema.

Two sides of one format: ``BatchRows`` turns received batches into rows (the recorder's thread),
``decode_batch`` turns a row back into typed events (the reader), checking everything a crafted
row could get wrong.

What is stored is the event as it came, except what must not or cannot rest on disk as it
travelled: a result's value is kept at rest (JSON when exact, always ``repr``; ``rows.py``),
and pickles (a result's or an exception's) go to the ``pickles`` table only when the caller
asked for them, never into the JSON. From format 3 on, a chunk of items whose values are all
``None``, bools or counts is stored exactly as it came, and is its items' outcome
(``item_chunks.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

import msgspec

from ..events import Done, Error, Event, Log, Payload, Result, Started, consecutive, payload_of
from ..payload import is_wire_int
from .rows import Rest, clean_text, rest_payload

# The events' JSON is bound as the bytes msgspec made and stored as TEXT: decoding them to a
# str first cost a quarter of encoding them (msgspec's output is valid UTF-8).
INSERT_BATCH = "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT))"
INSERT_PICKLE = "INSERT INTO pickles VALUES (?, ?, ?)"
CHUNK_TAG = "ran"
_AS_THEY_CAME = frozenset((Started, Log, Done))  # stored exactly as received
_UNCHUNKED = _AS_THEY_CAME | {Result, Error}
_offset = attrgetter("offset")
_encode = msgspec.json.Encoder().encode


class StoredChunk(Event, frozen=True, tag=CHUNK_TAG):
    """A chunk of items one worker ran back to back with nothing logged (``events.Ran``'s
    shape, issue 18), as format 2 stores it: each item started, returned a value and ended.

    ``offset`` is ``offsets[0]`` and ``time`` is ``starts[0]``; the values are at rest, or,
    from format 3 on, ``None``, a bool or a count as they travelled (``plain_at_rest``).
    """

    offsets: list[int]
    starts: list[float]
    ends: list[float]
    values: list[Payload | None | bool | int]

    def expanded(self) -> list[Started | Result | Done]:
        out: list[Started | Result | Done] = []
        pid, worker = self.pid, self.worker
        for offset, start, end, value in zip(self.offsets, self.starts, self.ends, self.values):
            if type(value) is not Payload:
                value = plain_at_rest(value)
            out += (Started(offset, pid, start, worker=worker), Result(offset, pid, end, value, worker=worker),
                    Done(offset, pid, end, worker=worker))
        return out


def plain_at_rest(value: None | bool | int) -> Payload:
    """A chunk's plain value as the recording keeps a result: its JSON and its repr."""
    return Payload(json=value, repr=repr(value))


def is_chunk(event: Any) -> bool:
    """A chunk of items, whichever class carries it (the tag is what lives on disk)."""
    return event.__struct_config__.tag == CHUNK_TAG


class BatchRows:
    """The rows of ``batches`` (and ``pickles``) for a run's received batches, numbered on.

    Sequence numbers are the recording's own: one per event, a chunk counting as the three
    events of each of its items, as a reader expands it, so that ``seq`` means the same
    whether a batch came chunked or not.
    """

    def __init__(self, run_id: int, rest_of: Callable[[int, Payload], Rest], keep_pickle: bool,
                 on_chunk: Callable[[list[int], bool], None] | None = None) -> None:
        self._run_id = run_id
        self._rest_of = rest_of
        self._keep_pickle = keep_pickle
        self._next_seq: int | None = None
        # Format 3: a chunk of plain values is stored as it came, and ``on_chunk`` is told
        # its items and whether they are consecutive (their outcomes are in the file with it:
        # item_chunks.py).
        self._on_chunk = on_chunk

    def rows(self, batches: Iterable[tuple[int, float, Sequence[Any]]]) -> tuple[list[tuple], list[tuple]]:
        """The batch rows and the pickle rows of ``batches`` (each: first seq, received at, events)."""
        rows, pickles = [], []
        run_id = self._run_id
        for first_seq, received_at, events in batches:
            if not events:
                continue
            seq = first_seq if self._next_seq is None else self._next_seq
            kinds = set(map(type, events))
            if kinds <= _UNCHUNKED:  # one event, one seq: the hot path
                stored: Sequence[Any] = events if kinds <= _AS_THEY_CAME else self._values_at_rest(seq, events, pickles)
                count, seqs = len(events), None
                offsets = set(map(_offset, events))  # a few items' events: a small set
                low, high = min(offsets), max(offsets)
            else:
                stored, count, seqs, low, high = self._at_rest(seq, events, pickles)
            rows.append((run_id, seq, received_at, count, low, high, seqs, _json_text(stored)))
            self._next_seq = seq + count
        return rows, pickles

    def _values_at_rest(self, seq: int, events: Sequence[Any], pickles: list[tuple]) -> list[Any]:
        """``events`` (no chunks) with results at rest and pickles kept apart."""
        replace = msgspec.structs.replace
        stored = list(events)
        for i, event in enumerate(events):
            cls = type(event)
            if cls is Result:
                value = event.value
                text = scalar_text(value) if not self._keep_pickle else None
                if text is None:
                    rest = self._rest_of(event.offset, value)
                    text = rest.data
                    if rest.pickle is not None:
                        pickles.append((self._run_id, seq + i, rest.pickle))
                stored[i] = replace(event, value=msgspec.Raw(text))
            elif cls is Error and event.exception is not None:
                if self._keep_pickle:
                    pickles.append((self._run_id, seq + i, event.exception))
                stored[i] = replace(event, exception=None)
        return stored

    def _at_rest(self, seq: int, events: Sequence[Any], pickles: list[tuple]) -> tuple:
        """Events made fit to store, their count, each one's first seq (if chunks made that
        other than one apart), and their lowest and highest offsets."""
        replace = msgspec.structs.replace
        keep = self._keep_pickle
        stored, seqs, offsets = [], [], []
        chunked = False
        for event in events:
            cls = type(event)
            seqs.append(seq)
            if cls in _UNCHUNKED:
                event = self._values_at_rest(seq, [event], pickles)[0]
                seq += 1
            elif is_chunk(event) and self._on_chunk is not None and Payload not in set(map(type, event.values)):
                chunked = True  # format 3: plain values as they came, no walk over the items
                items = event.offsets
                in_order = consecutive(items)  # as workers send them: the ends are the bounds
                if items:
                    offsets += (items[0], items[-1]) if in_order else (min(items), max(items))
                seq += 3 * len(items)
                self._on_chunk(items, in_order)
            elif is_chunk(event):
                if self._on_chunk is not None:
                    self._on_chunk(event.offsets, consecutive(event.offsets))
                chunked = True
                values = []
                for i, (offset, value) in enumerate(zip(event.offsets, event.values)):
                    value = payload_of(value)  # a plain value on the wire (events.Ran)
                    text = scalar_text(value) if not keep else None
                    if text is None:
                        rest = self._rest_of(offset, value)
                        text = rest.data
                        if rest.pickle is not None:
                            pickles.append((self._run_id, seq + 3 * i + 1, rest.pickle))
                    values.append(msgspec.Raw(text))
                offsets += event.offsets
                event = replace(event, values=values)
                seq += 3 * len(event.offsets)
            else:
                raise TypeError(f"not an mpmq event: {event!r}")
            offsets.append(event.offset)
            stored.append(event)
        count = seq - seqs[0]
        return stored, count, (_encode(seqs).decode() if chunked else None), min(offsets), max(offsets)


def _json_text(events: Sequence[Any]) -> bytes:
    try:
        return _encode(events)
    except UnicodeEncodeError:
        # Lone surrogates (os.fsdecode'd file names in a log line...) cannot be encoded to
        # UTF-8: store them escaped rather than lose the recording (as format 1 did).
        return _encode([_cleaned(event) for event in events])


def _cleaned(event: Any) -> Any:
    try:
        _encode(event)
        return event
    except UnicodeEncodeError:
        fields = {key: clean_text(value) for key, value in msgspec.structs.asdict(event).items()}
        return {"kind": event.__struct_config__.tag, **fields}


def scalar_text(live: Payload) -> str | None:
    """A result's value at rest as ``rows.scalar_rest`` keeps it, for the commonest results
    (``None`` and counts, travelled as themselves), without building it: ``None`` otherwise.

    Not cached: the item row builds it again at the end, as cheaply.
    """
    value = live.json
    if live.pickle is None and live.repr is None and (value is None or (type(value) is int and is_wire_int(value))):
        shown = repr(value)
        return f'{{"repr":"{shown}","json":{"null" if value is None else shown}}}'
    return None


def rest_cache(keep_pickle: bool) -> tuple[dict[int, Rest], Callable[[int, Payload], Rest]]:
    """Results at rest by offset, computed once for an item's event and again for its item row."""
    cache: dict[int, Rest] = {}

    def rest_of(offset: int, live: Payload) -> Rest:
        cached = cache.get(offset)
        if cached is not None and cached.live is live:
            return cached
        rest = cache[offset] = rest_payload(live, keep_pickle)
        return rest

    return cache, rest_of


# -- reading ---------------------------------------------------------------------------------

_decode_seqs = msgspec.json.Decoder(list[int]).decode


@functools.cache
def _events_decoder() -> msgspec.json.Decoder:
    """Made on first read: a decoder of the event classes resolves their annotations (~0.5 ms),
    which a recorded run, that only writes, never needs."""
    return msgspec.json.Decoder(list[Started | Log | Result | Error | Done | StoredChunk])


def _decode_events(events: Any) -> list[Any]:
    return _events_decoder().decode(events)


def stored_chunks(events: Any) -> list[StoredChunk]:
    """The chunks of items among a batch row's events (``BadBatch`` if one is malformed)."""
    try:
        chunks = [event for event in _decode_events(events) if type(event) is StoredChunk]
    except (msgspec.MsgspecError, TypeError) as exc:
        raise BadBatch(str(exc)) from None
    for chunk in chunks:
        if not len(chunk.offsets) == len(chunk.starts) == len(chunk.ends) == len(chunk.values):
            raise BadBatch(f"a chunk at offset {chunk.offset} whose lists differ in length")
    return chunks


class BadBatch(ValueError):
    """A batch row that is not what format 2 writes (the reader names the file and the row)."""


def decode_batch(seq: Any, seqs: Any, events: Any, count: int) -> tuple[list[int] | None, list[Any]]:
    """A row's events, chunks expanded, checked: ``(their seqs, or None when they run from seq on, events)``.

    ``count`` is the run's item count: an event of an item the run does not have is refused.
    """
    if type(seq) is not int or type(events) is not str or (seqs is not None and type(seqs) is not str):
        raise BadBatch(f"batch {seq!r}: its seq, seqs or events column has the wrong type")
    starts = None
    try:
        starts = _decode_seqs(seqs) if seqs is not None else None
        decoded = _decode_events(events)
    except msgspec.ValidationError as exc:
        if seqs is not None and starts is None:  # the seqs themselves
            raise BadBatch(f"batch {seq}: its seqs: {exc}") from None
        raise BadBatch(_invalid(seq, starts, str(exc))) from None
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: JSON nested beyond reason
        raise BadBatch(f"batch {seq}: {exc}") from None
    chunked = StoredChunk in set(map(type, decoded))
    if starts is None:
        if chunked:
            raise BadBatch(f"batch {seq} holds a chunk of items but not the seqs of its events")
        out, numbers = decoded, None
    else:
        if len(starts) != len(decoded):
            raise BadBatch(f"batch {seq} has {len(decoded)} events but {len(starts)} seqs")
        out, numbers = [], []
        for start, event in zip(starts, decoded):
            if type(event) is StoredChunk:
                size = len(event.offsets)
                if not (len(event.starts) == len(event.ends) == len(event.values) == size):
                    raise BadBatch(f"event {start}, a chunk, has offsets, starts, ends and values of different lengths")
                out += event.expanded()
                numbers += range(start, start + 3 * size)
            else:
                out.append(event)
                numbers.append(start)
    if out:
        offsets = list(map(_offset, out))
        if min(offsets) < 0 or max(offsets) >= count:
            at, wrong = next((i, offset) for i, offset in enumerate(offsets) if not 0 <= offset < count)
            number = numbers[at] if numbers is not None else seq + at
            raise BadBatch(f"event {number} is for item {wrong}, but the run has {count} items")
    return numbers, out


def _invalid(seq: int, starts: list[int] | None, text: str) -> str:
    """msgspec's complaint about a batch's JSON, naming the event (``$[3].kind``) where it can."""
    where = text.rpartition(" - at `$[")[2]
    index, _, field = where.partition("]")
    number = f"batch {seq}"
    if index.isdigit() and (starts is None or int(index) < len(starts)):
        number = f"event {seq + int(index) if starts is None else starts[int(index)]}"
    if text.startswith("Invalid value") and field == ".kind`":
        kind = text.split(" - at ")[0].removeprefix("Invalid value ")
        return f"{number} has kind {kind}, unknown to this mpmq (recorded by a newer one?)"
    return f"{number}: {text}"


def with_pickles(seq: int, numbers: list[int] | None, events: list[Any], pickles: dict[int, bytes]) -> list[Any]:
    """``events`` (numbered as ``decode_batch`` said) with the kept pickles (seq -> bytes) put back."""
    replace = msgspec.structs.replace
    out = []
    for i, event in enumerate(events):
        kept = pickles.get(numbers[i] if numbers is not None else seq + i)
        if kept is not None:
            if type(event) is Result:
                event = replace(event, value=replace(event.value, pickle=kept))
            elif type(event) is Error:
                event = replace(event, exception=kept)
        out.append(event)
    return out
