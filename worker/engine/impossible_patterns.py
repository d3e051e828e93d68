"""Regular expressions that compile but can never match anything (`a^b`, `$a`).

Sound, not complete: a pattern is reported only when its structure proves it. The pattern
is read with Python's own regex parser, whose syntax RE2 shares for everything this looks
at; a pattern it cannot read, or one using syntax the two read differently (POSIX classes,
multi-line mode), is never reported.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]
import warnings
from typing import Any, Final

_AT: Final = sre_parse.AT
_BEGIN: Final = frozenset({sre_parse.AT_BEGINNING, sre_parse.AT_BEGINNING_STRING})
_END: Final = frozenset({sre_parse.AT_END, sre_parse.AT_END_STRING})
_REPEATS: Final = frozenset(
    {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT}
)


def never_matches(pattern: str) -> str | None:
    """Why `pattern` (RE2 syntax) can match no text at all, or None when that is not certain."""
    if "[:" in pattern:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None
    if parsed.state.flags & re.MULTILINE or _scoped_multiline(parsed.data):
        return None
    return _sequence(parsed.state, list(parsed.data), 0, 0)


def _scoped_multiline(items: Any) -> bool:
    for op, av in items:
        if op == sre_parse.SUBPATTERN:
            if av[1] & re.MULTILINE or _scoped_multiline(av[3]):
                return True
        elif op == sre_parse.BRANCH:
            if any(_scoped_multiline(branch) for branch in av[1]):
                return True
        elif op in _REPEATS and _scoped_multiline(av[2]):
            return True
    return False


def _min_width(state: Any, items: list[Any]) -> int:
    return int(sre_parse.SubPattern(state, items).getwidth()[0])


def _sequence(state: Any, items: list[Any], before: int, after: int) -> str | None:
    """Why this sequence cannot match, given at least `before`/`after` characters around it."""
    for index, (op, av) in enumerate(items):
        ahead = before + _min_width(state, items[:index])
        behind = after + _min_width(state, items[index + 1 :])
        if op == _AT and av in _BEGIN and ahead > 0:
            return "'^' (start of text) comes after text that must be matched before it"
        if op == _AT and av in _END and behind > 0:
            return "'$' (end of text) comes before text that must be matched after it"
        if op == sre_parse.SUBPATTERN:
            why = _sequence(state, list(av[3]), ahead, behind)
        elif op == sre_parse.BRANCH:
            reasons = [_sequence(state, list(b), ahead, behind) for b in av[1]]
            why = reasons[0] if all(r is not None for r in reasons) else None
        elif op in _REPEATS and av[0] >= 1:
            why = _sequence(state, list(av[2]), ahead, behind)
        else:
            why = None
        if why is not None:
            return why
    return None
