"""`time:` windows (days of the week, a daily span that may wrap midnight) and durations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.yaml_source import Source, did_you_mean, found, position, to_plain

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_DURATION: Final = re.compile(r"(?:\d+[smhd])+")
_CLOCK_SECONDS: Final = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?|24:00(:00)?")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION: Final = timedelta(days=3650)  # a longer duration is refused (about 10 years)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days (0 = Monday; None = every day) and a span in minutes from midnight [start, end).

    A span whose end is before its start wraps midnight (22:00-06:00); days are those of the
    local moment itself.
    """

    days: frozenset[int] | None
    span: tuple[int, int] | None

    def contains(self, local: datetime) -> bool:
        if self.days is not None and local.weekday() not in self.days:
            return False
        if self.span is None:
            return True
        start, end = self.span
        minute = local.hour * 60 + local.minute
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end

    def describe(self) -> str:
        parts = []
        if self.days is not None:
            parts.append(", ".join(DAYS[d] for d in sorted(self.days)))
        if self.span is not None:
            parts.append("between {} and {}".format(*(_clock(m) for m in self.span)))
        return " ".join(parts)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_duration(text: str) -> timedelta | None:
    """`10m`, `30s`, `2h`, `1d` or a sum like `1h30m`; None when malformed, zero, or longer
    than `MAX_DURATION`."""
    compact = text.strip()
    if len(compact) > 40 or not _DURATION.fullmatch(compact):
        return None
    seconds = sum(
        int(amount) * _UNIT_SECONDS[unit] for amount, unit in re.findall(r"(\d+)([smhd])", compact)
    )
    if seconds <= 0 or seconds > MAX_DURATION.total_seconds():
        return None
    return timedelta(seconds=seconds)


def parse_clock(text: Any) -> int | None:
    """Seconds from midnight of `HH:MM` or `HH:MM:SS` (00:00 to 24:00); None otherwise."""
    if not isinstance(text, str) or not _CLOCK_SECONDS.fullmatch(text):
        return None
    parts = [int(part) for part in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) == 3 else 0)


def parse_time_window(
    value: Any, parent: CommentedMap, key: Any, source: Source
) -> TimeWindow | None:
    """The `time:` mapping found under `parent[key]`, or None after recording its problems."""
    where = position(parent, (key,))
    if not isinstance(value, CommentedMap) or not value:
        source.add(
            where,
            f"'time': found {found(to_plain(value))}; expected a mapping with days and/or "
            'between, like {days: [mon, fri], between: ["09:00", "17:00"]}',
        )
        return None
    before = len(source.problems)
    days: frozenset[int] | None = None
    span: tuple[int, int] | None = None
    for name in value:
        if name == "days":
            days = parse_days(value, source)
        elif name == "between":
            span = _span(value, source)
        else:
            source.at(
                value,
                (name,),
                f"unknown key '{name}' in a time condition"
                f"{did_you_mean(str(name), ('days', 'between'))} (expected days, between)",
                key=True,
            )
    if len(source.problems) != before:
        return None
    return TimeWindow(days, span)


def parse_days(node: CommentedMap, source: Source) -> frozenset[int] | None:
    """The `days:` list under `node` as weekday numbers (0 = Monday), or None after recording
    its problems."""
    days = node["days"]
    if not isinstance(days, CommentedSeq) or not days:
        source.at(
            node,
            ("days",),
            f"'days': found {found(to_plain(days))}; expected a list like [mon, tue]",
        )
        return None
    picked = set()
    for i, day in enumerate(days):
        text = day.casefold() if isinstance(day, str) else None
        if text not in DAYS:
            hint = did_you_mean(text, DAYS) if text else ""
            source.at(
                days,
                (i,),
                f"unknown day {found(to_plain(day))}{hint} (expected one of: {', '.join(DAYS)})",
            )
            continue
        picked.add(DAYS.index(text))
    return frozenset(picked)


def _span(node: CommentedMap, source: Source) -> tuple[int, int] | None:
    span = node["between"]
    expected = 'expected two times like ["09:00", "17:00"]'
    if not isinstance(span, CommentedSeq) or len(span) != 2:
        source.at(node, ("between",), f"'between': found {found(to_plain(span))}; {expected}")
        return None
    minutes = []
    for i, clock in enumerate(span):
        text = to_plain(clock)
        if not isinstance(text, str) or not _CLOCK.fullmatch(text):
            source.at(span, (i,), f"bad time {found(text)}; expected HH:MM from 00:00 to 24:00")
            continue
        hours, mins = text.split(":")
        minutes.append(int(hours) * 60 + int(mins))
    if len(minutes) != 2:
        return None
    if minutes[0] == minutes[1]:
        source.at(
            node, ("between",), f"'between' starts and ends at {_clock(minutes[0])}; {expected}"
        )
        return None
    return minutes[0] % 1440, minutes[1]


def span(seconds: float) -> str:
    """A duration as people read it: 2d3h, 3h5m, 4m10s, 12s (its sign dropped)."""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
