"""A live status display, one line per worker: an ordinary ``MPmq`` subclass, as you would write one.

On a terminal it redraws its lines in place with ANSI escape codes; anywhere else (a pipe, a
CI log) it prints one plain line per message. The same class re-draws a recorded run:
``StatusDisplay(...).replay("demo.db")`` or ``mpmq-replay demo.db --handler
examples.status_display:StatusDisplay``; while replaying, ``time.time()`` reads the recorded
clock, so the elapsed times shown are the live run's.
"""

import shutil
import sys
import time

from mpmq import Done, MPmq, Started

UP = "\x1b[{}F"  # move the cursor up n lines, to column 1
CLEAR = "\x1b[2K"  # clear the line
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class StatusDisplay(MPmq):
    def __init__(self, function, *, out=None, **options):
        super().__init__(function, **options)
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.worker_numbers = {}  # pid -> 1, 2, 3... in the order workers first appear
        self.worker_of = {}  # item offset -> worker number
        self.rows = {}  # worker number -> its line
        self.failures = []  # one line per failed item
        self.began = self.now = None  # times of the first and the latest event
        self.drawn = 0  # lines on screen from the last redraw

    # Typed events carry the worker's pid: use them to know which worker runs which item.
    def process_event(self, event):
        self.now = time.time()
        self.began = self.began or self.now
        if isinstance(event, Started):
            number = self.worker_numbers.setdefault(event.pid, len(self.worker_numbers) + 1)
            self.worker_of[event.offset] = number
        elif isinstance(event, Done) and self.state.items[event.offset].status == "succeeded":
            self.show(event.offset, "done")  # self.state already includes this event
        super().process_event(event)  # log events -> process_message(offset, text), and hooks

    # Each line an item logs, with 0.7.0's level prefix ("INFO: ", "ERROR: "...).
    def process_message(self, offset, message):
        message = message.splitlines()[0] if message else ""
        if message.startswith("ERROR: "):
            self.failures.append(f"  item {offset:>2} {self.name(offset)} FAILED: {message[7:]}")
        self.show(offset, message.removeprefix("INFO: "))

    # Called once at the end of execute() and replay(), whatever happened.
    def final(self):
        if self.live:
            self.draw()
            self.out.write(SHOW_CURSOR)
        state = self.state
        self.out.write(f"{state.succeeded} succeeded, {state.failed} failed in {self.elapsed():.1f} s\n")
        self.out.flush()

    def name(self, offset):
        items = self.process_data
        item = items[offset] if offset < len(items) else None
        return item.get("name", "") if isinstance(item, dict) else ""

    def elapsed(self):
        return self.now - self.began if self.began else 0.0

    def show(self, offset, text):
        worker = self.worker_of.get(offset)
        line = f"worker {worker or '-'}  item {offset:>2} {self.name(offset):<15} {text}"
        if worker:
            self.rows[worker] = line
        if self.live:
            self.draw()
        else:
            self.out.write(f"{self.elapsed():5.1f}s  {line}\n")

    def draw(self):
        state = self.state
        header = (f"{state.finished}/{len(state.items)} done, {state.running} running, "
                  f"{state.failed} failed, {self.elapsed():.1f} s")
        lines = [header] + [self.rows[n] for n in sorted(self.rows)] + self.failures
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break the redraw
        move = UP.format(self.drawn) if self.drawn else HIDE_CURSOR
        self.out.write(move + "".join(f"{CLEAR}{line[:width]}\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)
