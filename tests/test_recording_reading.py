"""Reading a recording quickly must not change what is read (issue 18, "reading is as fast as
writing"): the fast paths give exactly what the plain ones gave."""

from __future__ import annotations

import datetime
import random

import pytest

from mpmq.recording import RunInfo
from replay.logs import LogFormatter


@pytest.mark.parametrize("utc_offset", [0, 7200, -34200])
def test_log_times_are_those_datetime_gives(utc_offset):
    """The formatter works out each second once; its times are datetime's, rounding included."""
    header = RunInfo(id=1, utc_offset=utc_offset)
    zone = datetime.timezone(datetime.timedelta(seconds=utc_offset))
    rng = random.Random(18)
    stamps = [1_714_564_800 + rng.random() * 86_400 for _ in range(20_000)]
    stamps += [1_714_564_800.9999995, 1_714_564_800.0000005, 1_714_564_800.0004995, 1_714_564_859.9999999,
               1_714_564_800.0, 0.5, 1.9999996]  # fmt: skip
    formatter = LogFormatter(header)
    for stamp in stamps:
        assert formatter.when(stamp) == datetime.datetime.fromtimestamp(stamp, zone).strftime("%H:%M:%S.%f")[:-3]


def test_a_later_attempt_s_lines_say_which_attempt_they_are():
    from mpmq.events import Log

    log = Log(offset=3, pid=1, time=1_714_564_800.25, level=30, logger="w", message="odd\nsecond")
    formatter = LogFormatter(RunInfo(id=1, utc_offset=0))
    assert formatter(log) == "12:00:00.250 [3] WARNING w: odd\n    second"
    assert formatter(log, 2) == "12:00:00.250 [3, attempt 2] WARNING w: odd\n    second"
