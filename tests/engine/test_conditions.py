"""Conditions: every operator, logic, ticket and time, and what a failure explains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.engine.support import NOW, ruleset
from worker.engine.checks import Context
from worker.engine.decision import ConditionFailure
from worker.engine.fastpath import compile_predicate


def check(
    when: str,
    data: Any,
    *,
    ticket_open: bool = False,
    moment: datetime = NOW,
    timezone: str = "UTC",
) -> ConditionFailure | None:
    """Compile `when` (a YAML flow mapping) and check it against an event with `data`.

    Also asserts that the fast predicate compiled from `when` agrees.
    """
    rules = ruleset(
        f"version: 1\ntimezone: {timezone}\nrules:\n  - name: r\n    on: '*'\n    when: {when}\n"
    )
    payload = {"event": "message.received", "data": data}
    condition = rules.rules[0].condition
    failure = condition.check(Context(payload, ticket_open, moment))
    # The compiled bool-only predicate must agree with the explaining check, every time.
    fast = compile_predicate(condition.shape, condition.check)
    assert fast(payload, ticket_open, moment) is (failure is None), (when, data)
    return failure


def holds(when: str, data: Any, **kwargs: Any) -> bool:
    return check(when, data, **kwargs) is None


@pytest.mark.parametrize(
    ("when", "data", "expected"),
    [
        # plain value and equals: text ignores case; numbers equal their text
        ("{data.type: text}", {"type": "TEXT"}, True),
        ("{data.type: text}", {"type": "image"}, False),
        ("{data.n: 42}", {"n": 42}, True),
        ("{data.n: 42}", {"n": "42"}, True),
        ("{data.n: '42'}", {"n": 42}, True),
        ("{data.n: 42}", {"n": 43}, False),
        ("{data.n: 1}", {"n": True}, False),
        ("{data.flag: true}", {"flag": True}, True),
        ("{data.flag: true}", {"flag": "true"}, False),
        ("{data.x: null}", {"x": None}, True),
        ("{data.x: {equals: [a, b]}}", {"x": ["a", "b"]}, True),
        ("{data.type: {equals: Text}}", {"type": "text"}, True),
        ("{data.type: {not_equals: text}}", {"type": "Image"}, True),
        ("{data.type: {not_equals: text}}", {"type": "TEXT"}, False),
        # in / not_in
        ("{data.type: {in: [text, image]}}", {"type": "IMAGE"}, True),
        ("{data.type: {in: [text, image]}}", {"type": "audio"}, False),
        ("{data.n: {in: [1, 2]}}", {"n": 2}, True),
        ("{data.n: {in: ['1', '2']}}", {"n": 2}, True),
        ("{data.type: {not_in: [audio]}}", {"type": "text"}, True),
        ("{data.type: {not_in: [audio]}}", {"type": "Audio"}, False),
        # contains / not_contains / contains_any
        ("{data.body: {contains: thank}}", {"body": "Thanks a lot"}, True),
        ("{data.body: {contains: thank}}", {"body": "hello"}, False),
        ("{data.tags: {contains: vip}}", {"tags": ["new", "VIP"]}, True),
        ("{data.tags: {contains: vip}}", {"tags": ["vipper"]}, False),
        ("{data.body: {not_contains: spam}}", {"body": "hello"}, True),
        ("{data.body: {not_contains: spam}}", {"body": "SPAM!"}, False),
        ("{data.body: {contains_any: [refund, broken]}}", {"body": "It is BROKEN"}, True),
        ("{data.body: {contains_any: [refund, broken]}}", {"body": "fine"}, False),
        # starts_with / ends_with
        ("{data.from: {starts_with: '966'}}", {"from": "966500000001"}, True),
        ("{data.from: {starts_with: '966'}}", {"from": 966500000001}, True),
        ("{data.body: {starts_with: hello}}", {"body": "HELLO there"}, True),
        ("{data.body: {ends_with: '!'}}", {"body": "thanks!"}, True),
        ("{data.body: {ends_with: 'ok'}}", {"body": "ok?"}, False),
        # matches: RE2, case-sensitive unless the pattern says (?i), searches anywhere
        ("{data.body: {matches: '\\bhelp\\b'}}", {"body": "I need help"}, True),
        ("{data.body: {matches: '\\bhelp\\b'}}", {"body": "I need HELP"}, False),
        ("{data.body: {matches: '(?i)\\bhelp\\b'}}", {"body": "I need HELP"}, True),
        ("{data.body: {matches: '^\\d+$'}}", {"body": 12345}, True),
        # gt / gte / lt / lte: numbers, and numeric text
        ("{data.n: {gt: 5}}", {"n": 6}, True),
        ("{data.n: {gt: 5}}", {"n": 5}, False),
        ("{data.n: {gte: 5}}", {"n": 5}, True),
        ("{data.n: {lt: 5}}", {"n": 4.5}, True),
        ("{data.n: {lte: 5}}", {"n": 6}, False),
        ("{data.n: {gt: 5}}", {"n": "10"}, True),
        ("{data.n: {gt: 5}}", {"n": "ten"}, False),
        ("{data.n: {gt: 5}}", {"n": True}, False),
        ("{data.n: {gt: 5}}", {"n": 10**400}, True),
        ("{data.n: {gt: 5, lt: 10}}", {"n": 7}, True),
        ("{data.n: {gt: 5, lt: 10}}", {"n": 12}, False),
        # exists
        ("{data.body: {exists: true}}", {"body": ""}, True),
        ("{data.body: {exists: true}}", {}, False),
        ("{data.body: {exists: true}}", {"body": None}, False),
        ("{data.body: {exists: false}}", {}, True),
        ("{data.body: {exists: false}}", {"body": "x"}, False),
        # a missing field fails every other operator, negative ones included
        ("{data.body: {not_contains: spam}}", {}, False),
        ("{data.type: {not_equals: text}}", {}, False),
        ("{data.type: {not_in: [text]}}", {}, False),
        # paths index into lists
        ("{data.items.1.sku: b}", {"items": [{"sku": "a"}, {"sku": "B"}]}, True),
        ("{data.items.5.sku: b}", {"items": [{"sku": "a"}]}, False),
        ("{event: message.received}", {}, True),
    ],
)
def test_operator(when: str, data: Any, expected: bool) -> None:
    assert holds(when, data) is expected


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    10**5000,
    1e308,
    float("nan"),
    "",
    "\ud800 lone surrogate",
    ["a", 1, None],
    {"nested": {"deeper": [1, 2, {"x": "y"}]}},
    [[[[[]]]]],
]
EVERY_OPERATOR = [
    "{equals: a}",
    "{equals: 1}",
    "{equals: [a]}",
    "{not_equals: a}",
    "{in: [a, 1]}",
    "{not_in: [a]}",
    "{contains: a}",
    "{not_contains: a}",
    "{contains_any: [a, b]}",
    "{starts_with: a}",
    "{ends_with: a}",
    "{matches: 'a+'}",
    "{gt: 1}",
    "{gte: 1.5}",
    "{lt: 1}",
    "{lte: 1}",
    "{exists: true}",
    "{exists: false}",
]


@pytest.mark.parametrize("operator", EVERY_OPERATOR)
@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda value: type(value).__name__)
def test_no_operator_raises_on_odd_event_data(operator: str, value: Any) -> None:
    check(f"{{data.x: {operator}}}", {"x": value})
    check(f"{{data.x.y: {operator}}}", {"x": value})
    check(f"{{data.x: {operator}}}", value)


def test_a_mapping_of_several_conditions_needs_all_of_them() -> None:
    when = "{data.type: text, data.body: {contains: help}}"

    assert holds(when, {"type": "text", "body": "help me"})
    assert not holds(when, {"type": "image", "body": "help me"})
    assert not holds(when, {"type": "text", "body": "hello"})


def test_all_any_and_not() -> None:
    when = "{all: [{data.a: 1}, {any: [{data.b: 1}, {data.c: 1}]}, {not: {data.d: 1}}]}"

    assert holds(when, {"a": 1, "b": 1})
    assert holds(when, {"a": 1, "c": 1, "d": 2})
    assert not holds(when, {"a": 1})
    assert not holds(when, {"a": 1, "b": 1, "d": 1})


@pytest.mark.parametrize(("ticket_open", "expected"), [(True, True), (False, False)])
def test_ticket_open_and_closed(ticket_open: bool, expected: bool) -> None:
    assert holds("{ticket: open}", {}, ticket_open=ticket_open) is expected
    assert holds("{ticket: closed}", {}, ticket_open=ticket_open) is not expected


OFFICE = "{time: {days: [sun, mon, tue, wed, thu], between: ['09:00', '17:00']}}"
NIGHT = "{time: {between: ['22:00', '06:00']}}"


@pytest.mark.parametrize(
    ("when", "moment", "expected"),
    [
        (OFFICE, datetime(2024, 5, 14, 6, 0, tzinfo=UTC), True),  # Tue 09:00 in Riyadh
        (OFFICE, datetime(2024, 5, 14, 5, 59, tzinfo=UTC), False),  # Tue 08:59
        (OFFICE, datetime(2024, 5, 14, 13, 59, tzinfo=UTC), True),  # Tue 16:59
        (OFFICE, datetime(2024, 5, 14, 14, 0, tzinfo=UTC), False),  # Tue 17:00: end excluded
        (OFFICE, datetime(2024, 5, 17, 8, 0, tzinfo=UTC), False),  # Friday
        (OFFICE, datetime(2024, 5, 12, 8, 0, tzinfo=UTC), True),  # Sunday
        (NIGHT, datetime(2024, 5, 14, 20, 0, tzinfo=UTC), True),  # 23:00
        (NIGHT, datetime(2024, 5, 14, 1, 0, tzinfo=UTC), True),  # 04:00
        (NIGHT, datetime(2024, 5, 14, 3, 0, tzinfo=UTC), False),  # 06:00
        (NIGHT, datetime(2024, 5, 14, 18, 59, tzinfo=UTC), False),  # 21:59
        ("{time: {days: [sat]}}", datetime(2024, 5, 17, 21, 30, tzinfo=UTC), True),  # Sat 00:30
    ],
)
def test_time_windows_use_the_files_timezone(when: str, moment: datetime, expected: bool) -> None:
    assert holds(when, {}, moment=moment, timezone="Asia/Riyadh") is expected


def test_a_time_window_in_utc_by_default() -> None:
    assert holds(NIGHT, {}, moment=datetime(2024, 5, 14, 23, 0, tzinfo=UTC))
    assert not holds(NIGHT, {}, moment=datetime(2024, 5, 14, 21, 0, tzinfo=UTC))


def test_a_failure_names_the_first_failing_leaf_and_what_it_saw() -> None:
    failure = check(
        "{data.type: text, data.body: {contains: thank}}", {"type": "text", "body": "hi"}
    )

    assert failure == ConditionFailure("data.body", "contains 'thank'", "hi")
    assert failure.describe() == "data.body contains 'thank': saw 'hi'"


def test_a_failure_on_a_missing_field_says_it_was_missing() -> None:
    failure = check("{data.body: {contains: thank}}", {})

    assert failure == ConditionFailure("data.body", "contains 'thank'", None, missing=True)
    assert failure.describe() == "data.body contains 'thank': saw missing"


def test_a_failing_any_on_one_field_lists_the_alternatives() -> None:
    failure = check(
        "{any: [{data.body: {contains: thank}}, {data.body: {matches: fixed}}]}", {"body": "hi"}
    )

    assert failure == ConditionFailure("data.body", "contains 'thank' or matches 'fixed'", "hi")


def test_a_failing_any_on_several_fields_says_what_each_saw() -> None:
    failure = check("{any: [{ticket: open}, {data.body: {contains: thank}}]}", {"body": "hi"})

    assert failure is not None
    assert failure.path == "any"
    assert (
        failure.expected
        == "needs one of: ticket is open (saw 'closed'); data.body contains 'thank' (saw 'hi')"
    )


def test_a_failing_not_shows_the_value_it_rejected() -> None:
    assert check("{not: {data.type: text}}", {"type": "Text"}) == ConditionFailure(
        "data.type", "not equals 'text'", "Text"
    )
    assert check("{not: {ticket: open}}", {}, ticket_open=True) == ConditionFailure(
        "ticket", "not is open", "open"
    )


def test_failures_of_ticket_and_time_show_the_state_and_local_time() -> None:
    assert check("{ticket: open}", {}) == ConditionFailure("ticket", "is open", "closed")
    failure = check(
        OFFICE, {}, moment=datetime(2024, 5, 17, 8, 0, tzinfo=UTC), timezone="Asia/Riyadh"
    )
    assert failure == ConditionFailure(
        "time", "is mon, tue, wed, thu, sun between 09:00 and 17:00 (Asia/Riyadh)", "fri 11:00"
    )


def test_a_long_value_seen_is_shortened_in_the_failure() -> None:
    failure = check("{data.body: {contains: thank}}", {"body": "x" * 1000})

    assert failure is not None
    assert isinstance(failure.seen, str)
    assert len(failure.seen) <= 201


def test_a_failing_not_of_several_conditions_names_them() -> None:
    failure = check("{not: {data.a: 1, data.b: 2}}", {"a": 1, "b": 2})

    assert failure == ConditionFailure(
        "not", "rejects (data.a equals 1) and (data.b equals 2)", "it held"
    )


def test_a_moment_beyond_the_calendar_fails_a_time_window_without_raising() -> None:
    far = datetime.max.replace(tzinfo=UTC)

    failure = check(NIGHT, {}, moment=far, timezone="Asia/Riyadh")

    assert failure == ConditionFailure(
        "time", "is between 22:00 and 06:00 (Asia/Riyadh)", "a moment out of range"
    )
