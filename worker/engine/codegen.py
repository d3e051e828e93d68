"""Conditions compiled to Python source: the builder of a decider's source, and the inline
form of each condition and common operator (see `fastpath` for how deciders use them).

The inline forms are optimisations of `checks` and `operators`, which define the semantics:
`tests/engine/test_fastpath.py` checks with hypothesis that compiled decisions equal the
explaining checks run eagerly, over generated rules and events. SAFETY (as in `fastpath`):
no text from a rule file ever appears in the source; every rule value is a constant
referenced by a made-up identifier (`c17`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Final

from worker.engine.checks import (
    AllShape,
    AlwaysShape,
    Check,
    Context,
    FieldShape,
    Leaf,
    NotShape,
    SessionShape,
    Shape,
    TicketShape,
    TimeShape,
)
from worker.engine.model import PlannedAction
from worker.engine.operators import compile_pattern, needle, number_of, text_of
from worker.engine.paths import MISSING, as_text, resolve
from worker.engine.planning import is_blank
from worker.engine.timing import TimeWindow

MAX_DEPTH: Final = 40  # deeper conditions call their explaining check


def _folded(value: Any) -> str | None:
    text = text_of(value)
    return None if text is None else text.casefold()


def _in_window(window: TimeWindow, zone: tzinfo, moment: datetime) -> bool:
    try:
        local = moment.astimezone(zone)
    except (OverflowError, ValueError):
        return False
    return window.contains(local)


def _holds(
    check: Check,
    payload: Mapping[str, Any],
    ticket_open: bool,
    moment: datetime,
    session_open: bool,
) -> bool:
    return check(Context(payload, ticket_open, moment, session_open)) is None


HELPERS: Final[dict[str, Any]] = {
    "M": MISSING,
    "R": resolve,
    "F": _folded,
    "N": number_of,
    "W": _in_window,
    "H": _holds,
    "B": is_blank,
    "T": as_text,
    "NEW": object.__new__,
    "PA": PlannedAction,
}


class SourceBuilder:
    """Generated code under construction: constants, resolved paths and derived values."""

    def __init__(self) -> None:
        self.constants: list[Any] = []
        self.prefetch: list[str] = []
        self.paths: dict[tuple[str, ...], str] = {}
        self.derived: dict[tuple[str, str], str] = {}
        self.pattern_sets: dict[str, tuple[str, list[Any]]] = {}
        self.shared: dict[str, str] = {}
        self.names = itertools.count()

    def const(self, value: Any) -> str:
        self.constants.append(value)
        return f"c{len(self.constants) - 1}"

    def text(self, value: str) -> str:
        """A constant for a text used again and again (skip reasons), made once."""
        known = self.shared.get(value)
        if known is None:
            known = self.shared[value] = self.const(value)
        return known

    def path(self, segments: tuple[str, ...]) -> str:
        """The local holding the value at `segments` (MISSING when absent), fetched once."""
        known = self.paths.get(segments)
        if known is not None:
            return known
        parent = "payload" if len(segments) == 1 else self.path(segments[:-1])
        name = f"v{next(self.names)}"
        key, rest = self.const(segments[-1]), self.const(segments[-1:])
        self.prefetch.append(
            f"{name} = {parent}.get({key}, M) if type({parent}) is dict else R({parent}, {rest})"
        )
        self.paths[segments] = name
        return name

    def derive(self, value: str, kind: str) -> str:
        """`value` casefolded (f) or as a number (n), computed once."""
        known = self.derived.get((value, kind))
        if known is not None:
            return known
        name = f"{kind}{value[1:]}"
        if kind == "f":
            self.prefetch.append(
                f"{name} = {value}.casefold() if type({value}) is str else F({value})"
            )
        else:
            self.prefetch.append(f"{name} = N({value})")
        self.derived[(value, kind)] = name
        return name

    def search(self, value: str, pattern: Any) -> str:
        """An expression: does `pattern` match the text of `value`.

        The patterns of one field are searched together, once, when the first is needed:
        `m3` holds which matched.
        """
        found = f"m{value[1:]}"
        if value not in self.pattern_sets:
            self.prefetch.append(f"{found} = None")
            self.pattern_sets[value] = (self.const(None), [])
        constant, patterns = self.pattern_sets[value]
        patterns.append(pattern)
        searched = f"({found} if {found} is not None else ({found} := {constant}({value})))"
        return f"{len(patterns) - 1} in {searched}"


def _leaf(src: SourceBuilder, value: str, leaf: Leaf) -> tuple[str, bool]:
    """A bool expression for one operator on the value held in local `value`, and whether
    it is false for a MISSING value by itself (inline positive tests are: the text, number
    or bytes of MISSING is None); the others are only used after a `value is not M` guard.
    """
    special = _special(src, value, leaf)
    if special is None:
        return f"({src.const(leaf.test)}({value}))", False
    negated = leaf.op in ("not_equals", "not_in", "not_contains")
    return f"({special})", not negated and leaf.op != "exists"


def _special(src: SourceBuilder, value: str, leaf: Leaf) -> str | None:
    """Inline code for a common operator, or None to call the leaf's own test."""
    op, arg = leaf.op, leaf.arg
    negated = op in ("not_equals", "not_in", "not_contains")
    base = {"not_equals": "equals", "not_in": "in", "not_contains": "contains"}.get(op, op)
    expr: str | None = None
    if base == "equals":
        if isinstance(arg, bool):
            expr = f"{value} is {'True' if arg else 'False'}"
        elif arg is None:
            expr = f"{value} is None"
        elif isinstance(arg, str):
            expr = f"{src.derive(value, 'f')} == {src.const(arg.casefold())}"
        elif isinstance(arg, int | float):
            expr = f"{src.derive(value, 'n')} == {src.const(arg)}"
    elif base == "in" and isinstance(arg, list) and all(isinstance(a, str) for a in arg):
        wanted = src.const(frozenset(a.casefold() for a in arg))
        expr = f"{src.derive(value, 'f')} in {wanted}"
    elif base in ("contains", "contains_any"):
        items = [arg] if base == "contains" else list(arg)
        folded = src.derive(value, "f")
        found = " or ".join(f"{src.const(needle(op, item))} in {folded}" for item in items)
        found = f"not ({found})" if negated else f"({found})"
        # not text (a list, say): the leaf's own test, which already has the right polarity
        return f"({found} if {folded} is not None else {src.const(leaf.test)}({value}))"
    elif base in ("starts_with", "ends_with"):
        folded = src.derive(value, "f")
        method = "startswith" if base == "starts_with" else "endswith"
        expr = f"({folded} is not None and {folded}.{method}({src.const(needle(op, arg))}))"
    elif base in ("gt", "gte", "lt", "lte"):
        number = src.derive(value, "n")
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[base]
        expr = f"({number} is not None and {number} {sign} {src.const(arg)})"
    elif base == "exists":
        expr = (
            f"({value} is not M and {value} is not None)"
            if arg
            else f"({value} is M or {value} is None)"
        )
    elif base == "matches":
        expr = src.search(value, compile_pattern(arg))
    if expr is None:
        return None
    return f"not {expr}" if negated else expr


