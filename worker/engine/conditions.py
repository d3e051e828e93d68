"""Condition trees compiled once, at load time, into checks that never raise.

A compiled `Condition` is called with a `Context` (the event's payload, the ticket state
when the event arrived, and the moment it happened) and returns None when it holds, or the
first `ConditionFailure` that explains why not. Compilation reports every problem it finds
to the file's `Source` and returns None when there was any.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.model import ConditionFailure
from worker.engine.operators import OPERATORS, OperatorArgError, Test, build_equals
from worker.engine.paths import MISSING, resolve, split_path, summarise
from worker.engine.source import Position, Source, did_you_mean, found, position, to_plain
from worker.engine.timing import TimeWindow, parse_time_window


@dataclass(frozen=True, slots=True)
class Context:
    """What a condition looks at: the event, the start-of-event ticket state, its moment."""

    payload: Mapping[str, Any]
    ticket_open: bool
    moment: datetime  # timezone-aware


Check = Callable[[Context], ConditionFailure | None]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: `check(context)` is None when it holds, else the first failure.

    `text` describes the whole condition; `path`/`expected` are set for a single field test.
    """

    check: Check
    text: str
    path: str | None = None
    expected: str | None = None


ALWAYS: Final = Condition(lambda context: None, "always")

LOGIC_KEYS: Final = ("all", "any", "not", "ticket", "time")
_ENVELOPE_ROOTS: Final = frozenset({"event", "timestamp", "data"})


def show(arg: Any) -> str:
    """An operator argument as a message shows it."""
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if arg is None:
        return "null"
    return repr(arg)


class ConditionCompiler:
    """Compiles the `when:` trees of one file (whose timezone `time:` conditions use)."""

    def __init__(self, source: Source, zone: tzinfo, zone_name: str) -> None:
        self.source = source
        self.zone = zone
        self.zone_name = zone_name

    def compile(self, node: Any, where: Position) -> Condition | None:
        """The compiled `when:` mapping at `where`, or None after recording its problems."""
        before = len(self.source.problems)
        condition = self._mapping(node, where)
        return condition if len(self.source.problems) == before else None

    def _mapping(self, node: Any, where: Position) -> Condition | None:
        if not isinstance(node, CommentedMap) or not node:
            self.source.add(
                where, f"a condition must be a non-empty mapping; found {found(to_plain(node))}"
            )
            return None
        parts = [self._entry(node, key) for key in node]
        valid = [part for part in parts if part is not None]
        if len(valid) != len(parts):
            return None
        return valid[0] if len(valid) == 1 else _all(valid)

    def _entry(self, node: CommentedMap, key: Any) -> Condition | None:
        value = node[key]
        at_value = position(node, (key,))
        if key in ("all", "any"):
            children = self._list(value, at_value, key)
            if children is None:
                return None
            return _all(children) if key == "all" else _any(children)
        if key == "not":
            inner = self._mapping(value, at_value)
            return None if inner is None else _not(inner)
        if key == "ticket":
            return self._ticket(value, at_value)
        if key == "time":
            window = parse_time_window(value, node, key, self.source)
            return None if window is None else _time(window, self.zone, self.zone_name)
        return self._field(node, key, value)

    def _list(self, value: Any, where: Position, key: str) -> list[Condition] | None:
        if not isinstance(value, CommentedSeq) or not value:
            self.source.add(
                where,
                f"'{key}' takes a non-empty list of conditions; found {found(to_plain(value))}",
            )
            return None
        children = [self._mapping(item, position(value, (i,))) for i, item in enumerate(value)]
        valid = [child for child in children if child is not None]
        return valid if len(valid) == len(children) else None

    def _ticket(self, value: Any, where: Position) -> Condition | None:
        if value not in ("open", "closed"):
            self.source.add(
                where, f"'ticket': found {found(to_plain(value))}; expected open or closed"
            )
            return None
        want_open = value == "open"
        expected = f"is {value}"

        def check(context: Context) -> ConditionFailure | None:
            if context.ticket_open == want_open:
                return None
            return ConditionFailure("ticket", expected, "open" if context.ticket_open else "closed")

        return Condition(check, f"ticket {expected}", "ticket", expected)

    def _field(self, node: CommentedMap, key: Any, value: Any) -> Condition | None:
        path = key if isinstance(key, str) else None
        segments = split_path(path) if path is not None else None
        if path is None or segments is None:
            self.source.at(
                node,
                (key,),
                f"condition key {found(to_plain(key))} is not a dotted path into the event "
                "(like data.body) nor one of: " + ", ".join(LOGIC_KEYS),
                key=True,
            )
            return None
        if "." not in path and path not in _ENVELOPE_ROOTS:
            close = difflib.get_close_matches(path, LOGIC_KEYS, n=1, cutoff=0.75)
            if close:
                self.source.at(
                    node,
                    (key,),
                    f"unknown condition '{path}'; did you mean '{close[0]}'?",
                    key=True,
                )
                return None
        if isinstance(value, CommentedMap):
            tests = self._operators(value, position(node, (key,)))
        else:
            arg = to_plain(value)
            tests = [(build_equals(arg), f"equals {show(arg)}", False)]
        return None if tests is None else _leaf(path, segments, tests)

    def _operators(self, ops: CommentedMap, where: Position) -> list[_Leaf] | None:
        if not ops:
            self.source.add(where, "an empty mapping of operators; expected e.g. {contains: ...}")
            return None
        tests: list[_Leaf] = []
        ok = True
        for op in ops:
            build = OPERATORS.get(op) if isinstance(op, str) else None
            if build is None:
                name = str(op)
                self.source.at(
                    ops,
                    (op,),
                    f"unknown operator '{name}'{did_you_mean(name, OPERATORS)} "
                    f"(expected one of: {', '.join(OPERATORS)})",
                    key=True,
                )
                ok = False
                continue
            arg = to_plain(ops[op])
            try:
                test = build(arg)
            except OperatorArgError as exc:
                message = str(exc) if exc.complete else f"{exc}; found {found(arg)}"
                self.source.at(ops, (op,), message)
                ok = False
                continue
            tests.append((test, f"{op} {show(arg)}", op == "exists"))
        return tests if ok else None


