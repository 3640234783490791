"""A run's recorded inputs (item data and shared data), restored as far as the recording allows.

Recorded values come back as JSON when JSON held them, as pickles only with ``allow_pickle``
(a recording is untrusted data), else as ``Unpickled`` placeholders; secrets were replaced by
``[redacted]`` when recorded. A handler being re-driven only displays inputs, so placeholders
are fine there; a re-run calls the function with them, so ``problems`` names every value it
would be missing and how to supply it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpmq import payload
from mpmq.payload import Unpickled
from mpmq.recording import ItemRecord, RunInfo
from mpmq.recording.redact import REDACTED


def item_input(record: ItemRecord, allow_pickle: bool) -> Any:
    """One item's recorded input (a placeholder when only a pickle or a repr could restore it)."""
    return payload.load(record.input, allow_pickle)


def shared_data(header: RunInfo, allow_pickle: bool) -> dict[str, Any]:
    """The run's shared data; values recorded only as a repr come back as placeholders."""
    if allow_pickle and header.shared_data_pickle is not None:
        value = pickle.loads(header.shared_data_pickle)
        return dict(value) if isinstance(value, Mapping) else {"*": value}
    shared = dict(header.shared_data or {})
    for key in header.shared_data_repr_keys:
        if key in shared:
            shared[key] = Unpickled(shared[key])
    return shared


@dataclass(frozen=True)
class Problem:
    """A value a re-run would lack: where it is (``offset`` None for shared data) and why."""

    offset: int | None
    key: str  # a dotted path into the item or the shared data; "" for the whole item
    reason: str  # "redacted", "pickled" or "repr"

    def advice(self) -> str:
        where = "shared data" if self.offset is None else f"item {self.offset}"
        if self.reason == "redacted":
            return f"{where}: {self.key!r} was redacted when recorded: supply it with --set {self.key}=VALUE"
        if self.reason == "pickled":
            what = "its input" if not self.key else repr(self.key)
            return (
                f"{where}: {what} was recorded as a pickle: pass --allow-pickle to load it "
                "(only for a recording you trust)"
            )
        if not self.key:
            return (
                f"{where}: its input was recorded only as its repr (JSON cannot hold it): "
                f"supply it with --input {self.offset}=JSON, or record with record_pickle=True"
            )
        return (
            f"{where}: {self.key!r} was recorded only as its repr (JSON cannot hold it): "
            f"supply it with --set {self.key}=VALUE"
        )


def problems(offset: int | None, value: Any, record_has_pickle: bool) -> list[Problem]:
    """Every redacted or unrestorable value in one input (or, with ``offset`` None, in shared data)."""
    if isinstance(value, Unpickled):
        return [Problem(offset, "", "pickled" if record_has_pickle else "repr")]
    found: list[Problem] = []
    _walk(value, "", offset, record_has_pickle, found)
    return found


def _walk(value: Any, path: str, offset: int | None, has_pickle: bool, found: list[Problem]) -> None:
    if isinstance(value, Unpickled):
        found.append(Problem(offset, path, "pickled" if has_pickle else "repr"))
    elif isinstance(value, str) and value == REDACTED:
        found.append(Problem(offset, path, "redacted"))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), offset, has_pickle, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}" if path else str(index), offset, has_pickle, found)


def set_path(target: Any, path: str, value: Any) -> bool:
    """Set an existing dotted ``path`` (``db.password``, ``servers.0.token``); False if absent.

    Only existing keys: a typo must not become a new argument the function never expected.
    """
    *parents, last = path.split(".")
    node = target
    for part in parents:
        node = _child(node, part)
        if node is None:
            return False
    if isinstance(node, dict) and last in node:
        node[last] = value
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
        return True
    return False


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None
