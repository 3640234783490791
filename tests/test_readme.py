"""Every example in README.md runs, so the README cannot rot (issue 7).

How the README is read:

- Every fenced block names its language: ``python``, ``sh`` or ``text``.
- A ``python`` block runs as a script in a fresh interpreter, with the repository on
  ``PYTHONPATH``, in a directory shared by all blocks in README order (so a block may read a
  recording an earlier one wrote). It must exit with status 0.
- A ``text`` block right after a ``python`` block (nothing but blank lines between) is that
  block's exact output. Lines are compared as a multiset: items run concurrently, so lines of
  different items may arrive in another order.
- ``<!-- file: NAME -->`` before a ``python`` block makes it a module of the worked example;
  ``<!-- run -->`` before a ``sh`` block runs its commands (``python ...``, ``mpmq-replay ...``)
  in a directory holding those modules. A command's comment ``exits with status N`` gives its
  expected status (default 0). ``<!-- output of: COMMAND -->`` before a ``text`` block shows
  that command's output, as run by the ``<!-- run -->`` block above it, with pids, times and
  paths as placeholders: its other lines must appear in the real output.
- ``<!-- no-test -->`` skips a block; keep it for what truly cannot run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUN_TIMEOUT = 60.0
LANGUAGES = {"python", "sh", "text"}
PDB_INPUT = "p header\nq\n"  # what the worked example says to type at the (Pdb) prompt

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    directive: str  # the HTML comment just before the block, or ""
    follows: Block | None  # the block just before, when only blank lines separate them

    @property
    def id(self) -> str:
        return f"line-{self.line}"


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    directive, previous, gap_only = "", None, False
    while index < len(lines):
        line = lines[index]
        match = FENCE.match(line)
        if not match:
            comment = DIRECTIVE.match(line.strip())
            if comment:
                directive = comment.group(1)
            elif line.strip():
                directive, gap_only = "", False
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and not FENCE.match(lines[index]):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        block = Block(match.group(1), "\n".join(body) + "\n", start + 1, directive,
                      previous if gap_only and not directive else None)
        blocks.append(block)
        directive, previous, gap_only = "", block, True
    return blocks


BLOCKS = parse(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.language == "python" and b.directive != "no-test"]
SCRIPTS = [b for b in PYTHON if not b.directive.startswith("file:")]
MODULES = {b.directive.split(":", 1)[1].strip(): b for b in PYTHON if b.directive.startswith("file:")}
RUNS = [b for b in BLOCKS if b.language == "sh" and b.directive == "run"]
SHOWN = [b for b in BLOCKS if b.language == "text" and b.directive.startswith("output of:")]


def shown_after(block: Block) -> list[Block]:
    """The ``output of`` blocks that follow a ``run`` block, up to the next ``run`` block."""
    end = min((b.line for b in RUNS if b.line > block.line), default=len(README.read_text().splitlines()) + 1)
    return [b for b in SHOWN if block.line < b.line < end]


def expected_output(block: Block) -> Block | None:
    return next((b for b in BLOCKS if b.follows is block and b.language == "text"), None)


def environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def run(command: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=environment(), input=stdin, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_every_block_names_its_language() -> None:
    unnamed = [b.line for b in BLOCKS if b.language not in LANGUAGES]
    assert not unnamed, f"fenced blocks at README lines {unnamed} need one of {sorted(LANGUAGES)}"
    assert len(SCRIPTS) >= 5 and RUNS and SHOWN  # a parsing slip must not test nothing


def test_every_shown_output_follows_the_run_block_that_makes_it() -> None:
    checked = [shown.line for block in RUNS for shown in shown_after(block)]
    assert sorted(checked) == [b.line for b in SHOWN], "an `output of` block above every `run` block is never checked"


@pytest.mark.deadline(90)
@pytest.mark.parametrize("block", SCRIPTS, ids=[b.id for b in SCRIPTS])
def test_python_example_runs(block: Block, workdir: Path) -> None:
    script = workdir / f"readme_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    proc = run([sys.executable, script.name], workdir)
    assert proc.returncode == 0, f"README line {block.line} failed:\n{proc.stdout}{proc.stderr}"
    shown = expected_output(block)
    if shown is not None:
        actual = Counter(line.rstrip() for line in proc.stdout.splitlines())
        expected = Counter(line.rstrip() for line in shown.code.splitlines())
        assert actual == expected, (
            f"README line {block.line}: output differs from the block at line {shown.line}\n"
            f"--- shown\n{shown.code}--- actual\n{proc.stdout}"
        )


def commands(block: Block) -> list[tuple[str, list[str], int]]:
    """``(line, argv, expected status)`` for each command of a ``<!-- run -->`` block."""
    found = []
    for line in block.code.splitlines():
        command, _, comment = line.partition(" #")
        if not command.strip():
            continue
        words = shlex.split(command)
        if words[0] == "python":
            argv = [sys.executable, *words[1:]]
        elif words[0] == "mpmq-replay":
            argv = [sys.executable, "-m", "replay.cli", *words[1:]]
        else:
            raise AssertionError(f"README line {block.line}: cannot run {command!r}")
        status = re.search(r"exits with status (\d+)", comment)
        found.append((command.strip(), argv, int(status.group(1)) if status else 0))
    return found


def masked(text: str) -> list[str]:
    """Lines with what varies between runs (pids, clock times, absolute paths) made constant."""
    text = re.sub(r"\bpid \d+", "pid N", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\.\d{3}\b", "HH:MM:SS.mmm", text)
    text = re.sub(r'File "[^"]*/([^/"]+)"', r'File "\1"', text)
    return [" ".join(line.split()) for line in text.splitlines()]


@pytest.mark.deadline(120)
@pytest.mark.parametrize("block", RUNS, ids=[b.id for b in RUNS])
def test_worked_example_commands_run(block: Block, tmp_path: Path) -> None:
    if importlib.util.find_spec("replay.cli") is None:
        pytest.skip("mpmq-replay (replay/cli.py) has not landed yet")
    for name, module in MODULES.items():
        (tmp_path / name).write_text(module.code, encoding="utf-8")
    outputs = {}
    for command, argv, status in commands(block):
        proc = run(argv, tmp_path, stdin=PDB_INPUT if "--pdb" in argv else "")
        assert proc.returncode == status, (
            f"README line {block.line}: `{command}` exited with {proc.returncode}, not {status}\n"
            f"{proc.stdout}{proc.stderr}"
        )
        assert "Traceback" not in proc.stderr, f"`{command}` wrote a traceback:\n{proc.stderr}"
        outputs[command] = proc.stdout
    live, handler = outputs.get("python app.py"), outputs.get("mpmq-replay run.db --handler app:Progress")
    if live is not None and handler is not None:
        # the user's own display, re-driven from the file, prints what it printed live
        assert handler.splitlines()[: len(live.splitlines()) - 1] == live.splitlines()[:-1]
    pdb = next((out for command, out in outputs.items() if "--pdb" in command), None)
    if pdb is not None:
        assert "(Pdb)" in pdb and "b'GIF89a'" in pdb, pdb
    for shown in shown_after(block):
        command = shown.directive.split(":", 1)[1].strip()
        assert command in outputs, f"README line {shown.line} shows the output of `{command}`, never run"
        actual = masked(outputs[command])
        for line in masked(shown.code):
            if line and "..." not in line:
                assert line in actual, (
                    f"README line {shown.line}: {line!r} is not in the output of `{command}`:\n{outputs[command]}"
                )


def test_packages_are_named_by_name_not_by_a_registry_address():
    """The README names packages (``distributed``, upstream ``mpmq`` 0.7.0) by name: a
    registry's web address is not a name, and it moves."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.findall(r"https?://(?:www\.)?(?:pypi\.org|pypi\.python\.org|npmjs\.com)\S*", text)
