"""Loading the time keys: business_hours, after, unless and session; bad ones refused at
file:line:column with a hint, like every other rule error."""

from __future__ import annotations

import textwrap
from datetime import date, timedelta

import pytest

from tests.engine.support import ruleset
from worker.engine import load_ruleset_from_texts
from worker.errors import RulesError

HOURS = 'business_hours: {days: [mon, tue], between: ["09:00", "17:00"]}\n'


def problems_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts({"rules.yaml": textwrap.dedent(text)})
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


def rule_with(lines: str, top: str = "") -> str:
    """A file (with `top` lines first) holding one rule `r` whose body is `lines`."""
    return "version: 1\n" + top + "rules:\n  - name: r\n" + textwrap.indent(lines, "    ")


def test_a_rule_with_after_and_unless_loads() -> None:
    rules = ruleset(
        rule_with(
            "on: message.received\nafter: {business: 1h30m}\n"
            "unless: [conversation.updated, order.paid]\nthen: [close_ticket]\n",
            top="timezone: Asia/Riyadh\nbusiness_hours:\n  days: [sun, mon]\n"
            '  between: ["22:00", "06:00:30"]\n  holidays: [2026-12-18, "2026-12-19"]\n',
        )
    )
    (rule,) = rules.rules

    assert (rule.after, rule.business) == (timedelta(minutes=90), True)
    assert rule.unless == frozenset({"conversation.updated", "order.paid"})
    assert rule.calendar is not None
    assert rule.calendar == rules.file("rules.yaml").calendar
    assert rule.calendar.days == frozenset({6, 0})
    assert rule.calendar.span == (22 * 3600, 6 * 3600 + 30)
    assert rule.calendar.holidays == frozenset({date(2026, 12, 18), date(2026, 12, 19)})
    assert rule.calendar.zone_name == "Asia/Riyadh"  # the file's timezone by default
    assert len(rule.definition) == 12


def test_business_hours_default_to_every_day_and_may_name_their_own_zone() -> None:
    top = 'business_hours: {timezone: Europe/Berlin, between: ["00:00", "24:00"]}\n'
    calendar = ruleset(rule_with("on: '*'\n", top=top)).file("rules.yaml").calendar

    assert calendar is not None
    assert (calendar.days, calendar.span) == (frozenset(range(7)), (0, 86400))
    assert calendar.zone_name == "Europe/Berlin"


def test_a_plain_after_counts_wall_clock_time() -> None:
    (rule,) = ruleset(rule_with("on: message.received\nafter: 30s\nunless: x.y\n")).rules

    assert (rule.after, rule.business, rule.unless) == (
        timedelta(seconds=30),
        False,
        frozenset({"x.y"}),
    )


def definition(body: str, top: str = "") -> str:
    return ruleset(rule_with(body, top=top)).rules[0].definition


BASE = "on: message.received\nwhen: {data.type: text}\nafter: 24h\nthen: [close_ticket]\n"


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        ("description: now with a description\n", True),
        ("cooldown: 1h\n", True),  # checked when the wait comes due
        ("stop: true\n", True),
        ("after: 1d\n", True),  # the same duration written otherwise
        ("then: [{close_ticket: {}}]\n", True),
        ("on: [message.received]\n", True),
        ("after: 25h\n", False),
        ("when: {data.type: image}\n", False),
        ("then: [open_ticket]\n", False),
        ("unless: [conversation.updated]\n", False),
        ("on: [message.received, conversation.created]\n", False),
    ],
)
def test_the_definition_changes_with_what_the_rule_does(edit: str, same: bool) -> None:
    key = edit.split(":")[0]
    edited = "".join(line + "\n" for line in BASE.splitlines() if not line.startswith(key + ":"))

    assert (definition(edited + edit) == definition(BASE)) == same


