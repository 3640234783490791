"""The handlers a replay re-drives: the default printer, or the user's own (``--handler module:attr``).

A recording names the handler and function of its live run, but those names are untrusted
data: the handler is shown as a hint and never imported unless the user names it, and the
recorded function is only looked up in modules that are already imported (by the user's
handler, typically), since importing a module runs its code. Replay never calls the function,
so a stand-in takes its place otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import site
import sys
import sysconfig
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, TextIO

from mpmq import MPmq, payload
from mpmq.engine import Engine
from mpmq.events import AnyEvent, Log, Result
from mpmq.recording import ItemRecord, RunInfo

from . import inputs

LAST_LOG_LINES = 5


class HandlerError(Exception):
    """The handler named on the command line cannot be imported or built (one line)."""


def stand_in(*args: Any, **kwargs: Any) -> Any:
    """Takes the recorded function's place in a replay, which never calls it."""
    raise RuntimeError("mpmq-replay: the recorded function is not available in a replay and is never called")


class Printer(MPmq):
    """Prints each message as ``process_message`` received it, and each result; keeps the last
    log lines of every item for the summary that follows."""

    def __init__(self, out: TextIO | None = None, allow_pickle: bool = False) -> None:
        super().__init__(stand_in, process_data=[{}])
        self.out = out or sys.stdout
        self.allow_pickle = allow_pickle
        self.last_logs: dict[int, deque[Log]] = defaultdict(lambda: deque(maxlen=LAST_LOG_LINES))
        self.last_seq: int | None = None

    def process_event(self, event: AnyEvent) -> None:
        if type(event) is Log:
            self.last_logs[event.offset].append(event)
        super().process_event(event)
        if type(event) is Result:
            self.show(event.offset, f"result: {value_text(event.value, self.allow_pickle)}")

    def process_message(self, offset: int, message: str) -> None:
        self.show(offset, message)

    def show(self, offset: int, text: str) -> None:
        show(self.out, offset, text)


def show(out: TextIO, offset: int, text: str) -> None:
    """``[offset] text``, the lines of a multi-line text indented under the first."""
    prefix = f"[{offset}] "
    lines = text.split("\n")
    rest = "".join(f"\n{' ' * len(prefix)}{line}" for line in lines[1:])
    print(f"{prefix}{lines[0]}{rest}", file=out)


def value_text(value: payload.Payload, allow_pickle: bool) -> str:
    """A recorded value for display; a pickle only loaded when allowed, and never fatal."""
    try:
        return payload.safe_repr(payload.load(value, allow_pickle))
    except Exception as exc:  # a pickle naming a class this interpreter cannot import
        return f"<cannot unpickle: {type(exc).__name__}: {exc}> {value.repr or ''}".rstrip()


def import_object(spec: str, what: str = "handler") -> Any:
    """``module:attr`` imported as ``python -m`` would, with the current directory importable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HandlerError(f"{what} {spec!r} must be written module:attr (e.g. mydisplay:ProgressBar)")
    _cwd_importable()
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise HandlerError(f"cannot import {what} {spec}: {one_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerError(f"cannot import {what} {spec}: {module_name} has no attribute {attr!r}") from None
    return obj


def _cwd_importable() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def installed_elsewhere(module_name: str) -> bool:
    """Whether ``module_name`` is not the user's own code: the standard library, a package
    installed in site-packages, or mpmq itself. Found without importing it (importing runs it).

    A recording can name any importable callable as its function; rerun calls only the
    user's own unasked, so a crafted file cannot make it call, say, ``subprocess:run``.
    """
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in ("mpmq", "replay", "", "?") or not top.isidentifier():
        return True
    _cwd_importable()
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: finds, never imports
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return False  # not importable at all: importing it says so, in its own words
    places = [spec.origin] if spec.origin and spec.has_location else list(spec.submodule_search_locations or [])
    installed = [sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    installed += [*site.getsitepackages(), site.getusersitepackages()]
    roots = tuple(os.path.join(os.path.realpath(path), "") for path in installed)
    return not places or any(os.path.realpath(place).startswith(roots) for place in places)


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def recorded_function(name: str | None, script_module: str | None = None) -> Callable:
    """The recorded function if its module is already imported, else ``stand_in``.

    A function recorded as ``__main__:f`` was defined in the script that ran; when the user's
    handler comes from that script (``--handler script:Bar``), ``script_module`` finds it there.
    """
    module_name, _, qualname = (name or "").partition(":")
    if module_name == "__main__":
        module_name = script_module or ""
    obj: Any = sys.modules.get(module_name)
    if obj is None:
        return stand_in
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if callable(obj) else stand_in


def build_handler(spec: str, header: RunInfo, items: list[ItemRecord], allow_pickle: bool) -> Engine:
    """The user's handler: an MPmq subclass built from the recorded run, or what a factory returns."""
    target = import_object(spec)
    try:
        if isinstance(target, type) and issubclass(target, Engine):
            handler = target(
                recorded_function(header.function, spec.partition(":")[0]),
                process_data=[inputs.item_input(item, allow_pickle) for item in items] or [{}],
                shared_data=inputs.shared_data(header, allow_pickle),
                processes_to_start=header.processes_to_start,
            )
        elif callable(target):
            handler = target()
        else:
            raise HandlerError(f"handler {spec} is neither an MPmq subclass nor a callable returning a handler")
    except HandlerError:
        raise
    except Exception as exc:
        raise HandlerError(
            f"handler {spec} could not be built: {one_line(exc)} "
            "(give --handler a zero-argument function that returns your handler instead)"
        ) from None
    if not isinstance(handler, Engine):
        raise HandlerError(f"handler {spec} returned {type(handler).__qualname__}, not an MPmq instance")
    return handler
