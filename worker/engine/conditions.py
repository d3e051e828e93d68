"""Condition trees compiled once, at load time, into checks that never raise.

A compiled `Condition` (see `checks.py`) is called with a `Context` (the event's payload,
the ticket state when the event arrived, and the moment it happened) and returns None when
it holds, or the first `ConditionFailure` that explains why not. Compilation reports every
problem it finds to the file's `Source` and returns None when there was any.
"""

from __future__ import annotations

import difflib
from datetime import tzinfo
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.checks import (
    AlwaysShape,
    Condition,
    Leaf,
    all_of,
    any_of,
    field_test,
    negation,
    session_state,
    ticket_state,
    time_window,
)
from worker.engine.operators import OPERATORS, OperatorArgError, build_equals
from worker.engine.paths import split_path
from worker.engine.timing import parse_time_window
from worker.engine.yaml_source import Position, Source, did_you_mean, found, position, to_plain

ALWAYS: Final = Condition(lambda context: None, "always", shape=AlwaysShape())

LOGIC_KEYS: Final = ("all", "any", "not", "ticket", "time", "session")
SESSION_STATES: Final = ("open", "expired")
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
        return valid[0] if len(valid) == 1 else all_of(valid)

    def _entry(self, node: CommentedMap, key: Any) -> Condition | None:
        value = node[key]
        at_value = position(node, (key,))
        if key in ("all", "any"):
            children = self._list(value, at_value, key)
            if children is None:
                return None
            return all_of(children) if key == "all" else any_of(children)
        if key == "not":
            inner = self._mapping(value, at_value)
            return None if inner is None else negation(inner)
        if key == "ticket":
            return self._ticket(value, at_value)
        if key == "session":
            return self._session(value, at_value)
        if key == "time":
            window = parse_time_window(value, node, key, self.source)
            return None if window is None else time_window(window, self.zone, self.zone_name)
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
        return ticket_state(want_open=value == "open")

    def _session(self, value: Any, where: Position) -> Condition | None:
        if value not in SESSION_STATES:
            hint = did_you_mean(value, SESSION_STATES) if isinstance(value, str) else ""
            self.source.add(
                where,
                f"'session': found {found(to_plain(value))}; expected open or expired{hint}",
            )
            return None
        return session_state(want_open=value == "open")

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
            tests = [Leaf(build_equals(arg), f"equals {show(arg)}", False, "equals", arg)]
        return None if tests is None else field_test(path, segments, tests)

    def _operators(self, ops: CommentedMap, where: Position) -> list[Leaf] | None:
        if not ops:
            self.source.add(where, "an empty mapping of operators; expected e.g. {contains: ...}")
            return None
        tests: list[Leaf] = []
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
            tests.append(Leaf(test, f"{op} {show(arg)}", op == "exists", op, arg))
        return tests if ok else None
