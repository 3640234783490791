"""The HTML report in a real browser (issue 8): headless Chromium renders it, its DOM is checked.

Chromium is the system package (``apt-get install chromium``; CI installs it in ``.ci/run``).
When it is missing, the tests install it only as root under CI (``CI`` set), and otherwise
skip with the command that installs it. Each Chromium call is one subprocess with a timeout and
a fresh profile, the network and every background service off:

- ``--screenshot`` of the page as a person first sees it;
- ``--dump-dom`` after the page's script ran: the timeline's bars as the browser built them,
  and, for ``report.html#item-3``, the log view filled by the same function a click calls.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fixtures.report_jobs import SCRIPT, job
from mpmq import MPmq
from mpmq.recording import open_recording
from replay.report import write_report

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_TIMEOUT = 60  # seconds per call; a cold start takes 1-3 s
INSTALL_TIMEOUT = 600
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio",
)  # fmt: skip
WINDOW = (1280, 900)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

pytestmark = pytest.mark.deadline(90)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None and os.environ.get("CI") and os.geteuid() == 0:
        # CI's .ci/run installs it first; this is the fallback for a CI image that did not.
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, capture_output=True, timeout=INSTALL_TIMEOUT, check=False)
        found = find_chromium()
    if found is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    return found


def run_chromium(binary: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
    assert result.returncode == 0, f"{command} exited with {result.returncode}:\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(report.html, items): a small real run with a failure and a logged <script> tag."""
    where = tmp_path_factory.mktemp("browser")
    data = [{"offset": i, "kind": kind, "delay": 0.02} for i, kind in enumerate(["ok", "ok", "raise", "script", "ok"])]
    MPmq(job, process_data=data, processes_to_start=2).execute(record=str(where / "run.db"), raise_if_error=False)
    with open_recording(where / "run.db") as recording:
        items = recording.items()
    return write_report(where / "run.db", where / "report.html"), items


class Dom(HTMLParser):
    """Start tags with attributes, and the text under the element with id ``inside``."""

    def __init__(self, dom: str, inside: str = "log-view") -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inside, self.depth, self.text = inside, 0, []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in VOID and (self.depth or attrs.get("id") == self.inside):
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)

    def by_class(self, tag: str, cls: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def png_size_and_detail(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data): a blank page has very few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def test_the_page_renders_and_its_timeline_has_one_bar_per_started_item(chromium, report, tmp_path):
    page, items = report
    shot = tmp_path / "shot.png"
    run_chromium(chromium, tmp_path / "profile", page.as_uri(), f"--screenshot={shot}",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}")  # fmt: skip
    width, height, detail = png_size_and_detail(shot)
    assert (width, height) == WINDOW and detail > 64, "the screenshot is blank"
    dom = Dom(run_chromium(chromium, tmp_path / "profile", page.as_uri(), "--dump-dom").stdout)
    started = sorted(item.offset for item in items if item.started_at is not None)
    bars = dom.by_class("rect", "bar")
    assert sorted(int(bar["data-offset"]) for bar in bars) == started
    assert len(dom.by_class("g", "lane")) == len({item.pid for item in items if item.started_at is not None})
    assert [t for t, _ in dom.tags].count("script") == 1  # the logged <script> stayed text


def test_item_link_opens_its_log_as_a_click_does(chromium, report, tmp_path):
    page, _ = report
    dom = Dom(run_chromium(chromium, tmp_path / "profile", page.as_uri() + "#item-3", "--dump-dom").stdout)
    (view,) = [attrs for tag, attrs in dom.tags if attrs.get("id") == "log-view"]
    assert view.get("data-item") == "3", "the page's script did not open item 3"
    text = "".join(dom.text)
    assert "Item 3" in text and "item 3: step 1 of 2" in text and "item 3: done" in text
    assert f"user text {SCRIPT} stays text" in text  # shown as text, inside the log view
    assert "item 2:" not in text  # only item 3's log
    assert [a.get("data-offset") for a in dom.by_class("tr", "selected")] == ["3"]
