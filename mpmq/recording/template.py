"""The file every new recording starts as: the newest format's tables, made once and shipped
beside this module (``empty.sqlite``), so that starting a recording compiles no schema (issue
18: 1.6 ms of CPU on the recorder's thread, which a 3-item run waited for as it ended).

``python -m mpmq.recording.template`` makes it again from ``schema.py``; a test fails while
the two differ.
"""

from __future__ import annotations

import os
import sys
import time

from .schema import create_schema

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "empty.sqlite")


def create_from_template(path: str) -> bool | None:
    """Create ``path`` (0600) as a copy of the template; False if it exists already; None if it
    cannot be done here (no template, no hard links): then the caller creates it empty.

    The copy is written beside ``path`` under a name of its own, then linked to ``path``: a
    process starting a run into the same path at the same moment sees no file or the whole
    template, never part of one (an empty or partial file it would take for an empty
    database and make tables in, at the same time as this copy is written).
    """
    try:
        with open(TEMPLATE, "rb") as template:
            data = template.read()
    except OSError:
        return None
    staging = f"{path}.{os.getpid()}-{time.monotonic_ns()}.new"
    try:
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return None
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.link(staging, path)
    except FileExistsError:
        return False
    except OSError:
        return None
    finally:
        try:
            os.remove(staging)
        except OSError:
            pass
    return True


def make(path: str) -> None:
    """Write an empty recording of the newest format, made from ``schema.py``, to ``path`` (new)."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        create_schema(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else TEMPLATE
    if os.path.exists(target):
        os.remove(target)
    make(target)
    print(f"wrote {target} ({os.path.getsize(target):,} bytes)")
