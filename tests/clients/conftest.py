"""Run the real client packages (mpcurses, mppbar, mp4ansi) against this mpmq, under a terminal.

Each client is installed from PyPI into ``<venv>/clients/<name>/`` by
``fixtures/clients/install.py`` (once per venv, by the session fixture below) without mpmq.
Each example program in ``fixtures/clients/`` runs as a real subprocess of the venv's Python,
with ``PYTHONPATH=<client dir>`` so ``import mpmq`` finds this checkout, on a pseudo-terminal
of fixed size (``ROWS`` x ``COLS``, ``TERM=xterm-256color``): the bars, status lines and
curses screens render only on a tty. Every run has a deadline: a hang becomes a failing test
that shows the screen and every process's stack (faulthandler, via SIGABRT).

Developing the harness against upstream: point ``MPMQ_CLIENTS_UPSTREAM`` at a directory that
holds mpmq 0.7.0's ``mpmq/`` package, and ``MPMQ_CLIENTS_UPSTREAM_02`` at one holding 0.2.0's
(mp4ansi pins 0.2.0; it is skipped when that is unset). Upstream returns results in arrival
order, so order checks become multiset checks there; everything else is checked the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clientrun import START_METHODS, Run, installer, run_program


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clients: runs the real mpcurses/mppbar/mp4ansi packages from PyPI")
    config.addinivalue_line("markers", "deadline(seconds): hard per-test deadline")


@pytest.fixture(scope="session")
def client_dirs() -> dict[str, Path]:
    """Every client installed (or found already installed) in ``<venv>/clients``."""
    return {name: installer.ensure(name) for name in installer.CLIENTS}


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def run_client(client_dirs: dict[str, Path], tmp_path: Path) -> Callable[..., Run]:
    """``run_client(client, program, start_method, reply=None) -> Run``, checked as every run must be."""

    def run(client: str, program: str, start_method: str, reply=None) -> Run:
        return run_program(client, program, start_method, client_dir=client_dirs[client], workdir=tmp_path, reply=reply)

    return run
