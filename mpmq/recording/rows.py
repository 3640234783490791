"""A run's values and events as the rows of a recording (the format is in ``file.py``).

Values that JSON represents exactly are stored as JSON text (queryable with ``json_extract``);
others as their ``repr``, plus a pickle only when the caller opted in. Event rows are built
flat for multi-row INSERTs, which bind twice as fast as ``executemany`` of single rows.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import AnyEvent, Done, Error, Log, Payload, Result, Started
from ..payload import for_rest, is_wire_int, json_or_unset, safe_repr
from .file import FORMAT_VERSION, sqlite
from .redact import is_secret, redact, redact_argv, redacted_for_json

if TYPE_CHECKING:
    import sqlite3

HEADER_KEYS = (
    "mpmq_version", "python_version", "platform", "start_method", "function", "handler",
    "processes_to_start", "error_policy", "command_line", "started_at", "utc_offset",
    "item_count", "options", "parent_run",
)  # fmt: skip
_ROWS_PER_INSERT = 200  # more rows per statement gain nothing measurable

_encode = msgspec.json.Encoder().encode
_encode_any = msgspec.json.Encoder(enc_hook=safe_repr).encode


def json_text(value: Any) -> str | None:
    """JSON text when JSON represents ``value`` exactly, else ``None`` (the repr carries it)."""
    return checked_json_text(json_or_unset(value))


def checked_json_text(value: Any) -> str | None:
    """JSON text of a value ``json_or_unset`` returned (``UNSET``: ``None``)."""
    if value is msgspec.UNSET:
        return None
    try:
        return _encode(value).decode()
    except (UnicodeEncodeError, msgspec.EncodeError):  # lone surrogates, ints beyond JSON
        return None


def clean_text(value: Any) -> Any:
    """A string SQLite can store: lone surrogates (undecodable file names...) become escapes."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def shared_columns(shared: Any, keep_pickle: bool) -> tuple[str | None, str | None, bytes | None]:
    """shared_data as a JSON object; values JSON cannot hold are stored as their repr, keys listed."""
    if shared is None:
        return None, None, None
    pickled = for_rest(shared, keep_pickle).pickle
    items = shared.items() if isinstance(shared, Mapping) else [("*", shared)]
    as_json: dict[str, Any] = {}
    repr_keys = []
    for key, value in items:
        name = clean_text(str(key))
        if json_text(value) is None or not isinstance(key, str):
            repr_keys.append(name)
            value = safe_repr(value)
        as_json[name] = value
    return _encode(as_json).decode(), (_encode(repr_keys).decode() if repr_keys else None), pickled


def data_text(fields: dict[str, Any]) -> str:
    """An event's other fields as JSON text (its strings cleaned if SQLite could not store them)."""
    try:
        return _encode(fields).decode()
    except UnicodeEncodeError:
        return _encode({key: clean_text(value) for key, value in fields.items()}).decode()


def loose_json(value: Any) -> str:
    """JSON text for header fields: anything JSON cannot hold becomes its repr."""
    try:
        return _encode_any(value).decode()
    except (UnicodeEncodeError, TypeError, msgspec.EncodeError):
        return _encode(safe_repr(value)).decode()


class Rest(msgspec.Struct, frozen=True):
    """A live result as the recording keeps it (computed once, for its event row and item row)."""

    live: Payload
    json: str | None
    repr: str
    data: str
    pickle: bytes | None



