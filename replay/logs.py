"""Recorded log lines, filtered and formatted for a terminal (``mpmq-replay logs``)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator

from mpmq.events import Log
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


def format_log(log: Log, header: RunInfo) -> str:
    """``HH:MM:SS.mmm [offset] LEVEL logger: message``, time on the live run's local clock.

    Continuation lines of a multi-line message, and a logged exception, are indented under it.
    """
    zone = datetime.timezone(datetime.timedelta(seconds=header.utc_offset or 0))
    when = datetime.datetime.fromtimestamp(log.time, zone).strftime("%H:%M:%S.%f")[:-3]
    text = log.message + (f"\n{log.exc_text.rstrip()}" if log.exc_text else "")
    first, *rest = text.split("\n")
    line = f"{when} [{log.offset}] {logging.getLevelName(log.level)} {log.logger}: {first}"
    return line + "".join(f"\n    {more}" for more in rest)


def logs(recording: Recording, header: RunInfo, offsets: Iterable[int] | None = None, level: int = 0) -> Iterator[Log]:
    """The run's log events at ``level`` or above, in receive order, streamed."""
    wanted = list(offsets) if offsets is not None else None
    for _, _, event in recording.events(header.id, offsets=wanted):
        if type(event) is Log and event.level >= level:
            yield event
