"""`matches` patterns of one field searched together, with one RE2 Set scan when it is safe."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import re2
from re2 import _re2

from worker.engine.operators import text_of

# RE2 gives a Set 2/3 of its 8 MiB budget for the DFA: a set of programs this small never
# comes near it (a Set out of memory would silently report no match).
_SET_PROGRAM_LIMIT: Final = 2000
_PROBES: Final = ("", "a", "ab 12", "\u00e9 b", "Help me", "x_y-z.")


def _encoded(value: Any) -> bytes | None:
    """The UTF-8 bytes RE2 searches for the text of `value` (as `matches` does)."""
    text = text_of(value)
    if text is None:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


class PatternSet:
    """The `matches` patterns of one field, searched together: which of them match a text.

    Called with a field's value, it returns the indexes of the patterns that match somewhere
    in its text (none for a value that is not text), as `matches` would say one by one. One
    RE2 `Set` scan serves them all; a set too large to be sure of its memory budget, or one
    that does not agree with the patterns on a few probes, searches one by one.
    """

    def __init__(self, patterns: Sequence[Any], *, one_by_one: bool = False) -> None:
        self.patterns = tuple(patterns)
        self._match = None if one_by_one else self._compiled_set()

    @property
    def uses_set(self) -> bool:
        """Whether one RE2 Set scan answers (else each pattern searches in turn)."""
        return self._match is not None

    def __call__(self, value: Any) -> Sequence[int]:
        data = _encoded(value)
        if data is None:
            return ()
        if self._match is not None:
            return self._match(data)  # type: ignore[no-any-return]
        return [i for i, pattern in enumerate(self.patterns) if pattern.search(data) is not None]

    def _compiled_set(self) -> Callable[[bytes], Any] | None:
        try:
            size = sum(pattern._regexp.ProgramSize() for pattern in self.patterns)
            if size > _SET_PROGRAM_LIMIT:
                return None
            options = self.patterns[0].options
            if len({_settings(pattern.options) for pattern in self.patterns}) != 1:
                return None
            patterns_set = _re2.Set(_re2.RE2.Anchor.UNANCHORED, options)
            for i, pattern in enumerate(self.patterns):
                if patterns_set.Add(pattern.pattern.encode()) != i:
                    return None
            if not patterns_set.Compile():
                return None
            match = patterns_set.Match
            for probe in _PROBES:
                one_by_one = [i for i, p in enumerate(self.patterns) if p.search(probe)]
                if sorted(match(probe.encode())) != one_by_one:
                    return None
        except Exception:  # any surprise (an re2 build without Set): one by one
            return None
        return match  # type: ignore[no-any-return]


def _settings(options: Any) -> tuple[Any, ...]:
    return tuple(getattr(options, name) for name in re2.Options.NAMES)
