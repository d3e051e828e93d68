"""Lint findings about time: waits outliving the conversation's state, business hours that
never open, waits that can never be scheduled, unknown unless: events."""

from __future__ import annotations

import textwrap
from datetime import date, timedelta

import pytest

from worker.engine import load_ruleset_from_texts
from worker.engine.lint import lint_ruleset
from worker.engine.lint_time import wall_clock

RETENTION = timedelta(days=30)
HOURS = 'business_hours: {days: [mon, tue, wed, thu, fri], between: ["09:00", "17:00"]}\n'


def lint(text: str, retention: timedelta | None = RETENTION) -> list[str]:
    texts = {"r.yaml": textwrap.dedent(text)}
    found = lint_ruleset(load_ruleset_from_texts(texts), texts, retention=retention)
    return [f"{p.line}:{p.column}: {p.message}" for p in found]


def one_rule(body: str, top: str = HOURS) -> str:
    return f"version: 1\n{top}rules:\n  - name: r\n" + textwrap.indent(body, "    ")


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("after: 29d", []),
        (
            "after: 31d",
            [
                "6:5: this wait is 31d, longer than STATE_RETENTION (30d): the conversation's "
                "state, and the wait with it, expires first unless another event of the "
                "conversation comes"
            ],
        ),
        ("after: {business: 120h}", []),  # three weeks of 40 business hours: 17 to 19 days
        (
            "after: {business: 200h}",
            [
                "6:5: this wait lasts up to 35d of wall-clock time, longer than "
                "STATE_RETENTION (30d): the conversation's state, and the wait with it, "
                "expires first unless another event of the conversation comes"
            ],
        ),
    ],
)
def test_a_wait_longer_than_the_state_is_kept_is_a_warning(after: str, expected: list[str]) -> None:
    assert lint(one_rule(f"on: message.received\n{after}\nthen: [close_ticket]\n")) == expected


def test_without_a_retention_the_length_of_waits_is_not_linted() -> None:
    assert lint(one_rule("on: message.received\nafter: 400d\n"), retention=None) == []


def test_the_wall_clock_length_of_a_business_wait_is_its_longest_over_a_week() -> None:
    texts = {"r.yaml": one_rule("on: message.received\nafter: {business: 8h}\n")}
    (rule,) = load_ruleset_from_texts(texts).rules

    # from Friday 17:00: the whole of Monday's hours, so Monday 17:00, 72 hours later
    assert wall_clock(rule) == timedelta(hours=72)


def test_business_hours_that_stay_closed_for_a_long_stretch_are_a_warning() -> None:
    mondays = [date(2026, 1, 5) + timedelta(weeks=n) for n in range(60)]
    days = ", ".join(day.isoformat() for day in mondays)
    text = one_rule(
        "on: message.received\n",
        top='business_hours:\n  days: [mon]\n  between: ["09:00", "17:00"]\n'
        f"  holidays: [{days}]\n",
    )

    assert lint(text) == [
        "2:1: business_hours have no open hour for 400 days from 2026-01-05 (holidays cover "
        "every open day): a business wait starting then schedules nothing"
    ]


def test_holidays_that_leave_open_days_are_fine() -> None:
    text = one_rule("on: message.received\n", top=HOURS.replace("}", ", holidays: [2026-12-25]}"))

    assert lint(text) == []


def test_after_on_events_without_a_conversation_can_never_schedule() -> None:
    found = lint(one_rule("on: message.status.updated\nafter: 1h\nthen: [close_ticket]\n"))

    assert found == [
        "6:5: after: on a rule whose events carry no conversation (message.status.updated): "
        "it can never schedule (waits are per conversation)"
    ]


def test_an_unless_event_awalchat_does_not_send_is_a_warning() -> None:
    found = lint(one_rule("on: message.received\nafter: 1h\nunless: [order.paid]\n"))

    assert found == [
        "7:14: unless: event 'order.paid' is not one AwalChat is known to send (known: "
        "message.received, message.status.updated, conversation.created, conversation.updated)"
    ]


def test_a_timed_close_is_not_paired_with_an_opening_on_the_same_event() -> None:
    text = one_rule("on: message.received\nthen: [open_ticket]\n") + (
        "  - {name: later, on: message.received, after: 1h, then: [close_ticket]}\n"
    )

    assert lint(text) == []
