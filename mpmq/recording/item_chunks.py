"""Format 3's item rows: inputs and outcomes in chunks, as events travel (issue 18).

Formats 1 and 2 gave every item a row of the ``items`` table, inserted with its input before
the first item ran and updated with its outcome as it finished: ~10 us of the parent's CPU an
item, four times a whole unrecorded run of trivial items. Format 3 writes a run's inputs as
JSON arrays of a thousand items a row (``input_chunks``). The outcome of an item that came
in a chunk of items (``events.Ran``) is that chunk, stored in its batch row; any other item's
is written once, in one row per commit with the others that finished since the last
(``OutcomeChunks``): when it succeeds with a plain value, or when the run ends. The ``items``
view (``schema.py``) and the reader (``items_read.py``) join them back into format 1's rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from itertools import chain, islice
from operator import countOf, itemgetter
from typing import Any

import msgspec

from ..events import Ran, consecutive
from ..state import NO_PID, NO_RESULT, RunState
from .item_outcomes import _FOR_FINISH, _PENDING, _UNSEEN, ItemOutcomes
from .rows import WIRE_HIGH, WIRE_LOW, input_columns, plain_keys, plain_values

INPUTS_PER_ROW = 1_000
INSERT_INPUTS = "INSERT INTO inputs (run_id, first_offset, count, inputs, reprs) VALUES (?, ?, ?, CAST(? AS TEXT), ?)"
INSERT_OUTCOMES = "INSERT INTO outcomes (run_id, seq, outcomes) VALUES (?, ?, ?)"
INSERT_ITEM_PICKLE = 'INSERT INTO item_pickles (run_id, "offset", "column", pickle) VALUES (?, ?, ?, ?)'

_encode = msgspec.json.Encoder().encode
_CHUNKED = 3  # ItemOutcomes._written's mark of an item whose outcome is in a stored chunk
_CHUNKED_BYTE = bytes([_CHUNKED])


def input_chunks(run_id: int, inputs: Sequence[Any], patterns: frozenset[str],
                 keep_pickle: bool) -> list[tuple[str, list]]:
    """The INSERTs of a run's inputs, redacted: ``INPUTS_PER_ROW`` items a row.

    The commonest chunk, dicts of plain values under keys none of which looks secret, is
    checked and encoded whole, each step in C (``_plain_chunk``: ~0.1 us an item, where a
    Python loop over the items cost 1 us); any other item is redacted and encoded on its own.
    """
    rows: list[tuple] = []
    pickles: list[tuple] = []
    given = iter(inputs)
    first = 0
    while chunk := list(islice(given, INPUTS_PER_ROW)):
        text = None
        if not keep_pickle and _plain_chunk(chunk, patterns):
            with contextlib.suppress(UnicodeEncodeError, msgspec.EncodeError, OverflowError):
                text = _encode(chunk)  # bytes, stored as text (INSERT_INPUTS)
        if text is not None:
            rows.append((run_id, first, len(chunk), text, None))
        else:
            rows.append(_input_row(run_id, first, *_one_by_one(run_id, first, chunk, patterns, keep_pickle, pickles)))
        first += len(chunk)
    statements = [(INSERT_INPUTS, rows)]
    return statements + [(INSERT_ITEM_PICKLE, pickles)] if pickles else statements


_PLAIN_TYPES = frozenset((str, int, bool, type(None)))


def _plain_chunk(chunk: list[Any], patterns: frozenset[str]) -> bool:
    """Every item a dict whose keys are strings none of which looks secret, and whose values
    are strings, 64-bit ints, bools or None: JSON holds it exactly. Floats go item by item
    (inf, NaN), as does a chunk that will not encode (a lone surrogate)."""
    if countOf(map(type, chunk), dict) != len(chunk):  # counted in C: cheaper than a set of types
        return False
    values = _same_keys_values(chunk)
    if values is None:  # items with different keys: each key looked at once all the same
        keys = set(chain.from_iterable(chunk))
        values = list(chain.from_iterable(map(dict.values, chunk)))
    else:
        keys = chunk[0].keys()
    if not plain_keys(dict.fromkeys(keys), patterns):
        return False
    types = set(map(type, values))
    if not types <= _PLAIN_TYPES:
        return False
    if int in types:  # JSON holds any int, SQLite's JSON functions 64 bits (payload.is_wire_int)
        ints = values if len(types) == 1 else [value for value in values if type(value) is int]
        return WIRE_LOW <= min(ints) and max(ints) < WIRE_HIGH
    return True


def _same_keys_values(chunk: list[dict]) -> list[Any] | None:
    """The values of dicts that all have the first one's keys, in C; None if they do not."""
    keys = tuple(chunk[0])
    if not keys or countOf(map(len, chunk), len(keys)) != len(chunk):
        return None
    try:
        values = list(map(itemgetter(*keys), chunk))
    except KeyError:
        return None
    return values if len(keys) == 1 else list(chain.from_iterable(values))


def _one_by_one(run_id: int, first: int, chunk: list[Any], patterns: frozenset[str], keep_pickle: bool,
                pickles: list[tuple]) -> tuple[list[Any], list[str | None] | None]:
    """A chunk's elements item by item, each redacted and encoded on its own, and the reprs
    of those JSON cannot hold (None if none)."""
    elements: list[Any] = []
    reprs: list[str | None] | None = None
    for offset, value in enumerate(chunk, first):
        if not keep_pickle and type(value) is dict and plain_keys(value, patterns) and plain_values(value):
            text, shown, pickled = _checked_text(value), "", None
        else:
            text, shown, pickled = input_columns(value, patterns, keep_pickle)
        if text is None:  # JSON cannot hold it: its repr says what it was
            reprs = [] if reprs is None else reprs
            reprs.extend([None] * (len(elements) - len(reprs)))
            reprs.append(shown or input_columns(value, patterns, False)[1])
            elements.append(None)
        else:
            elements.append(msgspec.Raw(text.encode()))
        if pickled is not None:
            pickles.append((run_id, offset, "input", pickled))
    return elements, reprs


