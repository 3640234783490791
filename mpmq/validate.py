"""Refuse bad input before any worker starts, with an error that names the problem.

Everything here runs in the parent before the first process exists, so a mistake costs a
clear exception instead of a hang, a traceback from inside a worker, or a wrong result.
"""

from __future__ import annotations

import inspect
import operator
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.reduction import ForkingPickler
from operator import itemgetter
from typing import Any

from .calling import KWARGS

PICKLE_CHECK_SLICE = 1000  # items pickled together to check them: bounded memory, few picklers


def check_function(function: Any) -> None:
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__qualname__}: {function!r}")


def check_process_data(process_data: Any) -> tuple[list, bool]:
    """The items as a list, and whether every one is a plain ``dict`` (``check_arguments``
    then need not look again: issue 18, one pass over a million items, 20 ms, not two)."""
    if not isinstance(process_data, (list, tuple)):
        raise TypeError(
            f"process_data must be a list or tuple of mappings, got {type(process_data).__qualname__}"
        )
    if operator.countOf(map(type, process_data), dict) == len(process_data):  # the usual run, in C
        return list(process_data), True
    for offset, item in enumerate(process_data):
        if type(item) is not dict and not isinstance(item, Mapping):  # dict first: 10x cheaper
            raise TypeError(
                f"process_data[{offset}] must be a mapping (dict) of arguments, "
                f"got {type(item).__qualname__}: {item!r:.80}"
            )
    return list(process_data), False


def check_shared_data(shared_data: Any) -> Mapping:
    if not isinstance(shared_data, Mapping):
        raise TypeError(f"shared_data must be a mapping (dict), got {type(shared_data).__qualname__}")
    return shared_data


def worker_count(processes_to_start: Any, items: int) -> int:
    """``None`` and ``0`` keep 0.7.0's meaning: one process per item."""
    if processes_to_start is None:
        return max(1, items)
    if isinstance(processes_to_start, bool) or not isinstance(processes_to_start, int):
        raise TypeError(
            f"processes_to_start must be an int or None, got {type(processes_to_start).__qualname__}"
        )
    if processes_to_start < 0:
        raise ValueError(f"processes_to_start must not be negative, got {processes_to_start}")
    return max(1, processes_to_start or items)


def check_cluster_options(cluster: Any, context: Any, max_items_per_worker: Any) -> None:
    """Options that mean something only for this machine's processes are refused on a cluster."""
    if cluster is None:
        return
    if context is not None:
        raise ValueError("context= means nothing on a cluster (Dask starts its own worker processes); "
                         "drop it, or run locally (cluster=None)")
    if max_items_per_worker is not None:
        raise ValueError("max_items_per_worker= means nothing on a cluster (its workers are Dask's, long-lived); "
                         "drop it, or run locally (cluster=None)")


def check_positive(name: str, value: Any, kind: type = float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__} or None, got {value!r}")


def check_arguments(function: Callable, style: str, items: list, shared_data: Mapping,
                    all_dicts: bool = False) -> None:
    """Keyword calls: no key in both an item and shared_data, and every key accepted.

    ``all_dicts``: every item is known to be a plain ``dict`` (``check_process_data``)."""
    if style != KWARGS:
        return
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    shared = set(shared_data)
    # Each distinct set of keys once, in the order they first appear, found in C (issue 18: a
    # million items); the offset an error names is looked for only when there is one.
    key_sets = [frozenset(items[0])] if _same_keys(items, all_dicts) else dict.fromkeys(map(frozenset, items))
    for keys in key_sets:
        clash = sorted(str(key) for key in keys & shared)
        if clash:
            raise ValueError(
                f"key {clash[0]!r} is in both process_data[{_first_with(items, keys)}] and shared_data; "
                "rename one of them (0.7.0 silently let shared_data win)"
            )
        bad = [key for key in keys if not isinstance(key, str)]
        if bad:
            raise TypeError(f"process_data[{_first_with(items, keys)}] has a non-string key {bad[0]!r}: "
                            "keys become keyword arguments")
        if signature is not None:
            try:
                signature.bind(**dict.fromkeys(keys), **dict.fromkeys(shared))
            except TypeError as exc:
                name = getattr(function, "__qualname__", repr(function))
                offset = _first_with(items, keys)
                raise TypeError(f"process_data[{offset}] does not fit {name}{signature}: {exc}") from None


