"""Log records in a worker without the details nobody there reads.

A worker forwards a record's time, level, logger name, message and exception text. Making a
record also looks up the caller's file, line and function (a stack walk), the thread, the
process and the asyncio task: about 2 us of the 5 a ``logger.debug`` costs, spent on fields
only another handler or formatter could read. While mpmq's handler is the only live handler
in the worker (``logging.lastResort`` aside: it prints the message alone), those lookups are
switched off, the way the logging HOWTO's "Optimization" section describes.

The moment any other handler is made, they are switched back on, before that handler can
see a record: so a handler of the user's own, made before or during an item, always sees
complete records. Knowing which handlers are alive takes two private names of ``logging``
(there since Python 2.7: the list ``shutdown`` flushes and the function that adds to it);
without them, records simply keep every detail.
"""

from __future__ import annotations

import logging
from typing import Any

LIVE_HANDLERS: list | None = getattr(logging, "_handlerList", None)  # weakrefs to live handlers
_ADD_HANDLER_REF: Any = getattr(logging, "_addHandlerRef", None)  # Handler.__init__ calls it
_SWITCHES = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")
_watcher: LeanRecords | None = None


class LeanRecords:
    """Switches logging's per-record lookups off while ``ours`` is the only handler alive."""

    def __init__(self, ours: logging.Handler) -> None:
        global _watcher
        self._ours = ours
        self._full: dict[str, Any] = {name: getattr(logging, name) for name in _SWITCHES if hasattr(logging, name)}
        self._full["_srcfile"] = logging._srcfile  # type: ignore[attr-defined]
        self.lean = False
        self.seen = -1  # live handlers at the last look
        self.usable = LIVE_HANDLERS is not None and _ADD_HANDLER_REF is not None
        if self.usable:
            _watcher = self
            logging._addHandlerRef = _handler_made  # type: ignore[attr-defined]

    def update(self) -> None:
        """Lean records if no other handler is alive (looked at only when handlers came or went)."""
        if not self.usable or len(LIVE_HANDLERS) == self.seen:  # type: ignore[arg-type]
            return
        self.seen = len(LIVE_HANDLERS)  # type: ignore[arg-type]
        if self._others_alive():
            self.complete()
        elif not self.lean:
            for name in self._full:
                setattr(logging, name, None if name == "_srcfile" else False)
            self.lean = True

    def complete(self) -> None:
        """Every record from now on has all its details."""
        if self.lean:
            for name, value in self._full.items():
                setattr(logging, name, value)
            self.lean = False
            self.seen = -1  # look again as the next item starts

    def _others_alive(self) -> bool:
        for ref in LIVE_HANDLERS or ():
            handler = ref()
            if handler is not None and handler is not self._ours and handler is not logging.lastResort:
                return True
        return False


def _handler_made(handler: logging.Handler) -> None:
    """``logging._addHandlerRef``, which every new handler calls: records are complete again."""
    _ADD_HANDLER_REF(handler)
    if _watcher is not None:
        _watcher.complete()
