"""``mpmq-replay diff``: compare two recorded runs (issue 19, point 3; the comparison: ``compare.py``).

The CLI group registers it (``replay/cli.py``: ``main.add_command(diff)``). Arguments that do
not name two runs are one line on stderr (``Error: ...``) and exit status 2, as for every
``mpmq-replay`` command; a bad recording or run id is turned into the same by the group.
"""

from __future__ import annotations

import json
import os

import click

from mpmq.recording import open_recording

from . import render
from .read import diff_recordings


class DiffError(click.ClickException):
    """Arguments that do not name two runs: ``Error: <one line>``, exit status 2."""

    exit_code = 2


@click.command(name="diff")
@click.argument("paths", nargs=-1, metavar="A.db [B.db]")
@click.option("--run", "run_ids", type=int, multiple=True, help="A run id: twice, A then B (see `runs`).")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as one JSON object (shape: see the README).")
@click.pass_context
def diff(ctx: click.Context, paths: tuple[str, ...], run_ids: tuple[int, ...], as_json: bool) -> None:
    """Compare two recorded runs item by item: what changed since the last good run.

    Items are matched by offset (and their inputs compared). Shows the items whose outcome
    changed (succeeded -> failed and back), whose result or error differs (the first differing
    JSON path, e.g. $.totals[2].count), whose input changed, each item's first log line that
    differs, the items whose duration changed most, and the counts. Two files compare their
    latest runs (or --run A --run B, one of each); one file compares two of its runs. Exit
    status 0 when the outcomes and results are the same, 1 when they differ, 2 when the
    arguments do not name two runs (one run named as both sides is refused too).

    Example:

    \b
        mpmq-replay diff last-night.db today.db
        mpmq-replay diff run.db --run 1 --run 2 --json
    """
    (path_a, run_a), (path_b, run_b) = diff_sides(paths, run_ids)
    with open_recording(path_a) as recording_a, open_recording(path_b) as recording_b:
        header_a, header_b = recording_a.run(run_a), recording_b.run(run_b)
        if header_a.id == header_b.id and os.path.samefile(path_a, path_b):
            both = f"run {header_a.id} of {path_a}"
            raise DiffError(f"{both} is both sides of the diff: name two runs (--run A --run B) or two files")
        result = diff_recordings(recording_a, header_a, recording_b, header_b)
    if as_json:
        click.echo(json.dumps(render.as_json(result), indent=2))
    else:
        click.echo(render.text(result), nl=False)
    ctx.exit(0 if result.same else 1)


def diff_sides(paths: tuple[str, ...], run_ids: tuple[int, ...]) -> list[tuple[str, int | None]]:
    """``[(path, run id or None for the latest)] * 2`` from diff's arguments, or one line saying why not."""
    if len(paths) == 2 and len(run_ids) in (0, 2):
        return [(paths[0], run_ids[0] if run_ids else None), (paths[1], run_ids[1] if run_ids else None)]
    if len(paths) == 1 and len(run_ids) == 2:
        return [(paths[0], run_ids[0]), (paths[0], run_ids[1])]
    times = f"--run given {len(run_ids)} time{'s' if len(run_ids) != 1 else ''}" if run_ids else "no --run"
    if len(paths) == 1:
        raise DiffError(f"{paths[0]}: name two of its runs to compare, --run A --run B ({times})")
    if len(paths) == 2:
        raise DiffError(f"with two files, give --run twice (a run of each, in order) or not at all ({times})")
    raise DiffError(f"diff compares two runs: give two files, or one and --run A --run B ({len(paths)} files given)")
