"""The condition operators: a registry from name to a builder of a value test.

A builder takes the operator's argument as written in YAML, checks it (raising
`OperatorArgError` with what was expected) and returns a test `value -> bool`. Tests never
raise, whatever the event holds. Text comparisons ignore case, except `matches`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import re2

from worker.engine.paths import MISSING, number_text

Test = Callable[[Any], bool]

_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False


class OperatorArgError(ValueError):
    """An operator's argument is not what it takes; the message says what it expected.

    `complete` messages already show the argument found.
    """

    def __init__(self, message: str, *, complete: bool = False) -> None:
        super().__init__(message)
        self.complete = complete


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text_of(value: Any) -> str | None:
    """The text a text operator looks at: strings, and numbers as written."""
    if isinstance(value, str):
        return value
    if _is_number(value):
        return number_text(value)
    return None


def number_of(value: Any) -> float | int | None:
    """The number a comparison looks at: numbers (not booleans), and text that parses."""
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def needle(op: str, arg: Any) -> str:
    """The casefolded text a text operator looks for (raises OperatorArgError if none)."""
    text = text_of(arg)
    if text is None:
        raise OperatorArgError(f"'{op}' takes a text")
    return text.casefold()


def build_equals(arg: Any) -> Test:
    """Equality; text ignores case, and a number equals its text ("42" and 42)."""
    if isinstance(arg, str):
        want = arg.casefold()

        def equals_text(value: Any) -> bool:
            text = text_of(value)
            return text is not None and text.casefold() == want

        return equals_text
    if isinstance(arg, bool):
        return lambda value: isinstance(value, bool) and value == arg
    if _is_number(arg):
        return lambda value: not isinstance(value, bool) and number_of(value) == arg
    if arg is None:
        return lambda value: value is None

    def equals_structure(value: Any) -> bool:
        try:
            return bool(value == arg)
        except RecursionError:
            return False

    return equals_structure


def _build_in(arg: Any) -> Test:
    if not isinstance(arg, list):
        raise OperatorArgError("'in' takes a list")
    if all(isinstance(item, str) for item in arg):
        wanted = frozenset(item.casefold() for item in arg)

        def in_texts(value: Any) -> bool:
            text = text_of(value)
            return text is not None and text.casefold() in wanted

        return in_texts
    tests = [build_equals(item) for item in arg]
    return lambda value: any(test(value) for test in tests)


def _build_not_in(arg: Any) -> Test:
    if not isinstance(arg, list):
        raise OperatorArgError("'not_in' takes a list")
    test = _build_in(arg)
    return lambda value: not test(value)


def _build_not_equals(arg: Any) -> Test:
    test = build_equals(arg)
    return lambda value: not test(value)


def _build_contains(arg: Any) -> Test:
    wanted = needle("contains", arg)
    element = build_equals(arg)

    def contains(value: Any) -> bool:
        if isinstance(value, list):
            return any(element(item) for item in value)
        text = text_of(value)
        return text is not None and wanted in text.casefold()

    return contains


def _build_not_contains(arg: Any) -> Test:
    needle("not_contains", arg)
    test = _build_contains(arg)
    return lambda value: not test(value)


def _build_contains_any(arg: Any) -> Test:
    if not isinstance(arg, list) or not arg or any(text_of(item) is None for item in arg):
        raise OperatorArgError("'contains_any' takes a non-empty list of texts")
    tests = [_build_contains(item) for item in arg]
    return lambda value: any(test(value) for test in tests)


def _build_starts_with(arg: Any) -> Test:
    prefix = needle("starts_with", arg)

    def starts_with(value: Any) -> bool:
        text = text_of(value)
        return text is not None and text.casefold().startswith(prefix)

    return starts_with


def _build_ends_with(arg: Any) -> Test:
    suffix = needle("ends_with", arg)

    def ends_with(value: Any) -> bool:
        text = text_of(value)
        return text is not None and text.casefold().endswith(suffix)

    return ends_with


def compile_pattern(arg: Any) -> Any:
    """The RE2 pattern of a `matches` argument (raises OperatorArgError when it is not one)."""
    if not isinstance(arg, str):
        raise OperatorArgError("'matches' takes a regular expression (RE2 syntax) as text")
    try:
        return re2.compile(arg, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise OperatorArgError(
            f"bad regular expression {arg!r}: {reason} (expected RE2 syntax)", complete=True
        ) from exc


def _build_matches(arg: Any) -> Test:
    pattern = compile_pattern(arg)

    def matches(value: Any) -> bool:
        text = text_of(value)
        if text is None:
            return False
        try:
            return pattern.search(text) is not None
        except UnicodeEncodeError:
            clean = text.encode("utf-8", "replace").decode("utf-8")
            return pattern.search(clean) is not None

    return matches


def _comparison(op: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    def build(arg: Any) -> Test:
        if not _is_number(arg):
            raise OperatorArgError(f"'{op}' takes a number")

        def test(value: Any) -> bool:
            number = number_of(value)
            return number is not None and compare(number, arg)

        return test

    return build


def _build_exists(arg: Any) -> Test:
    if not isinstance(arg, bool):
        raise OperatorArgError("'exists' takes true or false")
    return lambda value: (value is not MISSING and value is not None) == arg


OPERATORS: Final[Mapping[str, Callable[[Any], Test]]] = {
    "equals": build_equals,
    "not_equals": _build_not_equals,
    "in": _build_in,
    "not_in": _build_not_in,
    "contains": _build_contains,
    "not_contains": _build_not_contains,
    "contains_any": _build_contains_any,
    "starts_with": _build_starts_with,
    "ends_with": _build_ends_with,
    "matches": _build_matches,
    "gt": _comparison("gt", lambda a, b: a > b),
    "gte": _comparison("gte", lambda a, b: a >= b),
    "lt": _comparison("lt", lambda a, b: a < b),
    "lte": _comparison("lte", lambda a, b: a <= b),
    "exists": _build_exists,
}
"""Operator name -> builder. `exists` is the only one that sees a missing field."""
