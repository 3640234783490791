"""A display recorded live redraws from the recording, with no workers started (issue 5, item 1).

For each real client (mppbar 0.1.5, mp4ansi 0.4.2, mpcurses 1.1.0) one program in
``fixtures/clients/replay_*.py`` runs twice on a pseudo-terminal, each time as a real
subprocess checked like every client run (exit 0 within the deadline, mpmq from this checkout,
no process left behind; see conftest.py and clientrun.py):

1. ``live``: the client's README-style example, ``execute(record=<tmp>/run.db)``, under each
   start method;
2. ``replay``: a fresh process builds the same client class with the same arguments and calls
   ``.replay(<tmp>/run.db)``, so the client's own code (mppbar's and mp4ansi's
   ``get_message``/``final``, mpcurses' loop over ``start_processes`` and
   ``message_queue.get(False)``) reads the recorded events.

The replay must return the live results, start no process at all, and leave the terminal
showing what the live run left on it. Both programs print the same text, so the final screens
(pyte's rendering) are compared line for line; see :func:`masked` for the one exception.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from clientrun import DEADLINE, UPSTREAM, Run, run_program

import replay

# two programs per test, each with its own deadline; the suite-wide per-test deadline
# (tests/conftest.py) must outlast both, so a hang is reported by the run with its screen and stacks
pytestmark = [pytest.mark.clients, pytest.mark.deadline(2 * DEADLINE + 30)]

# mpcurses writes these itself with datetime.now().strftime("%m/%d/%Y %H:%M:%S"): "Started" in
# its constructor, "Ended" in its teardown (see masked)
MPCURSES_TIME = re.compile(r"(?P<label>Started|Ended):(?P<space> *)(?P<time>\d\d/\d\d/\d{4} \d\d:\d\d:\d\d)")
MPCURSES_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"


def press_q_shown(display: list[str]) -> bool:
    return "[Press q to exit]" in display[0]


@dataclass(frozen=True)
class Case:
    client: str
    program: str
    reply: tuple | None = None
    clock_on_screen: bool = False  # shows times it reads from datetime.now() (see check_mpcurses_clock)

    @property
    def id(self) -> str:
        return self.client


CASES = [
    Case("mppbar", "replay_mppbar.py"),
    Case("mp4ansi", "replay_mp4ansi.py"),
    Case("mpcurses", "replay_mpcurses.py", reply=(press_q_shown, b"q"), clock_on_screen=True),
]


@dataclass
class Phases:
    live: Run
    replay: Run
    recording: Path

    def describe(self) -> str:
        return f"=== LIVE ===\n{self.live.describe()}\n\n=== REPLAY ===\n{self.replay.describe()}"


@pytest.fixture
def record_and_replay(client_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``record_and_replay(case, start_method) -> Phases``: the live run, then its replay."""
    if any(UPSTREAM.values()):
        pytest.skip("upstream mpmq has no execute(record=...) or replay()")

    def run(case: Case, start_method: str) -> Phases:
        recording = tmp_path / "run.db"
        runs = {}
        for phase in ("live", "replay"):
            workdir = tmp_path / phase  # each phase writes its own report
            workdir.mkdir()
            monkeypatch.setenv("MPMQ_CLIENT_PHASE", phase)
            monkeypatch.setenv("MPMQ_CLIENT_RECORDING", str(recording))
            # the replay runs under the same $MPMQ_START_METHOD: it must not matter, as it starts nothing
            runs[phase] = run_program(
                case.client,
                case.program,
                start_method,
                client_dir=client_dirs[case.client],
                workdir=workdir,
                reply=case.reply,
            )
            assert runs[phase].report["phase"] == phase, runs[phase].describe()
            if phase == "live" and case.clock_on_screen:
                leave_the_last_recorded_second(recording)
        return Phases(runs["live"], runs["replay"], recording)

    return run


