"""Run-time checks of compiled conditions: closures built once, called for every event.

Each check takes a `Context` and returns None when its condition holds, or the first
`ConditionFailure` explaining why not. None of them raises, whatever the event holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final, NamedTuple

from worker.engine.decision import ConditionFailure, condition_failure
from worker.engine.operators import Test
from worker.engine.paths import MISSING, resolve, split_path, summarise
from worker.engine.timing import TimeWindow

SPECIAL_PATHS: Final = ("ticket", "time", "session")


@dataclass(frozen=True, slots=True)
class Context:
    """What a condition looks at: the event, the start-of-event ticket state, its moment,
    and whether the conversation's WhatsApp session is open (see `evaluate`)."""

    payload: Mapping[str, Any]
    ticket_open: bool
    moment: datetime  # timezone-aware
    session_open: bool = False


Check = Callable[[Context], ConditionFailure | None]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: `check(context)` is None when it holds, else the first failure.

    `text` describes the whole condition; `path`/`expected` are set for a single field test.
    `shape` is its structure, from which `fastpath` compiles a bool-only matcher (None: opaque,
    the matcher calls `check`).
    """

    check: Check
    text: str
    path: str | None = None
    expected: str | None = None
    shape: Shape | None = None


class Leaf(NamedTuple):
    """One operator of a field test: its test, expected text, and the operator as written."""

    test: Test
    expected: str
    sees_missing: bool  # only `exists` sees a missing field
    op: str
    arg: Any


@dataclass(frozen=True, slots=True)
class FieldShape:
    path: str
    segments: tuple[str, ...]
    leaves: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class AllShape:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyShape:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class NotShape:
    inner: Condition


@dataclass(frozen=True, slots=True)
class TicketShape:
    want_open: bool


@dataclass(frozen=True, slots=True)
class TimeShape:
    window: TimeWindow
    zone: tzinfo


@dataclass(frozen=True, slots=True)
class SessionShape:
    want_open: bool


@dataclass(frozen=True, slots=True)
class AlwaysShape:
    pass


Shape = (
    FieldShape
    | AllShape
    | AnyShape
    | NotShape
    | TicketShape
    | TimeShape
    | SessionShape
    | AlwaysShape
)


def field_test(path: str, segments: tuple[str, ...], tests: list[Leaf]) -> Condition:
    expected_all = " and ".join(leaf.expected for leaf in tests)
    text = f"{path} {expected_all}"
    shape = FieldShape(path, segments, tuple(tests))
    if len(tests) == 1 and not tests[0].sees_missing:
        check_one = _single(path, segments, tests[0].test, tests[0].expected)
        return Condition(check_one, text, path, expected_all, shape)

    def check(context: Context) -> ConditionFailure | None:
        value = resolve(context.payload, segments)
        for test, expected, sees_missing, _, _ in tests:
            if value is MISSING and not sees_missing:
                return condition_failure(path, expected, None, True)
            if not test(value):
                if value is MISSING:
                    return condition_failure(path, expected, None, True)
                return condition_failure(path, expected, summarise(value), False)
        return None

    return Condition(check, text, path, expected_all, shape)


def _single(path: str, segments: tuple[str, ...], test: Test, expected: str) -> Check:
    """The common leaf: one operator on one field (`data.body` read without a loop)."""
    if len(segments) == 2:
        outer, inner = segments

        def check_two(context: Context) -> ConditionFailure | None:
            payload = context.payload
            parent = payload.get(outer) if type(payload) is dict else resolve(payload, (outer,))
            if type(parent) is dict:
                value = parent.get(inner, MISSING)
            else:
                value = resolve(parent, (inner,))
            if value is MISSING:
                return condition_failure(path, expected, None, True)
            if test(value):
                return None
            return condition_failure(path, expected, summarise(value), False)

        return check_two

    def check(context: Context) -> ConditionFailure | None:
        value = resolve(context.payload, segments)
        if value is MISSING:
            return condition_failure(path, expected, None, True)
        if test(value):
            return None
        return condition_failure(path, expected, summarise(value), False)

    return check


def all_of(children: list[Condition]) -> Condition:
    checks = tuple(child.check for child in children)

    def check(context: Context) -> ConditionFailure | None:
        for child in checks:
            failure = child(context)
            if failure is not None:
                return failure
        return None

    shape = AllShape(tuple(children))
    return Condition(check, " and ".join(f"({c.text})" for c in children), shape=shape)


def any_of(children: list[Condition]) -> Condition:
    if len(children) == 1:
        return children[0]
    checks = tuple(child.check for child in children)

    def check(context: Context) -> ConditionFailure | None:
        failures = []
        for child in checks:
            failure = child(context)
            if failure is None:
                return None
            failures.append(failure)
        return _none_held(failures)

    shape = AnyShape(tuple(children))
    return Condition(check, "any of: " + "; ".join(c.text for c in children), shape=shape)


def _none_held(failures: list[ConditionFailure]) -> ConditionFailure:
    """One failure for an `any` where no alternative held."""
    first = failures[0]
    if all(f.path == first.path and f.seen == first.seen for f in failures):
        expected = " or ".join(f.expected for f in failures)
        return ConditionFailure(first.path, expected, first.seen, first.missing)
    parts = "; ".join(f"{f.path} {f.expected} (saw {_seen(f)})" for f in failures)
    return ConditionFailure("any", f"needs one of: {parts}", [f.seen for f in failures])


def _seen(failure: ConditionFailure) -> str:
    return "missing" if failure.missing else repr(failure.seen)


def negation(inner: Condition) -> Condition:
    inner_check = inner.check
    path, expected = inner.path, inner.expected
    segments = split_path(path) if path is not None and path not in SPECIAL_PATHS else None

    def check(context: Context) -> ConditionFailure | None:
        if inner_check(context) is not None:
            return None
        if path is None:
            return ConditionFailure("not", f"rejects {inner.text}", "it held")
        if path == "ticket":
            seen = "open" if context.ticket_open else "closed"
            return ConditionFailure(path, f"not {expected}", seen)
        if path == "session":
            seen = "open" if context.session_open else "expired"
            return ConditionFailure(path, f"not {expected}", seen)
        if segments is None:
            return ConditionFailure(path, f"not {expected}", "it held")
        seen = summarise(resolve(context.payload, segments))
        return ConditionFailure(path, f"not {expected}", seen)

    return Condition(check, f"not ({inner.text})", shape=NotShape(inner))


def ticket_state(*, want_open: bool) -> Condition:
    expected = "is open" if want_open else "is closed"

    def check(context: Context) -> ConditionFailure | None:
        if context.ticket_open == want_open:
            return None
        seen = "open" if context.ticket_open else "closed"
        return condition_failure("ticket", expected, seen, False)

    shape = TicketShape(want_open)
    return Condition(check, f"ticket {expected}", "ticket", expected, shape)


def session_state(*, want_open: bool) -> Condition:
    """`session: open` / `expired`: the WhatsApp customer-service window (24 h from the
    conversation's last message.received, the event itself included)."""
    expected = "is open" if want_open else "is expired"

    def check(context: Context) -> ConditionFailure | None:
        if context.session_open == want_open:
            return None
        seen = "open" if context.session_open else "expired"
        return condition_failure("session", expected, seen, False)

    shape = SessionShape(want_open)
    return Condition(check, f"session {expected}", "session", expected, shape)


def time_window(window: TimeWindow, zone: tzinfo, zone_name: str) -> Condition:
    expected = f"is {window.describe()} ({zone_name})"

    def check(context: Context) -> ConditionFailure | None:
        try:
            local = context.moment.astimezone(zone)
        except (OverflowError, ValueError):
            return ConditionFailure("time", expected, "a moment out of range")
        if window.contains(local):
            return None
        return ConditionFailure("time", expected, local.strftime("%a %H:%M").lower())

    shape = TimeShape(window, zone)
    return Condition(check, f"time {expected}", "time", expected, shape)
