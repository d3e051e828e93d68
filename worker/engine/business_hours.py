"""Business time: when a `business:` duration ends (rules.md "Time"). Pure arithmetic.

    calendar = BusinessCalendar(days, span, holidays, zone)
    calendar.add(start, timedelta(hours=4))   -> the moment 4 business hours after `start`

A calendar opens on each of its `days` (0 = Monday) for one `span`: seconds from local
midnight [open, close). A span whose close is not after its open wraps past midnight
(22:00-06:00) and belongs to the day it starts on: `days` and `holidays` are matched
against that day, so a holiday takes off the spans that start on it (with a wrapping span,
the night that starts on the holiday, not the one that ends on it).

Open and close are local wall times, turned into real moments with `zone` (zoneinfo): an
8-hour day lasts 8 real hours, except on the day a daylight-saving change falls inside its
span (7 or 9). A wall time that does not exist (in a spring-forward gap) is read with the
offset before the change (02:30 in Berlin on 2026-03-29 is 03:30 CEST); one that exists
twice (fall-back) is its first occurrence.

Counting starts at `start` when the calendar is open then, else when it next opens. The
search is bounded: `add` gives None when the calendar stays closed for `MAX_CLOSED_DAYS`
days in a row (e.g. holidays covering a year), or the duration is not used up within
`MAX_DAYS` days; `next_open` likewise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

DAY_SECONDS: Final = 86400
MAX_CLOSED_DAYS: Final = 400  # closed this long in a row: no open hour
MAX_DAYS: Final = 366 * 50  # never look further than this (about 50 years)
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class BusinessCalendar:
    """Open hours: `days` (0 = Monday), a daily `span` in seconds from local midnight
    (close may be 86400; close <= open wraps midnight), whole local `holidays` off, `zone`."""

    days: frozenset[int]
    span: tuple[int, int]
    holidays: frozenset[date] = frozenset()
    zone: tzinfo = field(default=UTC, compare=False)
    zone_name: str = "UTC"

    def intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals [open, close) in UTC that end after `start`, in time order,
        at most `MAX_DAYS` days of them; ends early after `MAX_CLOSED_DAYS` closed days."""
        local_day = _aware(start).astimezone(self.zone).date() - timedelta(days=1)
        closed = 0
        for _ in range(MAX_DAYS):
            interval = self.interval_of(local_day)
            local_day += timedelta(days=1)
            if interval is None or interval[1] <= start:
                closed = closed + 1 if interval is None else 0
                if closed >= MAX_CLOSED_DAYS:
                    return
                continue
            closed = 0
            yield interval

    def interval_of(self, day: date) -> tuple[datetime, datetime] | None:
        """The open interval that starts on local `day`, in UTC; None when closed that day."""
        if day.weekday() not in self.days or day in self.holidays:
            return None
        opens, closes = self.span
        end_day = day if closes > opens else day + timedelta(days=1)
        begin = self._moment(day, opens)
        end = self._moment(end_day, closes)
        if end <= begin:  # a span inside a spring-forward gap
            return None
        return begin, end

    def _moment(self, day: date, seconds: int) -> datetime:
        if seconds >= DAY_SECONDS:
            day, seconds = day + timedelta(days=1), seconds - DAY_SECONDS
        hours, rest = divmod(seconds, 3600)
        wall = datetime.combine(day, time(hours, rest // 60, rest % 60), self.zone)
        return wall.astimezone(UTC)

    def add(self, start: datetime, duration: timedelta) -> datetime | None:
        """The moment `duration` of open time has passed since `start` (aware; naive is
        UTC), in UTC; None when the calendar has no open hour to count it (see module)."""
        start = _aware(start).astimezone(UTC)
        left = duration
        try:
            for begin, end in self.intervals(start):
                begin = max(begin, start)
                if left <= end - begin:
                    return begin + left
                left -= end - begin
        except OverflowError:  # past year 9999
            return None
        return None

    def next_open(self, start: datetime) -> datetime | None:
        """`start` when open then, else the moment the calendar next opens (UTC)."""
        start = _aware(start).astimezone(UTC)
        try:
            for begin, _ in self.intervals(start):
                return max(begin, start)
        except OverflowError:
            return None
        return None

    def is_open(self, moment: datetime) -> bool:
        return self.next_open(moment) == _aware(moment).astimezone(UTC)

    @property
    def weekly_seconds(self) -> int:
        """Open seconds in a week without holidays or clock changes."""
        opens, closes = self.span
        daily = closes - opens if closes > opens else closes + DAY_SECONDS - opens
        return daily * len(self.days)

    def describe(self) -> str:
        """Like "sun-thu 09:00-17:00 (Asia/Riyadh), 1 holiday"."""
        days = ", ".join(WEEKDAYS[d] for d in sorted(self.days))
        opens, closes = (_clock(s) for s in self.span)
        text = f"{days} {opens}-{closes} ({self.zone_name})"
        if self.holidays:
            count = len(self.holidays)
            text += f", {count} holiday{'s' * (count != 1)}"
        return text


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
