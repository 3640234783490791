"""Recorded log lines, filtered and formatted for a terminal (``mpmq-replay logs``)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator

from mpmq.events import Error, Log, Started
from mpmq.recording import Recording, RunInfo

NAMES = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}


def parse_level(text: str) -> int:
    """A level name (``warning``) or number (``30``); ValueError for anything else."""
    name = text.strip().upper()
    if name in NAMES:
        return NAMES[name]
    if name.isdigit():
        return int(name)
    raise ValueError(f"unknown log level {text!r}: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL or a number")


def format_log(log: Log, header: RunInfo, attempt: int = 1) -> str:
    """``HH:MM:SS.mmm [offset] LEVEL logger: message``, time on the live run's local clock.

    Continuation lines of a multi-line message, and a logged exception, are indented under it.
    A retried item's later attempts say which they are: ``[offset, attempt 2]`` (issue 19).
    """
    text = log.message + (f"\n{log.exc_text.rstrip()}" if log.exc_text else "")
    first, *rest = text.split("\n")
    where = f"{_when(log.time, header)} {_item(log.offset, attempt)}"
    line = f"{where} {logging.getLevelName(log.level)} {log.logger}: {first}"
    return line + "".join(f"\n    {more}" for more in rest)


def format_retry(error: Error, header: RunInfo, attempt: int) -> str:
    """An attempt that failed and was run again, as a WARNING line of its own (issue 19)."""
    first = error.message.split("\n", 1)[0]
    where = f"{_when(error.time, header)} {_item(error.offset, attempt)}"
    return f"{where} WARNING mpmq: attempt {attempt} failed, retrying: {error.type}: {first}"


def _when(time: float, header: RunInfo) -> str:
    zone = datetime.timezone(datetime.timedelta(seconds=header.utc_offset or 0))
    return datetime.datetime.fromtimestamp(time, zone).strftime("%H:%M:%S.%f")[:-3]


def _item(offset: int, attempt: int) -> str:
    return f"[{offset}]" if attempt == 1 else f"[{offset}, attempt {attempt}]"


def log_lines(recording: Recording, header: RunInfo, offsets: Iterable[int] | None = None,
              level: int = 0) -> Iterator[str]:
    """``logs`` formatted, with each retried attempt's failure where it happened (issue 19)."""
    wanted = list(offsets) if offsets is not None else None
    attempt: dict[int, int] = {}
    for _, _, event in recording.events(header.id, offsets=wanted):
        kind = type(event)
        if kind is Log:
            if event.level >= level:
                yield format_log(event, header, attempt.get(event.offset, 1))
        elif kind is Started:
            attempt[event.offset] = event.attempt
        elif kind is Error and event.retrying:
            failed = attempt.get(event.offset, 1)
            attempt[event.offset] = failed + 1  # its next start may not have been recorded yet
            if level <= logging.WARNING:
                yield format_retry(event, header, failed)


def logs(recording: Recording, header: RunInfo, offsets: Iterable[int] | None = None, level: int = 0) -> Iterator[Log]:
    """The run's log events at ``level`` or above, in receive order, streamed."""
    wanted = list(offsets) if offsets is not None else None
    for _, _, event in recording.events(header.id, offsets=wanted):
        if type(event) is Log and event.level >= level:
            yield event
