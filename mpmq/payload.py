"""Values in transit and at rest: pickle between our own processes, JSON or repr on disk.

Recordings are shared like any data file, and unpickling runs code, so a pickle read from a
recording is only loaded when the caller opts in (numpy's ``allow_pickle=False`` default,
after CVE-2019-6446, is the precedent). Without it, the value comes back as ``Unpickled``,
which shows the recorded ``repr``.
"""

from __future__ import annotations

import pickle
from typing import Any

import msgspec

from .events import Payload

_json_encoder = msgspec.json.Encoder()
_INLINE_TEXT = 4096  # characters: a longer result string travels pickled, outside the batch size guess


class Unpickled:
    """Stands in for a recorded value that only a pickle could restore."""

    __slots__ = ("repr",)

    def __init__(self, text: str | None) -> None:
        self.repr = text or "<unrepresentable>"

    def __repr__(self) -> str:
        return f"<not unpickled: {self.repr}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unpickled) and other.repr == self.repr

    def __hash__(self) -> int:
        return hash(self.repr)


def is_wire_int(value: Any) -> bool:
    """An ``int`` (not a subclass) that msgpack carries and JSON text stores exactly: 64 bits."""
    return type(value) is int and -(1 << 63) <= value < (1 << 64)


def for_transit(value: Any) -> Payload:
    """A value for the trip from a worker to the parent, arriving with its exact type.

    ``None``, ``bool``, finite ``float``, 64-bit ``int`` and short ``str`` travel as themselves
    inside the event (``json``): msgpack keeps those types exactly, JSON stores them exactly,
    and the parent has nothing to unpickle (10,000 items returning counts: 10,000 fewer
    ``pickle.loads``). Anything else travels as a pickle.
    """
    kind = type(value)
    if (
        value is None
        or kind is bool
        or is_wire_int(value)
        or (kind is float and value == value and value not in (float("inf"), float("-inf")))
        or (kind is str and len(value) <= _INLINE_TEXT)
    ):
        return Payload(json=value)
    return Payload(pickle=pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def json_or_unset(value: Any) -> Any:
    """``value`` if JSON represents it without loss, else ``msgspec.UNSET``.

    Tuples, sets, bytes and non-string keys would come back changed from JSON, so they count
    as not representable and are kept as ``repr`` (and pickle, when asked for) instead.
    """
    if _json_safe(value):
        return value
    return msgspec.UNSET


def json_exact(value: Any, depth: int = 0) -> bool:
    """Whether JSON represents ``value`` without loss (``json_or_unset``'s rule), for a value
    ``depth`` levels into the one being judged."""
    return _json_safe(value, depth)


def _json_safe(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) is list:
        for v in value:
            if not _json_safe(v, depth + 1):
                return False
        return True
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str or not _json_safe(v, depth + 1):
                return False
        return True
    return False


def json_args(exc: BaseException) -> list | None:
    """An exception's ``args`` as a list when JSON holds them exactly, else ``None`` (issue 19).

    An ``OSError`` with a file name keeps it out of ``args``; it is added, as its constructor
    takes it (``errno, strerror, filename, winerror, filename2``), so that it says the same.
    """
    args = list(exc.args)
    if isinstance(exc, OSError) and len(args) == 2 and exc.filename is not None:
        args += [exc.filename, None, exc.filename2] if exc.filename2 is not None else [exc.filename]
    args = json_or_unset(args)
    if args is msgspec.UNSET:
        return None
    try:
        _json_encoder.encode(args)  # lone surrogates cannot travel or rest as UTF-8
    except (UnicodeEncodeError, msgspec.EncodeError):
        return None
    return args


def safe_repr(value: Any, limit: int = 10_000) -> str:
    """``repr`` that never raises and never grows without bound."""
    if isinstance(value, (bytes, bytearray, str)) and len(value) > limit:
        # repr of a 20 MB result would build an 80 MB string only to cut it
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{repr(value[:limit])}...[truncated, {len(value)} {unit}]"
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break recording
        text = f"<{type(value).__qualname__} with failing repr: {exc!r}>"
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def for_rest(value: Any, keep_pickle: bool = False) -> Payload:
    """Describe a value for a recording: JSON when possible, always repr, pickle on request."""
    pickled = None
    if keep_pickle:
        try:
            pickled = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # unpicklable values are still recorded by repr
            pickled = None
    return Payload(pickle=pickled, json=json_or_unset(value), repr=safe_repr(value))


def load(payload: Payload, allow_pickle: bool = False) -> Any:
    """The value a payload stands for, unpickling only when allowed."""
    if payload.pickle is not None and allow_pickle:
        return pickle.loads(payload.pickle)
    if payload.json is not msgspec.UNSET:
        return payload.json
    return Unpickled(payload.repr)
