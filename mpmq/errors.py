"""Exceptions users see: bad input, failed items, and failures the parent observed itself."""

from __future__ import annotations


class NoActiveProcesses(Exception):
    """Raised by ``process_control_message`` once nothing is queued or running (0.7.0's signal)."""


class ItemFailed(Exception):
    """Base of the failures the parent reports for an item (see ``Error`` events).

    ``remote_type`` is the qualified name of the exception in the worker, ``remote_traceback``
    its formatted traceback.
    """

    def __init__(self, message: str, *, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type or f"{type(self).__module__}.{type(self).__qualname__}"
        self.remote_traceback = remote_traceback


class RemoteError(ItemFailed):
    """An exception raised in a worker that could not be rebuilt in the parent.

    It carries the remote type, message and traceback text, so nothing is lost when an
    exception cannot be pickled or its ``__init__`` cannot be called again.
    """

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.args[0]}"


class WorkerDied(ItemFailed):
    """The worker running the item exited (crash, signal, ``os._exit``, OOM killer)."""


class ItemTimeout(ItemFailed, TimeoutError):
    """The item ran longer than ``item_timeout`` and its worker was killed."""


class ItemCancelled(ItemFailed):
    """The item never ran: ``stop_on_error`` stopped the run after another item failed."""


class UnpicklableResult(ItemFailed):
    """The item's function returned a value that cannot be sent to the parent."""


class RunFailed(Exception):
    """``execute(raise_if_error=True)`` found failed items.

    The message keeps 0.7.0's wording (``the process at offset 1, 3 had errors``);
    ``errors`` maps each failed offset to its exception, whose ``remote_traceback`` (or
    ``__cause__``) holds the worker's traceback.
    """

    def __init__(self, errors: dict[int, BaseException]) -> None:
        offsets = ", ".join(str(offset) for offset in errors)
        super().__init__(f"the process at offset {offsets} had errors")
        self.errors = errors

    @property
    def tracebacks(self) -> dict[int, str]:
        return {offset: getattr(exc, "remote_traceback", "") for offset, exc in self.errors.items()}


class RemoteTraceback(Exception):
    """Shows a worker's traceback as the ``__cause__`` of a rebuilt exception (as
    ``concurrent.futures`` does), so printing the exception prints where it really happened."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


# Types of the failures the parent reports on a worker's behalf, as written in Error events.
PARENT_ERROR_TYPES = {
    cls.__module__ + "." + cls.__qualname__: cls
    for cls in (WorkerDied, ItemTimeout, ItemCancelled, UnpicklableResult, RemoteError)
}


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
