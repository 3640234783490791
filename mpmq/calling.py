"""How a worker calls the function with an item: 0.7.0's two calling conventions.

Every backend calls the function the same way, and the parent checks the items against it
before any worker starts (``validate.py``), so the rule lives here, apart from any backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

KWARGS = "kwargs"  # function(**item, **shared_data)
POSITIONAL = "positional"  # function(item, shared_data)


def call_style(function: Callable) -> str:
    """0.7.0's rule: keyword arguments when every parameter has a default or is ``**kwargs``."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return POSITIONAL
    uses_kwargs = all(p.default is not p.empty or p.kind is p.VAR_KEYWORD for p in parameters)
    return KWARGS if uses_kwargs else POSITIONAL
