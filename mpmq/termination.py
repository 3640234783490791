"""SIGTERM in the parent means what Ctrl-C means: the run shuts down, then the process dies of it.

While a run is driven from the main thread, SIGTERM raises ``Terminated`` there, so the engine
stops its workers, ends its recording and calls ``final()`` exactly as for KeyboardInterrupt;
then the signal is raised again with the caller's own handler back in place, so the process
ends the way its parent asked (exit status -15), not with a traceback.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, NoReturn


class Terminated(BaseException):
    """SIGTERM arrived in the parent: shut down exactly as for Ctrl-C."""


def catch_sigterm() -> Any:
    """Turn SIGTERM into ``Terminated``; the handler it replaces (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return None


def restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def die_of_sigterm(previous: Any) -> NoReturn:
    """After a clean shutdown, die as asked: the caller's handler decides what SIGTERM does."""
    restore_sigterm(previous)
    signal.raise_signal(signal.SIGTERM)
    raise KeyboardInterrupt from None  # only reached when SIGTERM is handled elsewhere