class EventInserts:
    """The INSERTs that write a run's events, many rows per statement.

    Binding parameters costs more than SQLite's storing the row (12 per row: ~2.2 us a row
    here; 8: ~1.5 us), so the commonest rows (a log line without an exception, started,
    result, done) have their constants (run id, kind, NULLs) written into the statement and bind
    only what varies. Rows are grouped by shape, so within one commit they are not inserted
    in ``seq`` order: ``seq`` is the order, as the primary key says.
    """

    def __init__(self, run_id: int, max_variables: int) -> None:
        run = int(run_id)  # an int, so safe to write into SQL
        self._shapes = {  # shape -> (one row's VALUES, parameters per row)
            "log": (f"({run}, ?, 'log', ?, ?, ?, ?, ?, ?, ?, NULL, NULL)", 8),
            "started": (f"({run}, ?, 'started', ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL)", 5),
            "done": (f"({run}, ?, 'done', ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL)", 5),
            "result": (f"({run}, ?, 'result', ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)", 7),
            "any": (f"({run}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", 11),
        }
        self._max_variables = max_variables

    def statements(self, batches: Sequence[tuple[int, float, Sequence[AnyEvent]]],
                   rest_of: Callable[[Result], Rest], keep_pickle: bool) -> list[tuple[str, list]]:
        """``(sql, [parameters, ...])`` pairs for ``executemany`` writing every event of
        ``batches`` (each: the first event's ``seq``, the time the parent received it, events)."""
        logs: list[Any] = []
        starts: list[Any] = []
        dones: list[Any] = []
        results: list[Any] = []
        others: list[Any] = []
        add_log = logs.extend
        for first_seq, received_at, events in batches:
            seq = first_seq - 1
            for e in events:
                seq += 1
                cls = type(e)
                if cls is Log:
                    if e.exc_text is None:
                        add_log((seq, e.offset, e.pid, e.time, received_at, e.level, e.logger, e.message))
                    else:
                        others.extend((seq, "log", e.offset, e.pid, e.time, received_at, e.level, e.logger,
                                       e.message, data_text({"exc_text": e.exc_text}), None))  # fmt: skip
                elif cls is Started:
                    starts.extend((seq, e.offset, e.pid, e.time, received_at))
                elif cls is Done:
                    dones.extend((seq, e.offset, e.pid, e.time, received_at))
                elif cls is Result:
                    rest = rest_of(e)
                    results.extend((seq, e.offset, e.pid, e.time, received_at, rest.data, rest.pickle))
                elif cls is Error:
                    fields = {"type": e.type, "traceback": e.traceback}
                    if e.retryable or e.retrying:  # issue 19: format 1 keeps them in the row's JSON
                        fields.update(retryable=e.retryable, retrying=e.retrying)
                    data = data_text(fields)
                    exc = e.exception if keep_pickle else None
                    others.extend((seq, "error", e.offset, e.pid, e.time, received_at, None, None, e.message, data,
                                   exc))  # fmt: skip
                else:
                    raise TypeError(f"not an mpmq event: {e!r}")
        statements: list[tuple[str, list]] = []
        for shape, flat in (("log", logs), ("started", starts), ("done", dones), ("result", results),
                            ("any", others)):
            if flat:
                statements += self._inserts(shape, flat)
        return statements

    def _inserts(self, shape: str, flat: list[Any]) -> list[tuple[str, list]]:
        values, width = self._shapes[shape]
        return multi_row_inserts("INSERT INTO events VALUES ", values, width, flat, self._max_variables)


