"""0.7.0's ``queue_handler`` decorator, for code that used it on its own.

It runs a function with its log records sent to a queue as ``#<offset>-<text>`` strings
(0.7.0's format and prefixes) and its result put on a result queue. ``MPmq`` itself does not
use it: workers send typed events instead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from .compat import prefixed


class QueueHandler(logging.Handler):
    """Puts ``#<offset>-<prefixed message>`` on ``message_queue`` for each record."""

    def __init__(self, message_queue: Any, offset: int) -> None:
        super().__init__()
        self.message_queue = message_queue
        self.offset = offset

    def emit(self, record: logging.LogRecord) -> None:
        self.message_queue.put(f"#{self.offset}-{prefixed(record.levelno, record.getMessage())}")


def queue_handler(function: Callable) -> Callable:
    """Decorate ``function`` so its logs go to ``message_queue`` and its result to ``result_queue``."""

    @functools.wraps(function)
    def _queue_handler(*args: Any, **kwargs: Any) -> Any:
        offset = kwargs.pop("offset", 0)
        message_queue = kwargs.pop("message_queue", None)
        result_queue = kwargs.pop("result_queue", None)
        root = logging.getLogger()
        handler = QueueHandler(message_queue, offset) if message_queue is not None else None
        if handler is not None:
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
        result: Any = None
        try:
            result = function(*args, **kwargs)
            return result
        except Exception as exception:
            result = exception
            if message_queue is not None:
                message_queue.put(f"#{offset}-ERROR: {exception}")
                message_queue.put(f"#{offset}-ERROR")
        finally:
            if result_queue is not None:
                result_queue.put({"offset": offset, "result": result})
            if handler is not None:
                root.removeHandler(handler)
                message_queue.put(f"#{offset}-DONE")

    return _queue_handler
