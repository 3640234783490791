"""``mpmq-replay diff``: what changed between two recorded runs (issue 19, point 3).

``compare.py`` compares (pure: data in, a ``Diff`` out), ``read.py`` reads two runs through
the reader API, ``render.py`` prints a ``Diff`` as text or JSON. The command is
``command.py``.
"""

from .compare import Diff, ItemChange, ItemFacts, RunFacts, ValueChange, compare, json_difference
from .read import diff_recordings, read_run
from .render import as_json, text

__all__ = ["Diff", "ItemChange", "ItemFacts", "RunFacts", "ValueChange", "compare", "json_difference",
           "diff_recordings", "read_run", "as_json", "text"]  # fmt: skip
