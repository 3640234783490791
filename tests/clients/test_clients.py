"""The real mpcurses 1.1.0, mppbar 0.1.5 and mp4ansi 0.4.2 run unmodified against this mpmq.

One table of example programs (``fixtures/clients/``), each run under every start method on a
pseudo-terminal; see conftest.py for how the clients are installed and run. Every run must
exit 0 within its deadline, import mpmq from this checkout, and leave no process behind; each
case then checks the results the program got and what a person would see on the screen.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from clientrun import DEADLINE, Run, installer, run_in_pty

# the suite-wide per-test deadline (tests/conftest.py) must outlast a program's own deadline,
# so that a hang is reported by the run with its screen and stacks
pytestmark = [pytest.mark.clients, pytest.mark.deadline(DEADLINE + 30)]

BAR = "■" * 50  # a full progress1bar bar


# -- mppbar 0.1.5 (MPmq 0.7.0 subclass: overrides get_message, complete_process, process_message)


def check_mppbar_example1(run: Run) -> None:
    aliases, totals = ["Smith", "Jones", "Brown", "Davis"], [3, 4, 5, 6]
    run.assert_item_order(totals)
    for index, (alias, total) in enumerate(zip(aliases, totals)):
        # every "processed item" message reached the right bar: it filled up, counting to its total
        assert f"100% {total}/{total} {alias}" in run.text, run.describe()
        # final(): every bar complete, named by its "worker is" message
        run.line(rf"^{index}: Processing complete {alias}$")
    run.line(r"^>> 4 workers processed a total of 18 items$")


def check_mppbar_example2(run: Run) -> None:
    aliases, totals = ["Smith", "Jones", "Brown", "Davis", "Lopez"], [3, 4, 5, 6, 7]
    run.assert_item_order(totals)
    for index, alias in enumerate(aliases):
        assert re.search(rf"\|{BAR}\|100%\s+{alias}", run.text), run.describe()
        run.line(rf"^{index}: Processing complete {alias}$")
    run.line(r"^>> 5 workers processed a total of 25 items$")


def check_mppbar_example3(run: Run) -> None:
    # which worker takes which totals off the shared queue varies; together they took all 12
    assert len(run.results) == 3 and sum(run.results) == 117, run.describe()
    completed = [run.line(rf"^{index}: Processing complete( \[(?P<count>\d+)\])?") for index in range(3)]
    # each bar counts the totals it completed between "reset-mppbar" messages
    assert sum(int(match["count"] or 0) for match in completed) == 12, run.describe()
    run.line(r"^>> 3 workers processed a total of 117 items$")


def check_mppbar_partial(run: Run) -> None:
    run.assert_item_order(["not found", "found at 2", "not found"])
    assert "3/8 Jones" in run.text and "100% 8/8" not in run.text, run.describe()
    for index, alias in enumerate(["Smith", "Jones", "Brown"]):
        run.line(rf"^{index}: Processing complete {alias}$")


# -- mp4ansi 0.4.2 (written for mpmq 0.2.0: process_non_control_message, finished_processes,
#    results in process_data[offset]['result'])


def check_mp4ansi_example1(run: Run) -> None:
    names, totals = ["Ada Smith", "Bob Jones", "Cy Brown", "Di Davis", "Ed Lopez"], [3, 4, 5, 6, 7]
    assert run.results == totals, run.describe()  # read back from process_data[i]['result']
    for item in run.report["process_data"]:
        assert set(item) == {"name", "total", "pause", "result"}, "process_data changed beyond 'result'"
    for index, (name, total) in enumerate(zip(names, totals)):
        # each line ends on its item's last message, then the duration from finished_processes
        last = f"processed {name} {total - 1}" if not run.upstream else ".*"  # 0.2.0 shows its own last log
        run.line(rf"^{index}: {last} - \d+:\d\d:\d\d$")
    run.line(r"^Total names processed 25$")


def check_mp4ansi_example2(run: Run) -> None:
    processors, totals = ["Smith", "Jones", "Brown", "Davis", "Lopez"], [3, 4, 5, 6, 7]
    assert run.results == totals, run.describe()
    for index, (processor, total) in enumerate(zip(processors, totals)):
        assert re.search(rf"{index}: Processing \|{BAR}\| 100% 0*{total}/0*{total} {processor}", run.text), (
            run.describe()
        )
        run.line(rf"^{index}: Finished processing names - \d+:\d\d:\d\d {processor}$")
    run.line(r"^Total names processed 25$")


# -- mpcurses 1.1.0 (MPmq 0.7.0 subclass: runs its own loop over start_processes,
#    message_queue.get(False), process_control_message, NoActiveProcesses)


def press_q_shown(display: list[str]) -> bool:
    return "[Press q to exit]" in display[0]


def check_mpcurses_quickstart(run: Run) -> None:
    sizes = [12, 8, 4]
    run.assert_item_order(sizes)
    screen = run.snapshot
    assert screen is not None, run.describe()
    run.line(r"^ \[Press q to exit\] .*mpcurses_quickstart\.py$", screen)
    for index, size in enumerate(sizes):
        # the row shows the worker, its size, and the last item it logged
        run.line(rf"^ Worker-{index} {size:<3} Worker-{index}-{size - 1:03d}$", screen)


def check_mpcurses_queued(run: Run) -> None:
    sizes = [8, 6, 4, 3, 2]
    run.assert_item_order(sizes)
    screen = run.snapshot
    assert screen is not None, run.describe()
    run.line(r"^ \[Press q to exit\] +mpcurses queued example$", screen)
    for index, size in enumerate(sizes):
        # process_data made by get_process_data; "blocks" came from the replaced shared_data
        run.line(rf"^ item-{index}   {size:03d}   finished {size} blocks$", screen)
    run.line(rf"^ Blocks processed: {sum(sizes):03d}$", screen)  # every message counted once
    # counters read from active_processes, process_queue.qsize(), completed_processes
    run.line(r"^   Running: 0$", screen)
    run.line(r"^    Queued: 0$", screen)
    run.line(r"^ Completed: 5$", screen)


def check_mpcurses_nolayout(run: Run) -> None:
    failure = {"exception": "ValueError", "message": "bob cannot be processed"}
    run.assert_item_order(["hello, ann", failure, "hello, cat"])
    raised = run.report["raised"]
    assert raised is not None, run.describe()
    # upstream names offsets by arrival position, not by item (the same bug as its result order)
    offset = r"\d+" if run.upstream else "1"
    assert re.search(rf"the process at offset {offset} had errors", raised["message"]), run.describe()


@dataclass(frozen=True)
class Case:
    client: str
    program: str
    check: Callable[[Run], None]
    reply: tuple[Callable[[list[str]], bool], bytes] | None = None

    @property
    def id(self) -> str:
        return Path(self.program).stem


CASES = [
    Case("mppbar", "mppbar_example1.py", check_mppbar_example1),
    Case("mppbar", "mppbar_example2.py", check_mppbar_example2),
    Case("mppbar", "mppbar_example3.py", check_mppbar_example3),
    Case("mppbar", "mppbar_partial.py", check_mppbar_partial),
    Case("mp4ansi", "mp4ansi_example1.py", check_mp4ansi_example1),
    Case("mp4ansi", "mp4ansi_example2.py", check_mp4ansi_example2),
    Case("mpcurses", "mpcurses_quickstart.py", check_mpcurses_quickstart, reply=(press_q_shown, b"q")),
    Case("mpcurses", "mpcurses_queued.py", check_mpcurses_queued, reply=(press_q_shown, b"q")),
    Case("mpcurses", "mpcurses_nolayout.py", check_mpcurses_nolayout),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_client_example(case: Case, start_method: str, run_client) -> None:
    run = run_client(case.client, case.program, start_method, reply=case.reply)
    case.check(run)


@pytest.mark.parametrize("client", list(installer.CLIENTS))
def test_client_installed_with_its_own_pins_and_no_mpmq(client: str, client_dirs: dict[str, Path]) -> None:
    directory = client_dirs[client]
    versions = installer.installed_versions(directory)
    name, _, version = installer.CLIENTS[client].partition("==")
    assert versions[name] == version
    assert "mpmq" not in versions and not (directory / "mpmq").exists()
    assert installer.unmet_requirements(directory) == []


HANGS = """
import multiprocessing, time

def wait_forever():
    time.sleep(600)

if __name__ == "__main__":
    multiprocessing.Process(target=wait_forever).start()
    print("waiting", flush=True)
    wait_forever()
"""


def test_a_hung_program_fails_with_every_processs_stack(tmp_path: Path) -> None:
    program = tmp_path / "hangs.py"
    program.write_text(HANGS)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", "TERM": "xterm-256color"}
    outcome = run_in_pty([sys.executable, str(program)], env=env, cwd=tmp_path, deadline=1.0)
    text = outcome["output"].decode(errors="replace")
    assert outcome["timed_out"] and outcome["returncode"] != 0
    # both processes dump at once, so their lines may interleave: look for words, not lines
    assert "Fatal Python error" in text and "wait_forever" in text, text
    assert outcome["leftovers"] == []
