"""Log records in a worker without the details nobody there reads.

A worker forwards a record's time, level, logger name, message and exception text. Making a
record also looks up the caller's file, line and function (a stack walk), the thread, the
process and the asyncio task: about 2 us of the 5 a ``logger.debug`` costs, spent on fields
that only another handler or formatter could read. While mpmq's handler is the only live
handler in the worker (``logging.lastResort`` aside, which prints the message alone), those
lookups are switched off, the way the logging HOWTO's "Optimization" section describes; as
soon as any other handler exists they are switched back on, so a handler of the user's own
always sees complete records. Whether others exist is checked as each item starts, and at
every record by the number of live handlers alone (one ``len``).
"""

from __future__ import annotations

import logging
from typing import Any

# Weak references to every live handler (the list logging.shutdown flushes): private, but
# there since Python 2. Without it, records keep every detail.
LIVE_HANDLERS: list | None = getattr(logging, "_handlerList", None)
_SWITCHES = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")


class LeanRecords:
    """Switches logging's per-record lookups off while ``ours`` is the only handler alive."""

    def __init__(self, ours: logging.Handler) -> None:
        self._ours = ours
        self._full: dict[str, Any] = {name: getattr(logging, name) for name in _SWITCHES if hasattr(logging, name)}
        self._full["_srcfile"] = logging._srcfile  # type: ignore[attr-defined]
        self.watched = -1  # live handlers while records are lean; -1 while they are complete
        self._seen = -1  # live handlers at the last look

    def update(self) -> None:
        """Lean records if no other handler is alive, complete ones otherwise (O(1) if nothing changed)."""
        if LIVE_HANDLERS is None or len(LIVE_HANDLERS) == self._seen:
            return
        self._seen = len(LIVE_HANDLERS)
        if self._others_alive():
            self.complete()
        else:
            for name in self._full:
                setattr(logging, name, None if name == "_srcfile" else False)
            self.watched = self._seen

    def complete(self) -> None:
        """Every record from now on has all its details."""
        if self.watched >= 0:
            for name, value in self._full.items():
                setattr(logging, name, value)
            self.watched = self._seen = -1  # look again as the next item starts

    def _others_alive(self) -> bool:
        assert LIVE_HANDLERS is not None
        for ref in LIVE_HANDLERS:
            handler = ref()
            if handler is not None and handler is not self._ours and handler is not logging.lastResort:
                return True
        return False