def multi_row_inserts(
    head: str, values: str, width: int, flat: list[Any], max_variables: int, tail: str = ""
) -> list[tuple[str, list]]:
    """``executemany`` pairs inserting the rows flattened in ``flat``, ``width`` values each:
    full multi-row INSERTs, then one for the rest (``tail`` follows the rows: an UPDATE's
    ``FROM (VALUES ...)`` goes on after them)."""
    per_insert = max(1, min(_ROWS_PER_INSERT, max_variables // width))
    step = width * per_insert
    full = len(flat) // step
    statements = []
    if full:
        rows = [flat[i * step : (i + 1) * step] for i in range(full)]
        statements.append((_insert(head, values, per_insert) + tail, rows))
    if len(flat) > full * step:
        statements.append((_insert(head, values, (len(flat) - full * step) // width) + tail, [flat[full * step :]]))
    return statements


@functools.lru_cache(maxsize=256)
def _insert(head: str, values: str, rows: int) -> str:
    return head + ", ".join([values] * rows)


def max_variables(conn: sqlite3.Connection) -> int:
    """Parameters one statement may bind here (32,766 since SQLite 3.32; 999 before)."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    return getlimit(sqlite().SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999


def rest_payload(live: Payload, keep_pickle: bool) -> Rest:
    """A live result as the recording keeps it (its event's ``data`` and its item's columns)."""
    value = live.json
    if (
        not keep_pickle and live.pickle is None and live.repr is None
        and (value is None or is_wire_int(value))
    ):
        return scalar_rest(live)
    return general_rest(live, keep_pickle)


def scalar_rest(live: Payload) -> Rest:
    """The commonest results, ``None`` and counts, exactly as ``general_rest`` keeps them, in
    a fifth of the time (a run of 10,000 items returning counts spent 30 ms there)."""
    value = live.json
    shown = repr(value)
    text = "null" if value is None else shown
    return Rest(live, text, shown, f'{{"repr":"{shown}","json":{text}}}', None)


def general_rest(live: Payload, keep_pickle: bool) -> Rest:
    if live.pickle is not None:
        try:
            rest = for_rest(pickle.loads(live.pickle))
        except Exception as exc:  # the parent must survive a result it cannot rebuild
            rest = Payload(repr=f"<result not unpickled by the recorder: {type(exc).__name__}: {exc}>")
    elif live.repr is None and live.json is not msgspec.UNSET:  # a scalar that travelled as itself
        rest = for_rest(live.json, keep_pickle)
    else:  # already at rest (e.g. a re-recorded replay)
        rest = live
    text = checked_json_text(rest.json)
    data: dict[str, Any] = {"repr": rest.repr}
    if text is not None:
        data["json"] = rest.json
    kept = (live.pickle or rest.pickle) if keep_pickle else None
    return Rest(live, text, clean_text(rest.repr or ""), data_text(data), kept)


def input_columns(value: Any, patterns: frozenset[str], keep_pickle: bool) -> tuple:
    """An item's ``input``, ``input_repr`` and ``input_pickle`` columns, redacted: one walk
    redacts it and says whether JSON holds it, then it is encoded (issue 18, point 6)."""
    redacted, exact = redacted_for_json(value, patterns)
    pickled = _pickled(redacted) if keep_pickle else None
    return checked_json_text(redacted if exact else msgspec.UNSET), clean_text(safe_repr(redacted)), pickled


def _pickled(value: Any) -> bytes | None:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # unpicklable values are still recorded by repr
        return None


def flat_input_columns(value: Any, patterns: frozenset[str]) -> tuple | None:
    """``input_columns`` of the commonest item, a dict of plain values under string keys none
    of which looks secret, in a quarter of the time; ``None`` for any other item.

    ``item_inputs`` does the same inline, for every item of a run (4.5 us each in general:
    45 ms for 10,000 items).
    """
    if type(value) is not dict or not plain_keys(value, patterns) or not plain_values(value):
        return None
    try:
        text = _encode(value).decode()
    except (UnicodeEncodeError, msgspec.EncodeError):
        return None
    return text, clean_text(safe_repr(value)), None


def run_row(
    header: Mapping[str, Any],
    inputs: Sequence[Any],
    shared: Any,
    patterns: frozenset[str],
    keep_pickle: bool,
    version: int = FORMAT_VERSION,
) -> dict[str, Any]:
    """The run's header row (status ``running``), redacted, as ``insert_run`` inserts it."""
    row = {key: header.get(key) for key in HEADER_KEYS}
    row["item_count"] = len(inputs) if row["item_count"] is None else row["item_count"]
    shared_json, repr_keys, shared_pickle = shared_columns(redact(shared, patterns), keep_pickle)
    row.update(
        format_version=version,
        status="running",
        command_line=loose_json(redact_argv(row["command_line"] or [], patterns)),
        options=loose_json(redact(row["options"] or {}, patterns)),
        shared_data=shared_json,
        shared_data_repr_keys=repr_keys,
        shared_data_pickle=shared_pickle,
    )
    return {key: clean_text(value) for key, value in row.items()}


def insert_run(conn: sqlite3.Connection, row: Mapping[str, Any]) -> int:
    """Insert the run's row (``run_row``) and return its id."""
    columns = ", ".join(f'"{key}"' for key in row)
    cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def item_inputs(run_id: int, inputs: Sequence[Any], patterns: frozenset[str], keep_pickle: bool,
                max_variables: int) -> list[tuple[str, list]]:
    """INSERTs of the items table's rows as a run starts: each item's (redacted) input, pending."""
    flat: list[Any] = []
    add = flat.extend
    checked_keys: Any = None  # the keys of the last flat item: none of them looks secret
    for offset, value in enumerate(inputs):
        if not keep_pickle and type(value) is dict:
            # flat_input_columns inline, its keys checked once for a run of items sharing them
            # (issue 18: this loop holds the GIL for every item of a million-item run)
            if value.keys() != checked_keys:
                checked_keys = value.keys() if plain_keys(value, patterns) else None
            if checked_keys is not None and plain_values(value):
                try:
                    text = _encode(value).decode()
                except (UnicodeEncodeError, msgspec.EncodeError):
                    pass
                else:
                    shown = repr(value)  # plain values: it cannot fail, nor hold lone surrogates
                    add((offset, text, shown if len(shown) <= _REPR_LIMIT else safe_repr(value), None))
                    continue
        add((offset, *input_columns(value, patterns, keep_pickle)))
    head = 'INSERT INTO items (run_id, "offset", input, input_repr, input_pickle, status) VALUES '
    return multi_row_inserts(head, f"({int(run_id)}, ?, ?, ?, ?, 'pending')", 4, flat, max_variables)


_REPR_LIMIT = 10_000  # payload.safe_repr's
WIRE_LOW, WIRE_HIGH = -(1 << 63), 1 << 64  # payload.is_wire_int's


def plain_keys(value: dict, patterns: frozenset[str]) -> bool:
    return all(type(key) is str and not (patterns and is_secret(key, patterns)) for key in value)


def plain_values(value: dict) -> bool:
    """The values ``flat_input_columns`` takes: plain, an int JSON holds, a finite float."""
    for item in value.values():
        kind = type(item)
        if kind is int:
            if not WIRE_LOW <= item < WIRE_HIGH:
                return False
        elif kind is float:
            if item - item != 0.0:  # inf and NaN
                return False
        elif kind is not str and kind is not bool and item is not None:
            return False
    return True
