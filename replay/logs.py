"""Recorded log lines, filtered and formatted for a terminal (``mpmq-replay logs``)."""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Iterable, Iterator
from typing import TextIO

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
    A later attempt of a retried item says which it is: ``[offset, attempt 2]``.
    """
    return LogFormatter(header)(log, attempt)


class LogFormatter:
    """``format_log`` for many lines of one run: the clock's hours, minutes and seconds are
    worked out once per second, not once per line (issue 18: an item's 250,000 lines of a
    1,000,000-event recording in under a second)."""

    def __init__(self, header: RunInfo) -> None:
        self._zone = datetime.timezone(datetime.timedelta(seconds=header.utc_offset or 0))
        self._seconds: dict[float, str] = {}
        self._levels: dict[int, str] = {}

    def when(self, timestamp: float) -> str:
        """``datetime.fromtimestamp(timestamp, zone).strftime("%H:%M:%S.%f")[:-3]``: its
        microseconds rounded half to even as datetime rounds them, then cut to milliseconds."""
        fraction, whole = math.modf(timestamp)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        elif micros < 0:
            whole, micros = whole - 1, micros + 1_000_000
        clock = self._seconds.get(whole)
        if clock is None:
            if len(self._seconds) > 10_000:
                self._seconds.clear()
            clock = self._seconds[whole] = datetime.datetime.fromtimestamp(whole, self._zone).strftime("%H:%M:%S.")
        return clock + _MILLIS[micros // 1000]

    def __call__(self, log: Log, attempt: int = 1) -> str:
        level = self._levels.get(log.level)
        if level is None:
            level = self._levels[log.level] = logging.getLevelName(log.level)
        where = f"[{log.offset}]" if attempt == 1 else f"[{log.offset}, attempt {attempt}]"
        line = f"{self.when(log.time)} {where} {level} {log.logger}: "
        text = log.message
        if log.exc_text:
            text += f"\n{log.exc_text.rstrip()}"
        if "\n" not in text:
            return line + text
        first, *rest = text.split("\n")
        return line + first + "".join(f"\n    {more}" for more in rest)


_MILLIS = [f"{ms:03d}" for ms in range(1000)]


def format_retry(error: Error, formatter: LogFormatter, attempt: int) -> str:
    """An attempt that failed and was run again, as a WARNING line of its own (issue 19)."""
    first = error.message.split("\n", 1)[0]
    where = f"[{error.offset}]" if attempt == 1 else f"[{error.offset}, attempt {attempt}]"
    when = formatter.when(error.time)
    return f"{when} {where} WARNING mpmq: attempt {attempt} failed, retrying: {error.type}: {first}"


def log_lines(recording: Recording, header: RunInfo, offsets: Iterable[int] | None = None,
              level: int = 0) -> Iterator[str]:
    """``logs`` formatted, with each retried attempt's failure where it happened (issue 19)."""
    wanted = list(offsets) if offsets is not None else None
    formatter = LogFormatter(header)
    attempt: dict[int, int] = {}
    for _, _, events in recording.batches(header.id, offsets=wanted):
        for event in events:
            kind = type(event)
            if kind is Log:
                if event.level >= level:
                    yield formatter(event, attempt.get(event.offset, 1))
            elif kind is Started:
                if event.attempt != 1 or event.offset in attempt:
                    attempt[event.offset] = event.attempt
            elif kind is Error and event.retrying:
                failed = attempt.get(event.offset, 1)
                attempt[event.offset] = failed + 1  # its next start may not have been recorded yet
                if level <= logging.WARNING:
                    yield format_retry(event, formatter, failed)


def logs(recording: Recording, header: RunInfo, offsets: Iterable[int] | None = None, level: int = 0) -> Iterator[Log]:
    """The run's log events at ``level`` or above, in receive order, streamed."""
    wanted = list(offsets) if offsets is not None else None
    for _, _, events in recording.batches(header.id, offsets=wanted):
        for event in events:
            if type(event) is Log and event.level >= level:
                yield event


def write_logs(recording: Recording, header: RunInfo, out: TextIO, offsets: Iterable[int] | None = None,
               level: int = 0) -> None:
    """``log_lines`` written to ``out`` a few thousand lines at a time."""
    lines: list[str] = []
    for line in log_lines(recording, header, offsets, level):
        lines.append(line)
        if len(lines) >= 4096:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")
