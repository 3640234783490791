"""``mpmq-replay resume``: resume a recorded run from the command line (issue 19, point 2).

The same as ``execute(record=path, resume=True)`` in the program that ran, for a function the
recording names: the items that succeeded in the file's latest run of that function and
shared data are taken from the recording, the rest run in worker processes, and the new run
is recorded in the same file. The inputs and the function come back as for ``rerun``, with
its safety rules (``rerun.prepare``): a function that is not the user's own code is run only
if ``--function`` names it, and an input the recording could not keep must be supplied.
"""

from __future__ import annotations

import multiprocessing
import sys

import click

from mpmq.recording import open_recording

from .rerun import RerunDisplay, _argv_for_the_record, prepare


@click.command()
@click.argument("path")
@click.option("--run", "run_id", type=int, help="Take the function and inputs from this run (default: the latest).")
@click.option("--processes", type=click.IntRange(min=1), help="Worker processes (default: as the run had).")
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE",
    help="Supply a redacted or unrecorded value (dotted KEY; VALUE is JSON or text).",
)  # fmt: skip
@click.option("--input", "given", multiple=True, metavar="OFFSET=JSON", help="Supply an item's whole input.")
@click.option("--function", "function", metavar="MODULE:ATTR", help="Run this function (it must be the recorded one).")
@click.option("--allow-pickle", is_flag=True, help="Unpickle recorded inputs (only for files you trust).")
def resume(path: str, run_id: int | None, processes: int | None, sets: tuple[str, ...], given: tuple[str, ...],
           function: str | None, allow_pickle: bool) -> None:
    """Resume an interrupted run: run only what did not succeed, and record it in the same file.

    Items that succeeded in the file's latest run of the recorded function and shared data,
    with the same input, are taken from the recording (their logs are shown again); the others
    run in worker processes. The new run is recorded complete, linked to the run it resumed.
    The function and inputs come back as for rerun, with its safety rules. Exit status 0 when
    every item succeeds, 1 when any fails.

    Example:

    \b
        mpmq-replay resume run.db
        mpmq-replay resume run.db --set db_password=hunter2 --processes 4
    """
    with open_recording(path) as recording:
        count = recording.item_count(run_id)
    plan = prepare(path, run_id, failed=False, offsets=range(count), function=function, sets=sets, given=given,
                   allow_pickle=allow_pickle)  # fmt: skip
    start = plan.start_method if plan.start_method in multiprocessing.get_all_start_methods() else None
    runner = RerunDisplay(
        plan.function, process_data=plan.items, shared_data=plan.shared, context=start, offsets=plan.offsets,
        processes_to_start=processes or min(plan.processes or count, count) or None, out=sys.stdout,
    )  # fmt: skip
    with _argv_for_the_record():
        results = runner.execute(record=path, resume=True)
    failed = 0
    for offset, result in enumerate(results):
        if isinstance(result, BaseException):
            failed += 1
            click.echo(f"item {offset}: failed: {result}")
    taken = len(runner.resumed_items)
    if runner.resumed_from is None:
        click.echo(f"no run of {plan.function_name} with this shared data to resume in {path}: ran every item")
    else:
        click.echo(f"resumed run {runner.resumed_from} of {path}: {taken} items taken from it, "
                   f"{len(results) - taken} run")
    click.echo(f"{len(results) - failed} succeeded, {failed} failed")
    sys.exit(1 if failed else 0)
