"""Run one client example program on a pseudo-terminal and collect what the tests check.

Used by conftest.py (the fixtures) and test_clients.py (the checks); see conftest.py's
docstring for the whole picture.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyte
import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "fixtures" / "clients"
OUR_MPMQ = REPO / "mpmq"
ROWS, COLS = 40, 160  # wider than mp4ansi's 120-character status lines plus their index, so nothing wraps
DEADLINE = float(os.environ.get("MPMQ_CLIENT_DEADLINE", "60"))
START_METHODS = os.environ.get("MPMQ_CLIENT_START_METHODS", "fork,spawn").split(",")
UPSTREAM = {"0.7.0": os.environ.get("MPMQ_CLIENTS_UPSTREAM"), "0.2.0": os.environ.get("MPMQ_CLIENTS_UPSTREAM_02")}
PINNED_MPMQ = {"mpcurses": "0.7.0", "mppbar": "0.7.0", "mp4ansi": "0.2.0"}  # the mpmq each client was written for

_ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78cDEHMNZ])")


def _load_installer():
    spec = importlib.util.spec_from_file_location("mpmq_client_install", PROGRAMS / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


installer = _load_installer()


def upstream_for(client: str) -> str | None:
    """The upstream mpmq directory to test ``client`` against, or None for this checkout's."""
    if not any(UPSTREAM.values()):
        return None
    directory = UPSTREAM[PINNED_MPMQ[client]]
    if not directory:
        pytest.skip(f"{client} needs mpmq {PINNED_MPMQ[client]}: set its MPMQ_CLIENTS_UPSTREAM* variable")
    return directory


