"""What the caller gets back for each item, read from the run's state.

A succeeded item gives its return value. A failed item gives an exception: the worker's own
exception object when it can be rebuilt (unpickled, where pickles are allowed; else, for a
builtin exception type, built again from its recorded args or message), else a
``RemoteError`` carrying the remote type, message and traceback; failures the parent observed
(a dead worker, a timeout, a cancellation) give the matching ``mpmq.errors`` type. Either way
``remote_traceback`` holds the worker's traceback, and ``__cause__`` shows it when the
exception is printed. With ``retries`` (issue 19), a failure's ``attempts`` lists the
exceptions of the attempts before it; a success's are in the run's state
(``state.items[offset].attempts``).
"""

from __future__ import annotations

import builtins
import pickle
from typing import Any

from . import payload
from .errors import PARENT_ERROR_TYPES, ItemFailed, RemoteError, RemoteTraceback
from .events import Error, Payload
from .state import FAILED, NO_RESULT, STATUSES, SUCCEEDED, ItemState, RunState

_SUCCEEDED_CODE = STATUSES.index(SUCCEEDED)  # how the state's status column stores it
_WRAPPED = {Payload, type(NO_RESULT)}  # what in the result column is not the value itself


def run_status(state: RunState) -> str:
    """``succeeded`` or ``failed`` for a run whose items all finished."""
    if not state.complete:
        return "interrupted"
    return "failed" if state.failed else "succeeded"


def outcomes(state: RunState, allow_pickle: bool) -> list:
    """One outcome per item, in item order.

    Read from the state's columns (issue 18: a run may have a million items): a success whose
    value travelled as itself costs a few lookups; anything else takes ``outcome``.
    """
    results = state._result
    if state._status.count(_SUCCEEDED_CODE) == len(results) and not _WRAPPED & set(map(type, results)):
        return list(results)  # every item succeeded with a plain value: one copy, in C
    no_result, load = NO_RESULT, payload.load
    out = []
    append = out.append
    offset = -1
    for code, result in zip(state._status, state._result):
        offset += 1
        if code == _SUCCEEDED_CODE and result is not no_result:
            append(result if type(result) is not Payload else load(result, allow_pickle))
        else:
            append(outcome(state.items[offset], allow_pickle))
    return out


def outcome(item: ItemState, allow_pickle: bool) -> Any:
    if item.status == SUCCEEDED:
        return payload.load(item.result, allow_pickle) if item.result is not None else None
    if item.status == FAILED and item.error is not None:
        exc = exception_from(item.error, allow_pickle)
        # issue 19: the failed attempts before this last one, oldest first
        attempts = [exception_from(error, allow_pickle) for error in item.attempts]
        try:
            exc.attempts = attempts  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass  # exceptions with __slots__: the attempts stay in the run's state
        return exc
    return ItemFailed(f"item {item.offset} did not finish (status {item.status}): the run ended first")


def exception_from(error: Error, allow_pickle: bool) -> BaseException:
    """Rebuild the worker's exception where possible, else describe it faithfully."""
    known = PARENT_ERROR_TYPES.get(error.type)
    exc: BaseException | None = None
    if known is not None:
        exc = known(error.message, remote_type=error.type, remote_traceback=error.traceback)
    elif error.exception is not None and allow_pickle:
        try:
            exc = pickle.loads(error.exception)
        except Exception:  # e.g. a custom __init__ that pickle cannot call again
            exc = None
    if exc is None:
        exc = builtin_exception(error)
    if exc is None:
        exc = RemoteError(error.message, remote_type=error.type, remote_traceback=error.traceback)
    try:
        exc.remote_traceback = error.traceback  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass  # exceptions with __slots__ keep the traceback only in __cause__
    if error.traceback and exc.__cause__ is None:
        exc.__cause__ = RemoteTraceback(error.traceback)
    return exc


def builtin_exception(error: Error) -> Exception | None:
    """A builtin exception type (``builtins.KeyError``...) built again from its recorded args,
    else its message, without importing or unpickling anything (issue 19); ``None`` when that
    cannot give back the exception that was raised (``UnicodeDecodeError``, a type of anyone
    else's, a message the rebuilt exception would not say)."""
    module, _, name = error.type.partition(".")
    cls = getattr(builtins, name, None) if module == "builtins" else None
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return None
    tries = ([error.args] if error.args is not None else []) + [[error.message]]
    for args in tries:
        try:
            exc = cls(*args)
            if str(exc) == error.message:
                return exc
        except Exception:  # a constructor these arguments cannot satisfy
            continue
    return None