def _checked_text(value: dict) -> str | None:
    try:
        return _encode(value).decode()
    except (UnicodeEncodeError, msgspec.EncodeError, OverflowError):  # a lone surrogate
        return None


def _input_row(run_id: int, first: int, elements: list[Any], reprs: list[str | None] | None) -> tuple:
    if reprs is not None:
        reprs.extend([None] * (len(elements) - len(reprs)))
    shown = None if reprs is None else _encode(reprs).decode()
    return (run_id, first, len(elements), _encode(elements).decode(), shown)


class OutcomeChunks(ItemOutcomes):
    """``ItemOutcomes`` for format 3: the same items, chosen the same way, written as one
    ``outcomes`` row a commit instead of an UPDATE each.

    The items of a chunk stored with its plain values (``BatchRows``) have their outcome in
    the file already, and are skipped (``in_chunk``); a success written as it finished is
    not written again. An item whose outcome the run's state tells otherwise at the end (a
    chunk's item failed by the parent meanwhile) gets a row of its own, which the view and the
    reader take over the chunk's.
    """

    def __init__(self, run_id: int, keep_pickle: bool, rest: dict, variables: int) -> None:
        super().__init__(run_id, keep_pickle, rest, variables)
        self._seq = 0  # the last outcomes row's

    def in_chunk(self, offsets: list[int], in_order: bool) -> None:
        """These items' outcomes are in a stored chunk (called as its batch row is built,
        before ``finished`` looks at the state again); ``in_order``: they are consecutive
        (``events.consecutive``), as a worker sends them."""
        if in_order:
            first, count = offsets[0], len(offsets)
            self._sized(first + count)[first : first + count] = _CHUNKED_BYTE * count
        elif offsets:
            written = self._sized(max(offsets) + 1)
            for offset in offsets:
                written[offset] = _CHUNKED

    def in_buffered_chunks(self, batches: list[tuple[int, float, Sequence[Any]]]) -> None:
        """``in_chunk`` for every chunk in ``batches`` (first seq, received at, events),
        buffered and not yet written. A batch holds a chunk if it took more seqs than it has
        events (the last batch is looked into): a log-heavy run's batches are not walked."""
        for index, (first_seq, _, events) in enumerate(batches):
            after = batches[index + 1][0] if index + 1 < len(batches) else None
            if after is None or after - first_seq > len(events):
                for event in events:
                    if type(event) is Ran:
                        self.in_chunk(event.offsets, consecutive(event.offsets))

    def finished(self, state: RunState) -> list[tuple[str, list]]:
        self._sized(len(state.columns()[0]))
        return super().finished(state)

    def _sized(self, size: int) -> bytearray:
        written = self._written
        if written is None:
            written = self._written = bytearray(size)
        elif len(written) < size:
            written.extend(bytes(size - len(written)))
        return written

    def rest(self, state: RunState) -> list[tuple[str, list]]:
        """The outcomes of every item not written yet that has one: started, or failed unstarted."""
        status, errors = state.columns()[0], state.columns()[5]
        written = self._sized(len(status))
        unwritten = [offset for offset in errors if written[offset] == _CHUNKED]  # failed after all
        for mark in (_UNSEEN, bytes([_FOR_FINISH])):  # only these: a million items' run ends at once
            offset = written.find(mark)
            while offset >= 0:
                unwritten.append(offset)
                offset = written.find(mark, offset + 1)
        unwritten.sort()
        return self._outcomes(state, unwritten)

    def _bulk(self, flat: list[Any]) -> list[tuple[str, list]]:
        """One row for the plain successes ``finished`` found: offset, pid, started, ended, result."""
        if not flat:
            return []
        succeeded = "succeeded"
        elements = [[o, succeeded, p, s, e, t]
                    for o, p, s, e, t in zip(flat[0::5], flat[1::5], flat[2::5], flat[3::5], flat[4::5])]
        return [(INSERT_OUTCOMES, [self._outcomes_row(elements)])]

    def _outcomes(self, state: RunState, offsets: list[int]) -> list[tuple[str, list]]:
        status, pids, _, _, results, errors = state.columns()
        items = state.items
        elements: list[list[Any]] = []
        pickles: list[tuple] = []
        for offset in offsets:
            if status[offset] == _PENDING and results[offset] is NO_RESULT and pids[offset] == NO_PID \
                    and offset not in errors:
                continue  # never started: pending, as the view says of an item without an outcome
            item = items[offset]
            row = self._row(item)  # status, pid, started, ended, duration, result x3, error x3, ...
            element = [item.offset, row[0], row[1], row[2], row[3], row[5], row[6], row[8], row[9], row[10]]
            while element[-1] is None:
                element.pop()
            if len(element) == 7 and element[5] is not None and element[6] == _plain_repr(element[5]):
                element.pop()  # None or a count: the view gives its JSON text as its repr
            elements.append(element)
            if row[7] is not None:
                pickles.append((self.run_id, item.offset, "result", row[7]))
        statements = [(INSERT_OUTCOMES, [self._outcomes_row(elements)])] if elements else []
        return statements + [(INSERT_ITEM_PICKLE, pickles)] if pickles else statements

    def _outcomes_row(self, elements: list[list[Any]]) -> tuple:
        self._seq += 1
        return (self.run_id, self._seq, _encode(elements).decode())


def _plain_repr(text: str) -> str:
    return "None" if text == "null" else text
