"""``mpmq-replay``: look into a recorded run, re-drive its handlers, re-run its failed items,
compare two runs.

A click group in the sqlite-utils mould: ``--version``, every command's help ends with an
``Example:`` block, and a first argument that is not a command is the file to replay
(``mpmq-replay run.db`` is ``mpmq-replay replay run.db``, as ``sqlite-utils data.db "select
..."`` is its ``query``). Exit status: 0 done, 1 a replay diverged / a handler raised / a
re-run item failed / two diffed runs differ, 2 usage errors and unusable data: a bad file, run or handler is one line
on stderr naming it (recordings are shared files, often broken or foreign: that is no reason
for a traceback).

The HTML ``report`` lives in ``replay/report/command.py`` and is added at the bottom; ``diff``
is here, its comparison and its printing in ``replay/diff/``.
``main`` is the console script declared in pyproject.toml, so it stays the group itself.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click
from tabulate import tabulate

from mpmq import __version__
from mpmq.events import KINDS
from mpmq.recording import Recording, RecordingError, RunInfo, open_recording
from mpmq.replaying import ReplayDiverged, unknown_offset

from . import export
from . import logs as logs_module
from .diff.command import diff
from .handlers import LAST_LOG_LINES, HandlerError, Printer, build_handler, one_line
from .report.command import report
from .rerun import RerunError, prepare, run_here, run_in_workers
from .resume import resume
from .summary import Facts, facts_of, local_time, render


class DataError(click.ClickException):
    """A file, run or handler that cannot be used: ``Error: <one line>``, exit status 2."""

    exit_code = 2


class Failed(click.ClickException):
    """The replay diverged or the user's handler raised: exit status 1."""

    exit_code = 1


