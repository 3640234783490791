"""Packing a chunk of items for a worker that did not inherit them (spawn, forkserver).

Under fork a worker is born holding every item and is sent offsets alone (``pool.py``).
Otherwise a chunk travels pickled, in one message, and two kinds of item change what a chunk
can hold: large ones (a chunk is cut down to about ``CHUNK_BYTES``, so no single message is
huge), and those pickle refuses outside a process's start (e.g. holding a
``multiprocessing.Queue``), which get a process of their own, as 0.7.0 gave every item.
"""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any, NamedTuple

CHUNK_BYTES = 4 << 20  # a chunk of large items is cut down to about this size


class Packed(NamedTuple):
    blob: bytes  # the pickled items of ``offsets``
    offsets: list[int]  # what the chunk holds, in order
    later: list[int]  # cut off for size: back to the front of the queue, in order
    at_start_only: list[int]  # only a new process can take these


def transportable(item: Any) -> bool:
    """Whether ``item`` can travel in a chunk (pickled after its process started)."""
    try:
        ForkingPickler.dumps(item)
    except Exception:
        return False
    return True


def pack(items: Sequence[Any], offsets: list[int]) -> Packed:
    """The chunk of ``items`` at ``offsets``, pickled: as much of it as travels, in size."""
    at_start_only: list[int] = []
    try:
        blob = _dumps(items, offsets)
    except Exception:
        refused = {offset for offset in offsets if not transportable(items[offset])}
        at_start_only = [offset for offset in offsets if offset in refused]
        offsets = [offset for offset in offsets if offset not in refused]
        blob = _dumps(items, offsets)
    kept = len(offsets)
    while len(blob) > CHUNK_BYTES and kept > 1:  # large items: smaller chunks
        kept //= 2
        blob = _dumps(items, offsets[:kept])
    return Packed(blob, offsets[:kept], offsets[kept:], at_start_only)


def _dumps(items: Sequence[Any], offsets: list[int]) -> bytes:
    return bytes(ForkingPickler.dumps([items[offset] for offset in offsets]))
