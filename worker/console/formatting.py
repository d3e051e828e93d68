"""Template filters: times and durations as people read them, JSON shown as text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from worker.engine.timing import span


def when(seconds: float | None) -> str:
    """A Unix time as `2025-01-02 03:04:05 UTC`; "" for none."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def relative(seconds: float | None) -> str:
    """A Unix time relative to now: "in 3m10s" or "3m10s ago"."""
    if not seconds:
        return ""
    left = seconds - time.time()
    return f"in {span(left)}" if left >= 0 else f"{span(left)} ago"


def pretty(value: Any) -> str:
    """Indented JSON (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def pretty_raw(raw: bytes | str) -> str:
    """A stored webhook body, indented when it is JSON, else as text."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return pretty(json.loads(text))
    except ValueError:
        return text


FILTERS: dict[str, Callable[..., str]] = {
    "when": when,
    "span": span,
    "relative": relative,
    "pretty": pretty,
    "pretty_raw": pretty_raw,
}