_Leaf = tuple[Test, str, bool]  # test, expected text, sees a missing field


def _leaf(path: str, segments: tuple[str, ...], tests: list[_Leaf]) -> Condition:
    expected_all = " and ".join(expected for _, expected, _ in tests)

    def check(context: Context) -> ConditionFailure | None:
        value = resolve(context.payload, segments)
        for test, expected, sees_missing in tests:
            if value is MISSING and not sees_missing:
                return ConditionFailure(path, expected, None, missing=True)
            if not test(value):
                if value is MISSING:
                    return ConditionFailure(path, expected, None, missing=True)
                return ConditionFailure(path, expected, summarise(value))
        return None

    return Condition(check, f"{path} {expected_all}", path, expected_all)


def _all(children: list[Condition]) -> Condition:
    checks = tuple(child.check for child in children)

    def check(context: Context) -> ConditionFailure | None:
        for child in checks:
            failure = child(context)
            if failure is not None:
                return failure
        return None

    return Condition(check, " and ".join(f"({c.text})" for c in children))


def _any(children: list[Condition]) -> Condition:
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

    return Condition(check, "any of: " + "; ".join(c.text for c in children))


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


def _not(inner: Condition) -> Condition:
    inner_check = inner.check
    path, expected = inner.path, inner.expected
    segments = split_path(path) if path is not None and path not in LOGIC_KEYS else None

    def check(context: Context) -> ConditionFailure | None:
        if inner_check(context) is not None:
            return None
        if path is None:
            return ConditionFailure("not", f"rejects {inner.text}", "it held")
        if path == "ticket":
            seen = "open" if context.ticket_open else "closed"
            return ConditionFailure(path, f"not {expected}", seen)
        if segments is None:
            return ConditionFailure(path, f"not {expected}", "it held")
        seen = summarise(resolve(context.payload, segments))
        return ConditionFailure(path, f"not {expected}", seen)

    return Condition(check, f"not ({inner.text})")


def _time(window: TimeWindow, zone: tzinfo, zone_name: str) -> Condition:
    expected = f"is {window.describe()} ({zone_name})"

    def check(context: Context) -> ConditionFailure | None:
        try:
            local = context.moment.astimezone(zone)
        except (OverflowError, ValueError):
            return ConditionFailure("time", expected, "a moment out of range")
        if window.contains(local):
            return None
        return ConditionFailure("time", expected, local.strftime("%a %H:%M").lower())

    return Condition(check, f"time {expected}", "time", expected)
