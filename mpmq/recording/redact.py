"""Keep secrets out of recordings.

Shared data and item data often carry credentials, and a recording is a file people share
(issue 4). Values under keys that look secret are replaced by ``[redacted]`` before anything is
written; over-redacting costs a re-run input, leaking costs a credential, so matching is a
generous case-insensitive substring match (``db_password`` and ``api_token`` both count).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from ..payload import json_exact

REDACTED = "[redacted]"
DEFAULT_PATTERNS = frozenset(
    ("password", "passwd", "secret", "token", "api_key", "apikey", "auth", "credential", "private_key")
)

RedactOption = bool | str | Iterable[str] | None
_LEAVES = frozenset((str, int, float, bool, bytes, type(None)))  # nothing inside to redact


def patterns_for(option: RedactOption) -> frozenset[str]:
    """The key substrings to redact for ``redact=option``.

    ``True`` is the default list, ``False`` or ``None`` switches redaction off, and an iterable
    of strings extends the default list (a bare string counts as one pattern, not its letters).
    """
    if option is True:
        return DEFAULT_PATTERNS
    if option is False or option is None:
        return frozenset()
    extra = [option] if isinstance(option, str) else list(option)
    for pattern in extra:
        # An empty pattern matches every key, which would silently blank the whole recording.
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"redact patterns must be non-empty strings, got {pattern!r}")
    return DEFAULT_PATTERNS | {pattern.lower() for pattern in extra}


def is_secret(key: Any, patterns: frozenset[str]) -> bool:
    """Whether a mapping key looks like it holds a secret."""
    if type(key) is str:
        return _secret_name(key, patterns)  # the same few keys, in every item of a run
    name = (key if isinstance(key, str) else str(key)).lower()
    return any(pattern in name for pattern in patterns)


@functools.lru_cache(maxsize=4096)
def _secret_name(key: str, patterns: frozenset[str]) -> bool:
    name = key.lower()
    return any(pattern in name for pattern in patterns)


def redact(value: Any, patterns: frozenset[str]) -> Any:
    """``value`` with secret-looking keys' values replaced by ``[redacted]``, at any depth.

    Walks mappings, lists and tuples. The value is never changed in place: containers holding
    something to redact are copied (mappings become ``dict``), and anything without a secret is
    returned as the same object, so its exact type still reaches the recording.
    """
    if not patterns:
        return value
    return _redact(value, patterns, 0)


def _redact(value: Any, patterns: frozenset[str], depth: int) -> Any:
    # Self-referencing or absurdly deep data: stop walking rather than recurse forever.
    if depth > 50 or type(value) in _LEAVES:
        return value
    if type(value) is dict or isinstance(value, Mapping):
        changed = False
        out = {}
        for key, item in value.items():
            new = REDACTED if is_secret(key, patterns) else _redact(item, patterns, depth + 1)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, (list, tuple)):
        new_items = [_redact(item, patterns, depth + 1) for item in value]
        if all(new is old for new, old in zip(new_items, value)):
            return value
        return new_items if isinstance(value, list) else tuple(new_items)
    return value


def redacted_for_json(value: Any, patterns: frozenset[str]) -> tuple[Any, bool]:
    """``redact(value, patterns)``, and whether JSON holds the redacted value exactly
    (``payload.json_or_unset``'s rule), found in the same walk (issue 18, point 6: an input
    goes into the file in one pass, redacted, then encoded)."""
    if not patterns:
        return value, json_exact(value)
    return _redact_for_json(value, patterns, 0)


def _redact_for_json(value: Any, patterns: frozenset[str], depth: int) -> tuple[Any, bool]:
    # What _redact and payload.json_exact do, at once: every branch gives _redact's value and
    # json_exact's verdict on it.
    if depth > 50 or type(value) in _LEAVES:
        return value, json_exact(value, depth)
    if type(value) is dict or isinstance(value, Mapping):
        changed, exact = False, True
        out = {}
        for key, item in value.items():
            if is_secret(key, patterns):
                new, fits = REDACTED, True
            else:
                new, fits = _redact_for_json(item, patterns, depth + 1)
            changed = changed or new is not item
            exact = exact and fits and type(key) is str
            out[key] = new
        result = out if changed else value
        return result, exact and type(result) is dict
    if isinstance(value, (list, tuple)):
        walked = [_redact_for_json(item, patterns, depth + 1) for item in value]
        if all(new is old for (new, _), old in zip(walked, value)):
            result = value
        else:
            new_items = [new for new, _ in walked]
            result = new_items if isinstance(value, list) else tuple(new_items)
        return result, type(result) is list and all(fits for _, fits in walked)
    return value, False


def redact_argv(argv: Iterable[str], patterns: frozenset[str]) -> list[str]:
    """A command line with secret-looking options' values redacted.

    ``--db-password=x`` becomes ``--db-password=[redacted]``, in ``--token x`` the ``x`` is
    redacted, and so is the value of a ``KEY=VALUE`` argument with a secret-looking key:
    command lines end up in the run header, and people pass secrets on them.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        key, eq, _ = arg.partition("=")
        if eq and not arg.startswith("-") and patterns and is_secret(key, patterns):
            out.append(f"{key}={REDACTED}")  # KEY=VALUE arguments: `--set api_token=...`
            continue
        if arg.startswith("-") and patterns:
            name, eq, _ = arg.partition("=")
            if is_secret(name.lstrip("-"), patterns):
                if eq:
                    arg = f"{name}={REDACTED}"
                else:
                    hide_next = True
        out.append(arg)
    return out