def condition_expression(
    src: SourceBuilder, shape: Shape | None, check: Check, depth: int = 0
) -> str:
    """A bool expression for `shape`; an opaque or too deep one calls the explaining `check`."""
    if isinstance(shape, AlwaysShape):
        return "True"
    if isinstance(shape, TicketShape):  # `==` as the explaining check compares
        return "(t == True)" if shape.want_open else "(t == False)"
    if isinstance(shape, SessionShape):
        return "(so == True)" if shape.want_open else "(so == False)"
    if depth > MAX_DEPTH or shape is None:
        return f"H({src.const(check)}, payload, t, moment, so)"
    if isinstance(shape, FieldShape):
        value = src.path(shape.segments)
        leaves = [(leaf, *_leaf(src, value, leaf)) for leaf in shape.leaves]
        tests = " and ".join(expr for _, expr, _ in leaves)
        if all(leaf.sees_missing or false_when_missing for leaf, _, false_when_missing in leaves):
            return f"({tests})"
        return f"({value} is not M and {tests})"
    if isinstance(shape, TimeShape):
        return f"W({src.const(shape.window)}, {src.const(shape.zone)}, moment)"
    if isinstance(shape, NotShape):
        inner = shape.inner
        return f"(not {condition_expression(src, inner.shape, inner.check, depth + 1)})"
    joiner = " and " if isinstance(shape, AllShape) else " or "
    if not shape.children:
        return "True" if isinstance(shape, AllShape) else "False"
    parts = [condition_expression(src, c.shape, c.check, depth + 1) for c in shape.children]
    return "(" + joiner.join(parts) + ")"
