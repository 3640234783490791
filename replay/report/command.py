"""``mpmq-replay report``: write a recorded run's HTML report (issue 8; the page: ``page.py``).

The CLI group registers it (``replay/cli.py``: ``main.add_command(report)``); it also runs on
its own (``python -m replay.report.command run.db``). Like every ``mpmq-replay`` command, a
bad recording, an unknown run or an output that cannot be written is one line on stderr
(``Error: ...`` naming the file) and exit status 2, never a traceback.
"""

from __future__ import annotations

import os

import click

from mpmq.recording import RecordingError

from .page import write_report


class ReportError(click.ClickException):
    """A recording, run or output path that cannot be used: ``Error: <one line>``, exit status 2."""

    exit_code = 2


@click.command(name="report")
@click.argument("path")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Where to write the page; default: the recording's name with .html (run.db -> run.html).",
)
@click.option("--run", "run_id", type=int, help="Run id (see `runs`); default: the latest run.")
def report(path: str, output: str | None, run_id: int | None) -> None:
    """Write one self-contained HTML page about a recorded run: its status and numbers, a
    timeline with one lane per worker and one bar per item coloured by outcome, every
    failure with its traceback and last log lines, and each item's log (click a bar or a
    row; filter by status, search the messages). The page loads nothing from the network
    and imports none of the run's code, so it is safe to make from a colleague's recording
    and to attach to a bug report; report.html#item-3 opens item 3's log.

    Example:

    \b
        mpmq-replay report run.db -o report.html
        mpmq-replay report run.db --run 2 -o run2.html
    """
    # Paths are checked here, not by click.Path(exists=True), whose usage errors take several
    # lines (issue 5: one line naming the file, exit status 2).
    out = output or os.path.splitext(path)[0] + ".html"
    if os.path.abspath(out) == os.path.abspath(path):
        raise ReportError(f"{out} is the recording itself: give -o another file name")
    if os.path.isdir(out):
        raise ReportError(f"{out} is a directory: give -o a file name")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ReportError(f"cannot write {out}: no such directory {parent}")
    try:
        written = write_report(path, out, run=run_id)
    except RecordingError as exc:
        raise ReportError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB): open it in a browser")


if __name__ == "__main__":
    report(prog_name="mpmq-replay report")
