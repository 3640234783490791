"""The HTML report of a recorded run (issue 8), a package of its own (issue 19, point 5).

``page.py`` builds the page, ``data.py`` reads and caps what it shows, ``timeline.py`` draws
the timeline, ``assets.py`` holds its CSS and JavaScript, ``command.py`` is ``mpmq-replay
report``. ``from replay.report import render_report, write_report`` works as it did when the
report was one module.
"""

from .page import Report, collect, render, render_report, write_report

__all__ = ["render_report", "write_report", "render", "collect", "Report"]
