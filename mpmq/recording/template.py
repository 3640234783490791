"""The file every new recording starts as: the newest format's tables, made once and shipped
beside this module (``empty.sqlite``), so that starting a recording compiles no schema (issue
18: 1.6 ms of CPU on the recorder's thread, which a 3-item run waited for as it ended).

``python -m mpmq.recording.template`` makes it again from ``schema.py``; a test fails while
the two differ.
"""

from __future__ import annotations

import contextlib
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
        source = os.open(TEMPLATE, os.O_RDONLY)
    except OSError:
        return None
    staging = f"{path}.{os.getpid()}-{time.monotonic_ns()}.new"
    try:
        try:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return None
        try:
            _copy(source, fd)
        finally:
            os.close(fd)
        os.link(staging, path)
    except FileExistsError:
        return False
    except OSError:
        return None
    finally:
        os.close(source)
        try:
            os.remove(staging)
        except OSError:
            pass
    return True


def _copy(source: int, target: int) -> None:
    """Copy the template in the kernel where it can (``copy_file_range``, Linux): read into
    Python and written out, its 224 KB cost a recorded run 0.1-0.2 ms more before its first
    worker started (issue 18)."""
    size = os.fstat(source).st_size
    copied = 0
    with contextlib.suppress(AttributeError, OSError):  # not here, or not between these files
        while copied < size and (step := os.copy_file_range(source, target, size - copied)):
            copied += step
    while copied < size:  # what is left goes through this process
        data = os.pread(source, size - copied, copied)
        if not data:
            raise OSError(f"{TEMPLATE} ended at {copied} of {size} bytes")
        copied += os.write(target, data)


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
