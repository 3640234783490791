"""Faithful errors without pickle (issue 19, point 4): a builtin exception replayed from a
recording, without ``allow_pickle``, comes back as its own type, built from its recorded args.

Real runs under every start method, recorded to a real file, replayed by ``MPmq.replay``.
"""

from __future__ import annotations

import sqlite3

import pytest

from fixtures import recording_workers as error_workers
from mpmq import MPmq
from mpmq.errors import RemoteError
from mpmq.events import Error
from mpmq.outcomes import exception_from

BUILTIN = ["value", "key", "os", "open", "zero", "empty"]
NOT_REBUILT = ["unicode", "custom"]


def test_builtin_errors_replayed_without_pickle_are_the_live_ones(start_method, tmp_path):
    db = str(tmp_path / "run.db")
    items = [{"kind": kind, "path": str(tmp_path)} for kind in BUILTIN + NOT_REBUILT]
    live = MPmq(error_workers.raise_one, process_data=items, processes_to_start=2, context=start_method).execute(
        record=db
    )
    replayed = MPmq(error_workers.raise_one).replay(db)  # allow_pickle=False: nothing unpickled
    for kind, was, now in zip(BUILTIN, live, replayed):
        assert type(now) is type(was) and str(now) == str(was) and now.args == was.args, kind
        if isinstance(was, OSError):
            assert (now.errno, now.strerror, now.filename) == (was.errno, was.strerror, was.filename)
        # the worker's traceback, attached as it is live
        assert now.remote_traceback == was.remote_traceback and str(now.__cause__) == str(was.__cause__)
        assert now.remote_traceback.strip().splitlines()[-1].startswith(type(was).__name__)
    for kind, was, now in zip(NOT_REBUILT, live[len(BUILTIN):], replayed[len(BUILTIN):]):
        assert type(now) is RemoteError and str(now) == f"{now.remote_type}: {was}", kind
        assert now.remote_type == f"{type(was).__module__}.{type(was).__qualname__}"
    assert isinstance(live[-1], error_workers.NotABuiltin)  # live, the real object (pickled)


def test_the_args_are_in_the_recording_as_json(tmp_path):
    db = str(tmp_path / "run.db")
    MPmq(error_workers.raise_one, process_data=[{"kind": "os"}, {"kind": "unicode"}]).execute(record=db)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            """SELECT "offset", json_extract(data, '$.args') FROM events WHERE kind = 'error' ORDER BY "offset\""""
        ).fetchall()
    conn.close()
    assert rows == [(0, '[2,"No such file"]'), (1, None)]  # bytes: not JSON, so no args


@pytest.mark.parametrize(
    "name, message, rebuilt",
    [("KeyError", "'missing'", RemoteError), ("OSError", "[Errno 2] No such file", OSError),
     ("ValueError", "bad", ValueError), ("UnicodeDecodeError", "'utf-8' codec can't decode", RemoteError)],
)  # fmt: skip
def test_a_recorded_message_alone_rebuilds_only_what_says_that_message(name, message, rebuilt):
    """Without recorded args (format 1 recorded none), a builtin is rebuilt from its message
    only when the rebuilt exception says exactly that message: KeyError('x') would say "'x'"
    quoted twice over, so it stays a RemoteError."""
    exc = exception_from(Error(0, 1, 0.0, f"builtins.{name}", message), False)
    assert type(exc) is rebuilt and str(exc).endswith(message)
