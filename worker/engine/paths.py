"""Dotted paths into an event envelope (`data.body`, `data.items.0.sku`).

`resolve` never raises: whatever the event holds, a path either finds a value or MISSING.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

PATH_RE: Final = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
_TEXT_LIMIT: Final = 200


def split_path(path: str) -> tuple[str, ...] | None:
    """The path's segments, or None when it is not a plain dotted path."""
    if not PATH_RE.fullmatch(path):
        return None
    return tuple(path.split("."))


def resolve(root: Any, segments: tuple[str, ...]) -> Any:
    """The value at `segments` inside `root`, or MISSING. Digits index into lists."""
    current = root
    for segment in segments:
        if isinstance(current, dict) or isinstance(current, Mapping):  # noqa: SIM101
            current = current.get(segment, MISSING)
            if current is MISSING:
                return MISSING
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def number_text(value: int | float) -> str | None:
    """`str(value)`, or None for an integer too long to print."""
    try:
        return str(value)
    except ValueError:
        return None


def as_text(value: Any) -> str:
    """A placeholder's text: strings as they are, None and MISSING as '', others JSON-ish."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value) or ""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        return ""


def summarise(value: Any) -> Any:
    """A short, JSON-able stand-in for a value seen by a condition (for explanations)."""
    if isinstance(value, str):
        return value if len(value) <= _TEXT_LIMIT else value[:_TEXT_LIMIT] + "…"
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if number_text(value) is not None else "<a number too long to show>"
    if isinstance(value, Mapping):
        keys = ", ".join(str(k) for k in list(value)[:10])
        return f"<an object with keys: {keys}>" if keys else "<an empty object>"
    if isinstance(value, list):
        return f"<a list of {len(value)} items>"
    return f"<{type(value).__name__}>"
