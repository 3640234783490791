"""Run recorded items again with their recorded inputs and function (``mpmq-replay rerun``).

In this process by default, so ``--pdb`` can open a post-mortem debugger at the failing line;
or in worker processes through ``MPmq`` (``--workers``, implied by ``--record``, since the
engine is what records a run). A re-run needs real values, so every input the recording could
not keep (redacted secrets, values only a pickle or a repr holds) is named with the way to
supply it before anything runs. The function is named by the recording, which is untrusted:
standard-library functions (``os:system``...) are refused unless ``--function`` names them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import pdb
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from mpmq import MPmq, payload
from mpmq.calling import KWARGS, call_style
from mpmq.compat import prefixed
from mpmq.recording import open_recording
from mpmq.recording.redact import REDACTED

from . import inputs
from .handlers import HandlerError, import_object, installed_elsewhere, show
from .loader import fold

SUPPLYING = ("--set", "--input")  # options whose values may be secrets


class RerunError(Exception):
    """The re-run cannot start; ``lines`` say what is missing and how to supply it."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0])
        self.lines = lines


@dataclass
class Rerun:
    """What to run: the original offsets, their restored inputs, the shared data, the function."""

    path: str
    run_id: int
    start_method: str | None
    processes: int | None
    function_name: str
    function: Callable
    offsets: list[int]
    items: list[dict]
    shared: dict


def prepare(
    path: str,
    run: int | None,
    *,
    failed: bool,
    offsets: Iterable[int],
    function: str | None = None,
    sets: Iterable[str] = (),
    given: Iterable[str] = (),
    allow_pickle: bool = False,
) -> Rerun:
    """Read the run, choose its items, restore their inputs; ``RerunError`` if any is missing."""
    with open_recording(path) as recording:
        header = recording.run(run)
        records = recording.items(header.id)
        chosen = sorted(set(offsets))
        if failed:
            state = fold(recording, header)
            chosen = sorted(set(chosen) | {item.offset for item in state.items if item.status == "failed"})
    by_offset = {record.offset: record for record in records}
    unknown = [offset for offset in chosen if offset not in by_offset]
    if unknown:
        raise RerunError(f"{path}: run {header.id} has no item {unknown[0]} (it has {len(records)} items)")
    try:
        items = [inputs.item_input(by_offset[offset], allow_pickle) for offset in chosen]
        shared = inputs.shared_data(header, allow_pickle)
    except Exception as exc:  # --allow-pickle with a pickle this interpreter cannot load
        raise RerunError(f"{path}: a recorded pickle cannot be loaded: {type(exc).__name__}: {exc}") from None
    _give_inputs(path, chosen, items, given)
    _set_values(chosen, items, shared, sets)
    problems = inputs.problems(None, shared, header.shared_data_pickle is not None)
    for offset, item in zip(chosen, items):
        problems += inputs.problems(offset, item, by_offset[offset].input.pickle is not None)
        if not problems and not isinstance(item, dict):
            problems.append(inputs.Problem(offset, "", "repr"))
    lines = [f"{path}: run {header.id}, {problem.advice()}" for problem in problems]
    name = function or header.function or ""
    try:
        target = _function(name, header.function, explicit=function is not None)
    except RerunError as exc:  # said together with the missing inputs: one round of fixes
        lines[:0] = exc.lines
    if lines:
        raise RerunError(*lines)
    return Rerun(path, header.id, header.start_method, header.processes_to_start, name, target, chosen, items, shared)


def _function(name: str, recorded: str | None, explicit: bool) -> Callable:
    module = name.partition(":")[0]
    if not explicit and module == "__main__":
        raise RerunError(
            f"the recorded function {recorded} was defined in the script that ran, which cannot be "
            "imported as __main__: pass --function module:attr (its directory importable)"
        )
    if not explicit and installed_elsewhere(module):
        raise RerunError(
            f"the recording names the function {recorded!r}, not one of yours (the standard library or an "
            "installed package): rerun only runs it if you name it with --function"
        )
    try:
        target = import_object(name, "function")
    except HandlerError as exc:
        raise RerunError(f"{exc} (pass --function module:attr)") from None
    if not callable(target):
        raise RerunError(f"function {name} is not callable")
    return target