def leave_the_last_recorded_second(recording: Path) -> None:
    """Wait (under 1 s) until the wall clock has left the second the last event was received in.

    A replay that read the wall clock instead of the frozen one would then show a later time
    than the frozen clock would, however quickly it follows the live run.
    """
    last = replay.load(recording).stamped[-1].received_at
    delay = math.floor(last) + 1 - time.time()
    if delay > 0:
        time.sleep(delay)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_live_display_redraws_from_its_recording_with_no_workers(case: Case, start_method: str, record_and_replay):
    phases = record_and_replay(case, start_method)
    live, replayed = phases.live, phases.replay

    # the witness works: it saw the live run start mpmq's workers (and, under fork, fork them) ...
    live_starts = live.report["starts"]
    assert live_starts["workers"], f"the live run started no worker?\n{phases.describe()}"
    assert live_starts["processes"] == live_starts["workers"], "the example starts no process of its own"
    assert (live_starts["forks"] > 0) == (start_method == "fork"), live_starts
    # ... and saw the replay start no process and fork nothing
    assert replayed.report["starts"] == {"processes": [], "workers": [], "forks": 0}, phases.describe()

    # the recorded results, exactly as the live run returned them
    assert replayed.results == live.results, phases.describe()
    assert replayed.report["results_repr"] == live.report["results_repr"], phases.describe()
    # durations come from the recorded event times: equal to the second, not just close
    assert replayed.report.get("durations") == live.report.get("durations"), phases.describe()
    durations = replayed.report.get("durations") or {}  # {offset: "H:MM:SS"}
    for offset, duration in durations.items():  # shown by mppbar's and mp4ansi's final(), compared below
        replayed.line(rf"^{offset}: .* - {re.escape(duration)} ")
    if durations:  # item 0 runs long enough that its duration is not 0:00:00
        assert set(durations.values()) != {"0:00:00"}, phases.describe()

    # the terminal ends up showing the same thing
    assert masked(replayed.screen) == masked(live.screen), screen_diff(live.screen, replayed.screen, phases)
    if case.reply is not None:  # mpcurses: its final screen, when "q" was pressed
        assert live.snapshot is not None and replayed.snapshot is not None, phases.describe()
        assert masked(replayed.snapshot) == masked(live.snapshot), screen_diff(live.snapshot, replayed.snapshot, phases)
    if case.clock_on_screen:
        check_mpcurses_clock(phases)


def masked(display: list[str]) -> list[str]:
    """The screen with mpcurses' "Started:"/"Ended:" times blanked out; every other line as is.

    mpcurses computes both with ``datetime.now()`` outside any event handler. "Started" is
    computed in its constructor, before replay() starts the frozen clock, so the replay shows
    the time it was replayed at: it can never equal the live one. "Ended" is computed in its
    teardown, inside replay() after the last event, so the frozen clock reads that event's live
    receive time, while the live run read the wall clock a moment after receiving it: they can
    differ across a second boundary. check_mpcurses_clock checks both times exactly instead.
    mppbar and mp4ansi print only durations from recorded times: nothing of theirs is masked.
    """
    return [MPCURSES_TIME.sub(r"\g<label>:\g<space><time>", row).rstrip() for row in display]


def check_mpcurses_clock(phases: Phases) -> None:
    """Each time mpcurses shows in the replay is the one its clock should read there."""
    live = shown_times(phases.live)
    replayed = shown_times(phases.replay)
    recorded = replay.load(phases.recording)
    last = recorded.stamped[-1]
    offset = datetime.timedelta(seconds=recorded.header.utc_offset or 0)
    # teardown runs after the last event: under the frozen clock, datetime.now() is that event's
    # live receive time, in the live run's time zone (its recorded UTC offset)
    frozen = datetime.datetime.fromtimestamp(last.received_at, datetime.timezone.utc).replace(tzinfo=None) + offset
    assert replayed["Ended"] == frozen.replace(microsecond=0), (replayed, frozen, phases.describe())
    # ... which the live teardown read a moment later on the wall clock
    assert datetime.timedelta(0) <= live["Ended"] - replayed["Ended"] <= datetime.timedelta(seconds=2), (
        live,
        replayed,
        phases.describe(),
    )
    # the constructor runs before any event, on the replaying machine's own clock
    assert replayed["Started"] >= live["Ended"], (live, replayed, phases.describe())


def shown_times(run: Run) -> dict[str, datetime.datetime]:
    screen = run.snapshot if run.snapshot is not None else run.screen
    found = {match["label"]: match["time"] for row in screen for match in MPCURSES_TIME.finditer(row)}
    assert set(found) == {"Started", "Ended"}, f"mpcurses' times are not on the screen\n{run.describe()}"
    return {label: datetime.datetime.strptime(text, MPCURSES_TIME_FORMAT) for label, text in found.items()}


def screen_diff(live: list[str], replayed: list[str], phases: Phases) -> str:
    rows = [
        f"{number:2}| live:   {a}\n  | replay: {b}"
        for number, (a, b) in enumerate(zip(masked(live), masked(replayed)))
        if a != b
    ]
    return "the replay's screen differs from the live one:\n" + "\n".join(rows) + "\n\n" + phases.describe()
