"""Read a format 3 run's items back: its input chunks, its chunks of items, its outcome rows.

The ``items`` view (``schema.py``) joins the same rows for people's SQL; a reader never reads
a view (a crafted one could loop forever), so this joins them itself, the same way: an item's
outcome is its own row in ``outcomes`` if it has one, else its place in a stored chunk of
items (``batches``), else it is pending. Everything is checked as it is read (offsets within
the run, lengths that agree); ``reader.py`` turns each item's fields into an ``ItemRecord``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from ..events import Payload
from ..payload import safe_repr
from .batches import plain_at_rest, stored_chunks

# The run's size and whether any input row claims more items than its text can hold (a JSON
# array of n elements is at least 2n characters long): a crafted count cannot ask for memory.
COUNT_INPUTS = (
    "SELECT coalesce(sum(count), 0), coalesce(sum(count < 0 OR inputs IS NULL OR 2 * count > length(inputs)), 0)"
    " FROM inputs WHERE run_id = ?"
)
OUTCOME_FIELDS = ("offset", "status", "pid", "started_at", "ended_at", "result", "result_repr", "error_type",
                  "error_message", "traceback")  # an ``outcomes`` element, item_chunks.py  # fmt: skip

_decode = msgspec.json.decode
Query = Callable[[str, tuple], list]


def item_fields(query: Query, run_id: int, count: int) -> Iterator[dict[str, Any]]:
    """Each item's ``ItemRecord`` fields, in offset order (ValueError and the like if malformed)."""
    fields = list(_inputs(query, run_id))
    if len(fields) != count:
        raise ValueError(f"{len(fields)} inputs for {count} items")
    ended: dict[int, dict[str, Any]] = {}  # an item's own outcome row, else its chunk's
    for (events,) in query("SELECT events FROM batches WHERE run_id = ? AND seqs IS NOT NULL ORDER BY seq", (run_id,)):
        for chunk in stored_chunks(events):
            for offset, start, end, value in zip(chunk.offsets, chunk.starts, chunk.ends, chunk.values):
                value = value if type(value) is Payload else plain_at_rest(value)
                ended[_offset_in(offset, count)] = {
                    "status": "succeeded", "pid": chunk.pid, "started_at": start, "ended_at": end,
                    "duration": end - start, "result": {"json": value.json, "repr": value.repr}}  # fmt: skip
    for (outcomes,) in query("SELECT outcomes FROM outcomes WHERE run_id = ? ORDER BY seq", (run_id,)):
        for outcome in _decode(outcomes):
            ended[_offset_in(outcome[0], count)] = _outcome_fields(outcome)
    for offset, outcome in ended.items():
        fields[offset].update(outcome)
    for offset, column, pickled in query('SELECT "offset", "column", pickle FROM item_pickles WHERE run_id = ?',
                                         (run_id,)):  # fmt: skip
        payload = fields[_offset_in(offset, count)].get(column if column in ("input", "result") else "")
        if payload is not None:
            payload["pickle"] = pickled
    for item in fields:
        for key in ("input", "result"):
            payload = item.get(key)
            if payload is not None and payload["json"] is msgspec.UNSET:
                del payload["json"]  # JSON did not hold it: Payload's default
        yield item


def _inputs(query: Query, run_id: int) -> Iterator[dict[str, Any]]:
    """Each item's offset and input; an input JSON held exactly gets its repr back from it."""
    expected = 0
    for first, size, inputs, reprs in query(
        "SELECT first_offset, count, inputs, reprs FROM inputs WHERE run_id = ? ORDER BY first_offset", (run_id,)
    ):
        values, shown = _decode(inputs), [None] * size if reprs is None else _decode(reprs)
        if first != expected or not len(values) == len(shown) == size:
            raise ValueError(f"the input row at offset {first} does not follow on, or does not hold {size} items")
        for offset, (value, text) in enumerate(zip(values, shown), first):
            if text is None:
                yield {"offset": offset, "input": {"json": value, "repr": safe_repr(value)}, "status": "pending"}
            else:
                yield {"offset": offset, "input": {"json": msgspec.UNSET, "repr": text}, "status": "pending"}
        expected = first + size


def _offset_in(offset: Any, count: int) -> int:
    if type(offset) is not int or not 0 <= offset < count:
        raise ValueError(f"an outcome names item {offset!r}, not one of the run's {count}")
    return offset


def _outcome_fields(outcome: list[Any]) -> dict[str, Any]:
    """An ``outcomes`` element as ItemRecord's fields (the view's reading of it)."""
    if not 2 <= len(outcome) <= len(OUTCOME_FIELDS):
        raise ValueError(f"an outcome has {len(outcome)} fields, not 2 to {len(OUTCOME_FIELDS)}")
    fields = dict(zip(OUTCOME_FIELDS, outcome))
    del fields["offset"]
    text, shown = fields.pop("result", None), fields.pop("result_repr", None)
    if text is not None and shown is None:  # None or a count: its repr is its JSON text
        shown = "None" if text == "null" else text
    if text is not None or shown is not None:
        fields["result"] = {"json": msgspec.UNSET if text is None else _decode(text), "repr": shown}
    started, ended = fields.get("started_at"), fields.get("ended_at")
    if type(started) in (int, float) and type(ended) in (int, float):
        fields["duration"] = ended - started
    return fields
