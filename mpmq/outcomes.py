"""What the caller gets back for each item, read from the run's state.

A succeeded item gives its return value. A failed item gives an exception: the worker's own
exception object when it can be rebuilt (unpickled, where pickles are allowed; else, for a
builtin exception type, built again from its recorded args or message), else a
``RemoteError`` carrying the remote type, message and traceback; failures the parent observed
(a dead worker, a timeout, a cancellation) give the matching ``mpmq.errors`` type. Either way ``remote_traceback`` holds
the worker's traceback, and ``__cause__`` shows it when the exception is printed.
"""

from __future__ import annotations

import builtins
import pickle
from typing import Any

from . import payload
from .errors import PARENT_ERROR_TYPES, ItemFailed, RemoteError, RemoteTraceback
from .events import Error
from .state import FAILED, SUCCEEDED, ItemState, RunState


def run_status(state: RunState) -> str:
    """``succeeded`` or ``failed`` for a run whose items all finished."""
    if not state.complete:
        return "interrupted"
    return "failed" if state.failed else "succeeded"


def outcomes(items: list[ItemState], allow_pickle: bool) -> list:
    """One outcome per item, in item order (successes without a detour: a run may have 10,000)."""
    load = payload.load
    out = []
    for item in items:
        result = item.result
        if result is not None and item.status == SUCCEEDED:
            out.append(load(result, allow_pickle))
        else:
            out.append(outcome(item, allow_pickle))
    return out


def outcome(item: ItemState, allow_pickle: bool) -> Any:
    if item.status == SUCCEEDED:
        return payload.load(item.result, allow_pickle) if item.result is not None else None
    if item.status == FAILED and item.error is not None:
        return exception_from(item.error, allow_pickle)
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
