"""Business time: a `business:` duration counts only open hours, in local wall time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.engine.business_hours import BusinessCalendar

WEEKDAYS = frozenset(range(5))  # mon-fri
EVERY_DAY = frozenset(range(7))
H = 3600


def calendar(
    span: tuple[int, int] = (9 * H, 17 * H),
    days: frozenset[int] = WEEKDAYS,
    holidays: tuple[str, ...] = (),
    zone: str = "UTC",
) -> BusinessCalendar:
    return BusinessCalendar(
        days, span, frozenset(date.fromisoformat(d) for d in holidays), ZoneInfo(zone), zone
    )


def interval(cal: BusinessCalendar, day: date) -> tuple[datetime, datetime]:
    found = cal.interval_of(day)
    assert found is not None
    return found


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        # 2026-12-01 is a Tuesday
        ("2026-12-01T10:00", timedelta(hours=4), "2026-12-01T14:00"),  # inside hours
        ("2026-12-01T10:00", timedelta(hours=7), "2026-12-01T17:00"),  # to the closing second
        ("2026-12-01T10:00", timedelta(hours=8), "2026-12-02T10:00"),  # over the night
        ("2026-12-01T06:00", timedelta(hours=4), "2026-12-01T13:00"),  # before opening
        ("2026-12-01T20:00", timedelta(hours=4), "2026-12-02T13:00"),  # after closing
        ("2026-12-04T16:00", timedelta(hours=2), "2026-12-07T10:00"),  # over the weekend
        ("2026-12-05T12:00", timedelta(minutes=30), "2026-12-07T09:30"),  # starts on a Saturday
        ("2026-12-01T09:00", timedelta(hours=24), "2026-12-03T17:00"),  # three business days
        ("2026-12-01T09:00", timedelta(hours=40), "2026-12-07T17:00"),  # one business week
        ("2026-12-01T09:00", timedelta(days=3), "2026-12-11T17:00"),  # 72 h: nine business days
    ],
)
def test_business_time_counts_only_open_hours(start: str, duration: timedelta, due: str) -> None:
    assert calendar().add(utc(start), duration) == utc(due)


def test_seconds_count_in_spans_given_to_the_second() -> None:
    seconds = calendar(span=(9 * H + 30, 17 * H + 15))  # 09:00:30-17:00:15

    assert seconds.add(utc("2026-12-01T08:00"), timedelta(seconds=10)) == utc("2026-12-01T09:00:40")
    assert seconds.add(utc("2026-12-01T17:00:10"), timedelta(seconds=10)) == utc(
        "2026-12-02T09:00:35"
    )


def test_holidays_are_whole_local_days_off() -> None:
    with_holiday = calendar(holidays=("2026-12-02",))

    assert with_holiday.add(utc("2026-12-01T16:00"), timedelta(hours=2)) == utc("2026-12-03T10:00")
    assert with_holiday.add(utc("2026-12-02T12:00"), timedelta(hours=1)) == utc("2026-12-03T10:00")


def test_a_span_wrapping_midnight_belongs_to_the_day_it_starts_on() -> None:
    night = calendar(span=(22 * H, 6 * H), days=frozenset({4}))  # Friday nights only

    # Friday 23:00 + 5 h: Saturday 04:00, though Saturday is not a day of the calendar
    assert night.add(utc("2026-12-04T23:00"), timedelta(hours=5)) == utc("2026-12-05T04:00")
    # Saturday 05:00 is still Friday's night; 2 h: 1 h now, 1 h the next Friday night
    assert night.add(utc("2026-12-05T05:00"), timedelta(hours=2)) == utc("2026-12-11T23:00")
    # Thursday 23:00 is not open (Thursday's night is not in the calendar)
    assert night.next_open(utc("2026-12-03T23:00")) == utc("2026-12-04T22:00")
    assert night.is_open(utc("2026-12-05T01:00"))
    assert not night.is_open(utc("2026-12-05T06:00"))


def test_a_holiday_takes_off_the_night_that_starts_on_it() -> None:
    night = calendar(span=(22 * H, 6 * H), days=EVERY_DAY, holidays=("2026-12-18",))

    # the night of the 17th runs into the 18th; the night of the 18th is off
    assert night.add(utc("2026-12-18T05:00"), timedelta(hours=2)) == utc("2026-12-19T23:00")


def test_a_span_to_midnight_may_be_written_24_00() -> None:
    late = calendar(span=(20 * H, 24 * H), days=EVERY_DAY)

    assert late.add(utc("2026-12-01T23:00"), timedelta(hours=2)) == utc("2026-12-02T21:00")


def test_the_zone_gives_local_wall_times() -> None:
    riyadh = calendar(days=frozenset({6, 0, 1, 2, 3}), zone="Asia/Riyadh")  # sun-thu, UTC+3

    # Thursday 2026-12-03 16:00 local (13:00 UTC) + 2 h: 1 h Thursday, 1 h on Sunday 10:00
    assert riyadh.add(utc("2026-12-03T13:00"), timedelta(hours=2)) == utc("2026-12-06T07:00")


@pytest.mark.parametrize(
    ("zone", "day", "span", "hours"),
    [
        ("Europe/Berlin", "2026-03-29", (1 * H, 9 * H), 7),  # spring forward inside the span
        ("Europe/Berlin", "2026-10-25", (1 * H, 9 * H), 9),  # fall back inside the span
        ("Europe/Berlin", "2026-03-29", (9 * H, 17 * H), 8),  # the change is before opening
        ("America/New_York", "2026-03-08", (0, 8 * H), 7),
        ("America/New_York", "2026-11-01", (0, 8 * H), 9),
        ("Europe/Berlin", "2026-03-28", (22 * H, 6 * H), 7),  # a night over the change
    ],
)
def test_a_day_with_a_clock_change_inside_its_span_is_shorter_or_longer(
    zone: str, day: str, span: tuple[int, int], hours: int
) -> None:
    cal = calendar(span=span, days=EVERY_DAY, zone=zone)
    begin, end = interval(cal, date.fromisoformat(day))
    next_begin, _ = interval(cal, date.fromisoformat(day) + timedelta(days=1))

    assert end - begin == timedelta(hours=hours)
    assert cal.add(begin, timedelta(hours=hours)) == end
    assert cal.add(begin, timedelta(hours=hours, seconds=1)) == next_begin + timedelta(seconds=1)


def test_across_a_spring_forward_an_8_hour_wait_ends_at_the_wall_time_expected() -> None:
    berlin = calendar(span=(9 * H, 17 * H), days=EVERY_DAY, zone="Europe/Berlin")

    # Saturday 2026-03-28 13:00 CET (12:00 UTC) + 8 business hours: 4 h Saturday, 4 h
    # Sunday (after the change), so Sunday 13:00 CEST, 11:00 UTC
    assert berlin.add(utc("2026-03-28T12:00"), timedelta(hours=8)) == utc("2026-03-29T11:00")
    # and across the fall back: Saturday 2026-10-24 13:00 CEST = 11:00 UTC; Sunday 13:00 CET
    assert berlin.add(utc("2026-10-24T11:00"), timedelta(hours=8)) == utc("2026-10-25T12:00")


def test_an_opening_in_a_spring_forward_gap_is_read_with_the_offset_before() -> None:
    gap = calendar(span=(2 * H + 1800, 10 * H), days=EVERY_DAY, zone="Europe/Berlin")

    begin, end = interval(gap, date(2026, 3, 29))
    assert begin == utc("2026-03-29T01:30")  # 02:30 "CET", i.e. 03:30 CEST
    assert end == utc("2026-03-29T08:00")


def test_a_calendar_that_never_opens_gives_none() -> None:
    every_day_off = tuple((date(2026, 1, 1) + timedelta(days=n)).isoformat() for n in range(500))
    closed = calendar(days=EVERY_DAY, holidays=every_day_off)

    assert closed.add(utc("2026-01-01T00:00"), timedelta(hours=1)) is None
    assert closed.next_open(utc("2026-01-01T00:00")) is None
    # after the holidays it opens again
    assert closed.next_open(utc("2027-06-01T00:00")) == utc("2027-06-01T09:00")


def test_a_wait_past_the_last_representable_year_gives_none() -> None:
    assert calendar().add(datetime(9999, 12, 30, tzinfo=UTC), timedelta(days=30)) is None


def test_a_calendar_describes_itself() -> None:
    riyadh = calendar(days=frozenset({6, 0}), zone="Asia/Riyadh", holidays=("2026-12-18",))

    assert riyadh.describe() == "mon, sun 09:00-17:00 (Asia/Riyadh), 1 holiday"
    assert calendar(span=(9 * H + 5, 17 * H)).describe().startswith("mon, tue, wed, thu, fri 09")
    assert calendar().weekly_seconds == 40 * H
    assert calendar(span=(22 * H, 6 * H)).weekly_seconds == 40 * H