@dataclass
class Run:
    """One finished run of an example program, and what the test checks about it."""

    program: str
    start_method: str
    upstream: str | None
    returncode: int | None
    output: bytes
    screen: list[str]  # the terminal's final screen, as pyte renders it
    snapshot: list[str] | None  # the screen when the reply (mpcurses' "q") was sent
    report: dict
    timed_out: bool = False
    leftovers: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything the program wrote, escape sequences removed: for checks on the stream."""
        return _ANSI.sub(b"", self.output).replace(b"\r", b"").decode("utf-8", "replace")

    @property
    def results(self) -> list:
        return self.report.get("results")

    def describe(self) -> str:
        timed_out = f" (TIMED OUT after {DEADLINE}s)" if self.timed_out else ""
        lines = [f"{self.program} under {self.start_method}: exit {self.returncode}{timed_out}"]
        if self.snapshot:
            lines += ["--- screen when the reply was sent ---", *_trim(self.snapshot)]
        lines += ["--- final screen ---", *_trim(self.screen)]
        lines += ["--- output, escapes removed (last 6000 chars) ---", self.text[-6000:]]
        if self.leftovers:
            lines += ["--- processes left behind ---", *self.leftovers]
        return "\n".join(lines)

    def assert_item_order(self, expected: list) -> None:
        """Results in item order; upstream returns arrival order, so there only the multiset counts."""
        if self.upstream:
            assert sorted(map(repr, self.results)) == sorted(map(repr, expected)), self.describe()
        else:
            assert self.results == expected, self.describe()

    def line(self, pattern: str, screen: list[str] | None = None) -> re.Match:
        """The first screen line matching ``pattern``; fails showing the run if there is none."""
        for row in self.screen if screen is None else screen:
            match = re.search(pattern, row.rstrip())
            if match:
                return match
        raise AssertionError(f"no screen line matches {pattern!r}\n{self.describe()}")


def _trim(display: list[str]) -> list[str]:
    """Non-blank rows, numbered, so positions stay readable in a failure message."""
    return [f"{number:2}|{row.rstrip()}" for number, row in enumerate(display) if row.strip()]


def run_program(
    client: str,
    program: str,
    start_method: str,
    *,
    client_dir: Path,
    workdir: Path,
    reply: tuple[Callable[[list[str]], bool], bytes] | None = None,
) -> Run:
    """Run ``fixtures/clients/<program>`` with ``client`` importable and mpmq from this checkout."""
    upstream = upstream_for(client)
    path = [str(client_dir)]
    if upstream:
        shim = workdir / "upstream"
        shim.mkdir(exist_ok=True)
        if not (shim / "mpmq").exists():
            (shim / "mpmq").symlink_to(Path(upstream, "mpmq").resolve())
        path.insert(0, str(shim))
    report_path = workdir / f"{Path(program).stem}.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key not in ("LINES", "COLUMNS")
    }
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONFAULTHANDLER": "1",  # SIGABRT at the deadline dumps every process's stacks
            "TERM": "xterm-256color",  # mpcurses defines colour pairs up to 239
            "MPMQ_START_METHOD": start_method,
            "MPMQ_CLIENT_REPORT": str(report_path),
        }
    )
    argv = [sys.executable, str(PROGRAMS / program)]
    outcome = run_in_pty(argv, env=env, cwd=workdir, deadline=DEADLINE, reply=reply)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    done = Run(program=program, start_method=start_method, upstream=upstream, report=report, **outcome)
    check_every_run(done, client, client_dir)
    return done


def check_every_run(run: Run, client: str, client_dir: Path) -> None:
    assert not run.timed_out, run.describe()
    assert run.returncode == 0, run.describe()
    assert run.report, f"the program wrote no report\n{run.describe()}"
    modules = run.report["modules"]
    mpmq_file = Path(modules["mpmq"]).resolve()
    expected = Path(run.upstream, "mpmq").resolve() if run.upstream else OUR_MPMQ
    assert mpmq_file.is_relative_to(expected), f"mpmq came from {mpmq_file}, not {expected}\n{run.describe()}"
    client_file = Path(modules[client]).resolve()
    assert client_file.is_relative_to(client_dir.resolve()), f"{client} came from {client_file}"
    assert run.report["start_method"] == run.start_method
    assert not run.leftovers, f"processes outlived the program\n{run.describe()}"


# -- the pseudo-terminal -------------------------------------------------------------------------

QUIET = 0.3  # a screen is "drawn" once no output came for this long


def run_in_pty(
    argv: list[str],
    *,
    env: dict,
    cwd: Path,
    deadline: float,
    reply: tuple[Callable[[list[str]], bool], bytes] | None = None,
) -> dict:
    """Run ``argv`` on a fresh pty in a session of its own; every wait is bounded by ``deadline``.

    ``reply=(ready, keys)`` types ``keys`` once ``ready(screen)`` holds and the screen is quiet
    (mpcurses waits for "q" on its final screen), and again every 2 s until the program exits.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    chunks: list[bytes] = []
    try:
        process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True
        )
    finally:
        os.close(slave)
    end = time.monotonic() + deadline
    last_output = time.monotonic()
    seen_ready = replied = None
    snapshot = None
    timed_out = False

    def read(wait: float) -> bool:
        """Read what is there within ``wait`` seconds; False on timeout or end of output."""
        nonlocal last_output
        if not select.select([master], [], [], wait)[0]:
            return False
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every process holding the terminal has closed it
            data = b""
        if data:
            chunks.append(data)
            stream.feed(data)
            last_output = time.monotonic()
        return bool(data)

    try:
        while True:
            now = time.monotonic()
            if now >= end:
                timed_out = True
                _dump_stacks_and_kill(process, read)
                break
            exited = process.poll() is not None
            got = read(min(0.1, end - now))
            if exited and not got:
                break  # exited and drained (children still holding the pty do not keep us)
            if reply is None or exited:
                continue
            ready, keys = reply
            now = time.monotonic()
            if replied is None:
                if seen_ready is None and ready(screen.display):
                    seen_ready = now
                if seen_ready is not None and (now - last_output >= QUIET or now - seen_ready > 2):
                    snapshot = list(screen.display)
                    os.write(master, keys)
                    replied = now
            elif now - replied > 2:
                os.write(master, keys)
                replied = now
        try:
            returncode = process.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            _dump_stacks_and_kill(process, read)
            timed_out = True
            returncode = process.wait(timeout=10)
        leftovers = _reap_session(process.pid)
    except BaseException:
        # e.g. the suite's own per-test deadline interrupted us: take the program down with us
        _kill_session(process)
        raise
    finally:
        os.close(master)
    return {
        "returncode": returncode,
        "output": b"".join(chunks),
        "screen": list(screen.display),
        "snapshot": snapshot,
        "timed_out": timed_out,
        "leftovers": leftovers,
    }


def _dump_stacks_and_kill(process: subprocess.Popen, read: Callable[[float], bool]) -> None:
    """At the deadline: SIGABRT makes faulthandler print every process's stacks, then SIGKILL."""
    for sig, grace in ((signal.SIGABRT, 3.0), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        until = time.monotonic() + grace
        while time.monotonic() < until:
            if not read(0.1) and not _session_members(process.pid):
                while read(0.05):
                    pass  # every process is gone: read their last words
                break


def _kill_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    for pid, _ in _session_members(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _session_members(sid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes of session ``sid``, with their command lines."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                members.append((int(entry.name), command.strip()))
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
    return members


def _reap_session(sid: int, grace: float = 5.0) -> list[str]:
    """Wait up to ``grace`` for the program's session to empty; kill and report what stays."""
    if not Path("/proc/self/stat").exists():
        return []
    until = time.monotonic() + grace
    members = _session_members(sid)
    while members and time.monotonic() < until:
        time.sleep(0.05)
        members = _session_members(sid)
    for pid, _ in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return [f"pid {pid}: {command}" for pid, command in members]