def _same_keys(items: list, all_dicts: bool = False) -> bool:
    """Whether every item is a plain dict with the first one's keys: a few passes in C, each
    cheaper than a frozenset per item (issue 18: 0.08 s of a million items, not 0.18 s).
    ``all_dicts``: every item is already known to be a plain dict (``check_process_data``)."""
    count = len(items)
    if not count:
        return False
    if not all_dicts and (type(items[0]) is not dict or operator.countOf(map(type, items), dict) != count):
        return False
    keys = list(items[0])
    if operator.countOf(map(len, items), len(keys)) != count:
        return False
    # as many keys as the first, and each of its keys (a lookup that fails raises): the same set
    try:
        for key in keys:
            deque(map(itemgetter(key), items), maxlen=0)  # consumed in C, nothing kept
    except KeyError:
        return False
    return True


def _first_with(items: list, keys: frozenset) -> int:
    """The offset of the first item with exactly ``keys`` (for an error to name it)."""
    return next(offset for offset, item in enumerate(items) if frozenset(item) == keys)


def check_picklable(function: Callable, shared_data: Mapping, items: list, start_method: str,
                    retry_on: tuple | None = None) -> None:
    """Under spawn and forkserver, what a worker needs must be picklable at process start."""
    if start_method == "fork":
        return
    from multiprocessing.context import set_spawning_popen

    name = getattr(function, "__qualname__", repr(function))
    set_spawning_popen(_Spawning())  # as when a process starts: Queues and Locks may pass
    try:
        _dump(function, f"function {name} cannot be pickled under {start_method!r}: it must be defined "
              "at module level in an importable module (not a lambda, a closure or in __main__ of -c)")
        _dump(shared_data, f"shared_data cannot be pickled under {start_method!r}")
        # Items in slices: a pickler per item cost 4 s of a 1,000,000-item run (issue 18); a
        # slice that fails is gone through item by item, to name the item at fault.
        for start in range(0, len(items), PICKLE_CHECK_SLICE):
            part = items[start:start + PICKLE_CHECK_SLICE]
            try:
                ForkingPickler.dumps(part)
            except Exception:
                for offset, item in enumerate(part, start):
                    _dump(item, f"process_data[{offset}] cannot be pickled under {start_method!r}")
                end = start + len(part)  # only the items together failed: name them all
                _dump(part, f"process_data[{start}:{end}] cannot be pickled under {start_method!r}")
        if retry_on:  # issue 19: the item runner judges exceptions by these types
            _dump(retry_on, f"retry_on cannot be pickled under {start_method!r}: its exception types must be "
                  "defined at module level in an importable module")
    finally:
        set_spawning_popen(None)


class _Spawning:
    """Stands for a starting process while checking picklability."""

    def duplicate_for_child(self, fd: int) -> int:
        return fd

    def DupFd(self, fd: int) -> int:  # noqa: N802 (multiprocessing's name)
        return fd


def _dump(value: Any, message: str) -> None:
    try:
        ForkingPickler.dumps(value)
    except Exception as exc:
        raise TypeError(f"{message}: {type(exc).__name__}: {exc}") from None


def check_retries(retries: Any, retry_delay: Any, retry_on: Any) -> None:
    """``retries=``, ``retry_delay=``, ``retry_on=`` (issue 19), refused before any worker starts."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0 (how many more times a failed item runs), got {retries!r}")
    number = isinstance(retry_delay, (int, float)) and not isinstance(retry_delay, bool)
    if not number or not 0 <= retry_delay < float("inf"):
        raise ValueError(f"retry_delay must be a number of seconds >= 0, got {retry_delay!r}")
    if retry_on is None:
        return
    if not isinstance(retry_on, tuple) or not retry_on:
        raise TypeError(
            f"retry_on must be a non-empty tuple of exception types, as for isinstance (e.g. (ValueError,)), "
            f"got {retry_on!r}"
        )
    for kind in retry_on:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(f"retry_on must hold exception types only, got {kind!r} in {retry_on!r}")