class ReplayGroup(click.Group):
    """Treats a first argument that is not a command as the file to ``replay``, and turns the
    errors of bad recordings, runs and handlers into one line and exit status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["replay", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (RecordingError, HandlerError) as exc:
            raise DataError(" ".join(str(exc).split())) from None
        except RerunError as exc:
            for line in exc.lines[:-1]:
                click.echo(f"Error: {line}", err=True)
            raise DataError(exc.lines[-1]) from None


@click.group(cls=ReplayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="mpmq-replay")
def main() -> None:
    """Replay, inspect and re-run mpmq recordings (made with execute(record="run.db")).

    `mpmq-replay run.db` is short for `mpmq-replay replay run.db`. Nothing is unpickled from a
    recording without --allow-pickle: recordings are data, and unpickling runs code.

    Example:

    \b
        mpmq-replay run.db
        mpmq-replay summary run.db
    """


def check_offsets(path: str, recording: Recording, header: RunInfo, offsets: tuple[int, ...]) -> None:
    """An --offset beyond the run is a mistake to say, not an empty replay to print."""
    problem = unknown_offset(path, header, recording.item_count(header.id), offsets) if offsets else None
    if problem:
        raise DataError(problem)


run_option = click.option("--run", "run_id", type=int, help="Run id (see `runs`); default: the latest run.")
offset_option = click.option(
    "--offset", "offsets", type=click.IntRange(min=0), multiple=True, help="Only this item (repeatable)."
)


@main.command(name="replay")
@click.argument("path")
@run_option
@click.option(
    "--handler",
    "handler_spec",
    metavar="MODULE:ATTR",
    help="Your MPmq subclass, or a zero-argument callable returning a handler.",
)
@offset_option
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="Pace at X times the recorded speed (default: as fast as possible).",
)
@click.option("--until", type=int, metavar="SEQ", help="Stop after this event sequence number.")
@click.option("--allow-pickle", is_flag=True, help="Unpickle recorded values (only for files you trust).")
@click.option("--no-clock", is_flag=True, help="Leave the clock alone (by default it reads the live times).")
def replay_command(
    path: str,
    run_id: int | None,
    handler_spec: str | None,
    offsets: tuple[int, ...],
    speed: float | None,
    until: int | None,
    allow_pickle: bool,
    no_clock: bool,
) -> None:
    """Re-drive a recorded run's handler calls, starting no workers.

    Without --handler, prints every message as process_message received it ([offset]
    message) and every result, then a summary. With --handler, your handler receives the
    calls it received live, in the same order, with the clock reading the live times. The
    current directory is importable. Exit status 1 if the replay diverges from the
    recorded items or the handler raises.

    Example:

    \b
        mpmq-replay run.db
        mpmq-replay run.db --run 2 --offset 3 --until 120
        mpmq-replay replay run.db --handler mydisplay:ProgressBar --speed 2
    """
    with open_recording(path) as recording:
        header = recording.run(run_id)
        items = recording.items(header.id) if handler_spec else []
        check_offsets(path, recording, header, offsets)
    printer = None
    if handler_spec:
        handler = build_handler(handler_spec, header, items, allow_pickle)
    else:
        handler = printer = Printer(allow_pickle=allow_pickle)
    try:
        handler.replay(
            path, header.id, allow_pickle, clock=not no_clock, speed=speed, offsets=offsets or None, until=until
        )
    except ReplayDiverged as exc:
        raise Failed(f"{path}: run {header.id}: {exc}") from None
    except RecordingError:
        raise
    except Exception as exc:  # the user's handler raised: show where, it is their code
        seqs = getattr(getattr(handler, "replayed", None), "last_seq", None) or {}
        traceback.print_exc()
        at = f" at seq {max(seqs.values())}" if seqs else ""
        raise Failed(f"handler {handler_spec or 'printer'} raised{at}: {one_line(exc)}") from None
    if printer is not None:
        seqs = printer.replayed.last_seq
        click.echo()
        click.echo(render(Facts(path, header, printer.state, printer.last_logs, max(seqs.values(), default=None),
                                offsets or None, until)), nl=False)  # fmt: skip


@main.command()
@click.argument("path")
def runs(path: str) -> None:
    """List the runs in a recording, oldest first.

    A run whose status is still `running` was cut short (its parent died): it replays what was
    recorded and is reported incomplete.

    Example:

    \b
        mpmq-replay runs run.db
    """
    with open_recording(path) as recording:
        infos = recording.runs()
    rows = []
    for run in infos:
        wall = f"{run.ended_at - run.started_at:.3f}" if run.ended_at and run.started_at else "-"
        status = run.status if run.complete else f"{run.status} (incomplete)"
        resumed = run.options.get("resumed_from")  # issue 19: a resumed run continues that run
        origin = f"{resumed} (resumed)" if resumed is not None else run.parent_run
        rows.append((run.id, local_time(run, run.started_at), status, run.item_count, run.succeeded,
                     run.failed, wall, run.function, run.handler, origin))  # fmt: skip
    headers = ["id", "started", "status", "items", "succeeded", "failed", "wall s", "function", "handler", "re-run of"]
    click.echo(tabulate(rows, headers=headers, missingval="-"))


@main.command()
@click.argument("path")
@run_option
def summary(path: str, run_id: int | None) -> None:
    """What happened in a run: status, counts, slowest items, failures.

    Also the wall time and the recorded handler (a hint for --handler). Each failure is
    shown with its traceback and its last log lines. Read from the recorded events, so a run
    whose parent died is summarised too, as incomplete.

    Example:

    \b
        mpmq-replay summary run.db
        mpmq-replay summary run.db --run 1
    """
    with open_recording(path) as recording:
        facts = facts_of(recording, recording.run(run_id), LAST_LOG_LINES)
    click.echo(render(facts), nl=False)


@main.command()
@click.argument("path")
@run_option
@offset_option
@click.option("--level", default="DEBUG", show_default=True, help="Lowest level shown: a name or a number.")
def logs(path: str, run_id: int | None, offsets: tuple[int, ...], level: str) -> None:
    """Show a run's log lines, in the order the parent received them.

    Times are the live run's local times.

    Example:

    \b
        mpmq-replay logs run.db --level warning
        mpmq-replay logs run.db --offset 3 --offset 7
    """
    try:
        threshold = logs_module.parse_level(level)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--level") from None
    with open_recording(path) as recording:
        header = recording.run(run_id)
        check_offsets(path, recording, header, offsets)
        logs_module.write_logs(recording, header, sys.stdout, offsets or None, threshold)


@main.command()
@click.argument("path")
@run_option
@offset_option
@click.option("--until", type=int, metavar="SEQ", help="Stop after this event sequence number.")
@click.option("--kind", "kinds", type=click.Choice(KINDS), multiple=True, help="Only events of this kind.")
@click.option("--pickles", is_flag=True, help="Include recorded pickles as base64 (never unpickled).")
def events(
    path: str, run_id: int | None, offsets: tuple[int, ...], until: int | None, kinds: tuple[str, ...], pickles: bool
) -> None:
    """Export a run's events as JSON lines, in receive order.

    Each line is one typed event (its `kind`, `offset`, `pid`, `time`, ...) with the
    parent's `seq` and `received_at`.

    Example:

    \b
        mpmq-replay events run.db > events.jsonl
        mpmq-replay events run.db --kind error | jq .message
    """
    with open_recording(path) as recording:
        header = recording.run(run_id)
        check_offsets(path, recording, header, offsets)
        export.write_jsonl(recording, header, sys.stdout, offsets or None, until,
                           kinds or None, pickles)  # fmt: skip


@main.command()
@click.argument("path")
@run_option
@click.option("--failed", is_flag=True, help="Re-run every item that failed.")
@offset_option
@click.option("--pdb", "debug", is_flag=True, help="Open pdb at the exception (in this process).")
@click.option("--workers", is_flag=True, help="Run in worker processes through MPmq instead.")
@click.option("--processes", type=click.IntRange(min=1), help="Worker processes (with --workers).")
@click.option("--record", metavar="PATH", help="Record the re-run (in workers), linked to the original run.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Supply a redacted or unrecorded value (dotted KEY; VALUE is JSON or text).",
)
@click.option("--input", "given", multiple=True, metavar="OFFSET=JSON", help="Supply an item's whole input.")
@click.option("--function", "function", metavar="MODULE:ATTR", help="Run this function instead of the recorded one.")
@click.option("--allow-pickle", is_flag=True, help="Unpickle recorded inputs (only for files you trust).")
def rerun(
    path: str,
    run_id: int | None,
    failed: bool,
    offsets: tuple[int, ...],
    debug: bool,
    workers: bool,
    processes: int | None,
    record: str | None,
    sets: tuple[str, ...],
    given: tuple[str, ...],
    function: str | None,
    allow_pickle: bool,
) -> None:
    """Run failed (or chosen) items again, with their recorded inputs.

    The function is the recorded one, imported by its recorded name, when it is your own code:
    one from the standard library, an installed package or mpmq is run only if you name it
    with --function (a crafted recording could name any). In this process by default (--pdb opens
    a post-mortem debugger at the failing line), or in worker processes with --workers or
    --record. Inputs redacted or not restorable from the recording are named, with how to
    supply them. Exit status 0 when every re-run item succeeds, 1 when any fails.

    Example:

    \b
        mpmq-replay rerun run.db --failed --pdb
        mpmq-replay rerun run.db --offset 3 --set db_password=hunter2
        mpmq-replay rerun run.db --failed --record rerun.db
    """
    if not failed and not offsets:
        raise click.UsageError("say which items to re-run: --failed and/or --offset N")
    if debug and (workers or record):
        raise click.UsageError("--pdb debugs in this process: it cannot be combined with --workers or --record")
    plan = prepare(path, run_id, failed=failed, offsets=offsets, function=function, sets=sets, given=given,
                   allow_pickle=allow_pickle)  # fmt: skip
    if not plan.offsets:
        click.echo(f"run {plan.run_id} of {path} has no failed items: nothing to re-run")
        return
    out = sys.stdout
    if workers or record:
        ok = run_in_workers(plan, processes, record, out)
    else:
        ok = run_here(plan, debug, out)
    sys.exit(0 if ok else 1)


main.add_command(report)  # written in its own package: replay/report/command.py
main.add_command(diff)  # written in its own package: replay/diff/command.py (issue 19)
main.add_command(resume)  # written in its own module: replay/resume.py (issue 19)

if __name__ == "__main__":
    # Under ``python -m replay.cli`` this file runs as __main__, a second copy of the module:
    # run the group of the real ``replay.cli``, the one other modules add their commands to.
    from replay.cli import main as real_main

    real_main(prog_name="mpmq-replay")
