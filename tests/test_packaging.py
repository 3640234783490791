"""The release artefacts (issue 7, point 3): ``python -m build`` makes an sdist and a wheel that
hold both packages, ``py.typed``, the licence, the version and the ``mpmq-replay`` command, and
the wheel installed into a fresh virtual environment (no system site-packages, dependencies
from PyPI) runs the README's quick start.

One test, since every step needs the one before; it takes ~20-40 s, mostly pip.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 240.0
PACKAGE_FILES = {
    "mpmq/__init__.py", "mpmq/py.typed", "mpmq/recording/empty.sqlite", "replay/__init__.py", "replay/cli.py",
    "replay/py.typed",
}
NOT_SOURCE = (".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".hypothesis", "*.db")
RECORD_AND_SUMMARISE = """
from mpmq import MPmq
def double(n=None):
    return 2 * n
if __name__ == "__main__":
    print(MPmq(double, process_data=[{"n": 1}, {"n": 2}]).execute(record="installed.db"))
"""


def run(command: list, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([str(part) for part in command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout


def project_version() -> str:
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', (ROOT / "mpmq" / "__init__.py").read_text(), re.M)
    assert match, "mpmq/__init__.py has no __version__"
    return match.group(1)


def quick_start() -> tuple[str, str]:
    """The README's quick start and the output it shows."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```python\n.*?```\s*```text\n(.*?)```", section, re.S)
    assert code and shown, "README's quick start needs a python block followed by its output"
    return code.group(1), shown.group(1)


def check_wheel(wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert PACKAGE_FILES <= names, sorted(PACKAGE_FILES - names)
        info = f"mpmq-{version}.dist-info/"
        licences = [name for name in names if name.startswith(info) and "LICENSE" in name]
        assert licences, f"no licence in {info}"
        assert archive.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(info + "METADATA").decode()
        assert f"\nVersion: {version}\n" in metadata
        assert re.search(r"^License(-Expression)?: Apache-2\.0$", metadata, re.M), metadata[:1000]
        entry_points = archive.read(info + "entry_points.txt").decode()
        assert re.search(r"^mpmq-replay\s*=\s*replay\.cli:main$", entry_points, re.M), entry_points


def check_sdist(sdist: Path, version: str) -> None:
    top = f"mpmq-{version}/"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    wanted = {top + name for name in (*PACKAGE_FILES, "LICENSE", "README.md", "pyproject.toml")}
    assert wanted <= names, sorted(wanted - names)


@pytest.mark.slow
@pytest.mark.deadline(600)
def test_wheel_installs_in_a_fresh_venv_and_runs_the_quick_start(tmp_path: Path) -> None:
    version = project_version()
    # Built from a copy: building the sdist writes mpmq.egg-info into the source tree, and the
    # checkout's own egg-info belongs to its editable install.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", dist, source], tmp_path)
    (wheel,) = dist.glob("mpmq-*.whl")
    (sdist,) = dist.glob("mpmq-*.tar.gz")
    check_wheel(wheel, version)
    check_sdist(sdist, version)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    run([python, "-m", "pip", "install", "--quiet", wheel], tmp_path)

    work = tmp_path / "work"  # nothing of the checkout is importable from here
    work.mkdir()
    where = run([python, "-c", "import mpmq, replay; print(mpmq.__file__); print(mpmq.__version__)"], work)
    location, installed_version = where.split()
    assert Path(location).is_relative_to(venv), location
    assert installed_version == version

    code, shown = quick_start()
    (work / "quickstart.py").write_text(code, encoding="utf-8")
    output = run([python, "quickstart.py"], work)
    assert Counter(output.splitlines()) == Counter(shown.splitlines()), output

    assert version in run([bin_dir / "mpmq-replay", "--version"], work)
    (work / "record.py").write_text(RECORD_AND_SUMMARISE, encoding="utf-8")
    assert run([python, "record.py"], work).strip() == "[2, 4]"
    assert "2 succeeded" in run([bin_dir / "mpmq-replay", "summary", "installed.db"], work)
    with sqlite3.connect(work / "installed.db") as conn:  # the header names the version installed
        assert conn.execute("SELECT mpmq_version FROM runs").fetchall() == [(version,)]