def test_business_time_is_part_of_the_definition() -> None:
    business = BASE.replace("after: 24h", "after: {business: 24h}")

    assert definition(business, top=HOURS) != definition(BASE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("on: '*'\nafter: 10x\n", "5:12: 'after': found '10x'; expected a duration like 30s"),
        ("on: '*'\nafter: 0s\n", "5:12: 'after': found '0s'"),
        ("on: '*'\nafter: 3651d\n", "5:12: 'after': found '3651d'; expected a duration"),
        ("on: '*'\nafter: 30\n", "5:12: 'after': found 30; expected a duration"),
        ("on: '*'\nafter: [1h]\n", "5:12: 'after': found a list"),
        (
            "on: '*'\nafter: {busines: 4h}\n",
            "5:13: unknown key 'busines' in after; did you mean 'business'?",
        ),
        (
            "on: '*'\nafter: {business: 4q}\n",
            "5:23: 'business': found '4q'; expected a duration like 30s, 10m, 4h, 2d or 1h30m "
            "of business time",
        ),
        (
            "on: '*'\nafter: {business: 4h}\n",
            "5:13: a business duration needs business_hours: at the top of this file",
        ),
        (
            "on: message.received\nunless: conversation.updated\n",
            "5:5: 'unless' cancels a rule's wait, and this rule has no 'after:'",
        ),
        (
            "on: message.received\nafter: 1h\nunless: [conversation.updatd]\n",
            "6:14: unknown event 'conversation.updatd'; did you mean 'conversation.updated'?",
        ),
        (
            "on: [message.received, conversation.updated]\nafter: 1h\n"
            "unless: [conversation.updated]\n",
            "6:14: 'conversation.updated' is both in on: and unless:",
        ),
        ("on: message.received\nafter: 1h\nunless: ['*']\n", "6:14: 'unless': found '*'"),
        ("on: message.received\nafter: 1h\nunless: []\n", "6:13: 'unless': found an empty list"),
        (
            "on: '*'\nwhen: {session: opne}\n",
            "5:21: 'session': found 'opne'; expected open or expired; did you mean 'open'?",
        ),
        ("on: '*'\nwhen: {session: true}\n", "5:21: 'session': found true; expected open"),
        ("on: '*'\nwhen: {sesion: open}\n", "5:12: unknown condition 'sesion'; did you mean"),
    ],
)
def test_a_bad_time_key_of_a_rule_is_refused_where_it_is(body: str, expected: str) -> None:
    found = problems_of(rule_with(body))

    assert any(f.startswith(expected) for f in found), found


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("business_hours: 9-17\n", "2:17: 'business_hours': found '9-17'; expected a mapping"),
        (
            'business_hours: {between: ["09:00", "25:00"]}\n',
            "2:37: bad time '25:00'; expected HH:MM or HH:MM:SS from 00:00 to 24:00",
        ),
        ('business_hours: {between: ["9:00", "17:00"]}\n', "2:28: bad time '9:00'"),
        ('business_hours: {between: ["09:00:60", "17:00"]}\n', "2:28: bad time '09:00:60'"),
        ('business_hours: {between: ["24:00", "06:00"]}\n', "2:28: business hours cannot open"),
        ('business_hours: {between: ["09:00", "09:00"]}\n', "2:27: 'between' opens and closes"),
        ('business_hours: {between: ["09:00"]}\n', "2:27: 'between': found a list; expected two"),
        ("business_hours: {days: [mon]}\n", "2:17: business_hours needs 'between'"),
        (
            'business_hours: {days: [mon, tuesday], between: ["09:00", "17:00"]}\n',
            "2:30: unknown day 'tuesday'; did you mean 'tue'?",
        ),
        (
            'business_hours: {timezone: Europe/Berln, between: ["09:00", "17:00"]}\n',
            "2:28: unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?",
        ),
        (
            'business_hours: {holidays: [2026-13-01], between: ["09:00", "17:00"]}\n',
            "2:29: YAML syntax error: '2026-13-01' is not a date: month must be in 1..12",
        ),
        (
            'business_hours: {holidays: [christmas], between: ["09:00", "17:00"]}\n',
            "2:29: holiday 'christmas' is not a date",
        ),
        (
            'business_hours: {holidays: 2026-12-25, between: ["09:00", "17:00"]}\n',
            "2:28: 'holidays': found '2026-12-25'; expected a list of dates",
        ),
        (
            'business_hours: {day: [mon], between: ["09:00", "17:00"]}\n',
            "2:18: unknown key 'day' in business_hours; did you mean 'days'?",
        ),
    ],
)
def test_bad_business_hours_are_refused_where_they_are(hours: str, expected: str) -> None:
    found = problems_of(rule_with("on: '*'\n", top=hours))

    assert any(f.startswith(expected) for f in found), found