def _value(text: str) -> Any:
    """JSON when it parses (``5``, ``true``, ``{"a": 1}``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _give_inputs(path: str, chosen: list[int], items: list[Any], given: Iterable[str]) -> None:
    for spec in given:
        offset, sep, text = spec.partition("=")
        if not sep or not offset.strip().isdigit() or int(offset) not in chosen:
            raise RerunError(f"--input {spec!r}: expected OFFSET=JSON for one of the re-run items {chosen}")
        value = _value(text)
        if not isinstance(value, dict):
            raise RerunError(f"--input {spec!r}: an item's input must be a JSON object")
        items[chosen.index(int(offset))] = value


def _set_values(chosen: list[int], items: list[Any], shared: dict, sets: Iterable[str]) -> None:
    for spec in sets:
        key, sep, text = spec.partition("=")
        if not sep or not key:
            raise RerunError(f"--set {spec!r}: expected KEY=VALUE (KEY may be dotted: db.password)")
        value = _value(text)
        if key.split(".")[0] in shared:
            done = inputs.set_path(shared, key, value)
        else:
            done = any([inputs.set_path(item, key, value) for item in items if isinstance(item, dict)])
        if not done:
            raise RerunError(f"--set {key}: no such key in the shared data or the inputs of items {chosen}")


# --- running -----------------------------------------------------------------------------


def run_here(rerun: Rerun, debug: bool, out: TextIO) -> bool:
    """Call the function in this process, item by item; True if every item succeeded."""
    style = call_style(rerun.function)
    printer = _LogPrinter(out)
    root = logging.getLogger()
    ok = True
    for offset, item in zip(rerun.offsets, rerun.items):
        print(f"re-running item {offset} of run {rerun.run_id}: {rerun.function_name}", file=out)
        saved = root.level
        printer.offset = offset
        root.addHandler(printer)
        root.setLevel(logging.DEBUG)  # as in a worker: every record the item logs is shown
        failure: BaseException | None = None
        try:
            value = rerun.function(**item, **rerun.shared) if style == KWARGS else rerun.function(item, rerun.shared)
        except (Exception, SystemExit) as exc:  # the item fails, as it would in a worker
            failure = exc
        finally:
            root.removeHandler(printer)
            root.setLevel(saved)
        if failure is None:
            print(f"item {offset}: succeeded: {payload.safe_repr(value)}", file=out)
            continue
        ok = False
        # From the function's own frame down: the frame calling it here is noise.
        frames = failure.__traceback__.tb_next if failure.__traceback__ is not None else None
        out.write("".join(traceback.format_exception(type(failure), failure, frames)))
        print(f"item {offset}: failed: {type(failure).__name__}: {failure}", file=out)
        out.flush()
        if debug:
            pdb.post_mortem(failure.__traceback__)
    return ok


class _LogPrinter(logging.Handler):
    """Shows the item's log records as ``process_message`` would have received them."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.NOTSET)
        self.out = out
        self.offset = 0

    def emit(self, record: logging.LogRecord) -> None:
        show(self.out, self.offset, prefixed(record.levelno, record.getMessage()))


def run_in_workers(rerun: Rerun, processes: int | None, record: str | None, out: TextIO) -> bool:
    """Run the items through ``MPmq`` in worker processes; True if every item succeeded."""
    start = rerun.start_method if rerun.start_method in multiprocessing.get_all_start_methods() else None
    workers = processes or min(rerun.processes or len(rerun.items), len(rerun.items))
    runner = RerunDisplay(
        rerun.function, process_data=rerun.items, shared_data=rerun.shared, processes_to_start=workers,
        context=start, offsets=rerun.offsets, out=out,
    )  # fmt: skip
    with _argv_for_the_record():
        results = runner.execute(record=record, parent_run=rerun.run_id if record else None,
                                 parent_offsets=rerun.offsets if record else None)
    ok = True
    for offset, result in zip(rerun.offsets, results):
        if isinstance(result, BaseException):
            ok = False
            remote = getattr(result, "remote_traceback", "") or ""
            out.write(remote)
            print(f"item {offset}: failed: {result}", file=out)
        else:
            print(f"item {offset}: succeeded: {payload.safe_repr(result)}", file=out)
    if record:
        print(f"recorded to {record} (a re-run of run {rerun.run_id} of {rerun.path})", file=out)
    return ok


class RerunDisplay(MPmq):
    """Prints the re-run items' messages under their original offsets."""

    def __init__(self, *args: Any, offsets: list[int], out: TextIO, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.original = offsets
        self.out = out

    def process_message(self, offset: int, message: str) -> None:
        show(self.out, self.original[offset], message)


@contextlib.contextmanager
def _argv_for_the_record() -> Iterator[None]:
    """Hide the values of --set and --input from the command line the recording keeps.

    The recorder stores ``sys.argv`` and redacts only secret-looking option names, but
    ``--set api_token=...`` supplies secrets through an innocent one. The values themselves
    are in the recorded inputs, redacted there by key, so nothing is lost.
    """
    saved = sys.argv
    sys.argv = hide_supplied_values(saved)
    try:
        yield
    finally:
        sys.argv = saved


def hide_supplied_values(argv: list[str]) -> list[str]:
    """``--set KEY=VALUE`` as ``--set KEY=[redacted]`` (also ``--input``, and the ``--set=`` form)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        name, eq, value = arg.partition("=")
        if hide_next:
            out.append(f"{name}={REDACTED}")
        elif eq and name in SUPPLYING:
            out.append(f"{name}={value.partition('=')[0]}={REDACTED}")
        else:
            out.append(arg)
        hide_next = arg in SUPPLYING
    return out
