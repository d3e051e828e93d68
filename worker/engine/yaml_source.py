"""Rule-file YAML read with positions, and problems reported at file:line:column.

The round-trip loader keeps the line and column of every mapping key, mapping value and
sequence item; `Source` turns a location inside the parsed document into a 1-based
position, so every problem points at the offending key or value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import YAMLError

from worker.errors import RuleProblem

Loc = tuple[str | int, ...]
Position = tuple[int, int]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest option, or ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two names (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def found(value: Any) -> str:
    """How a value found in a rule file is named in a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:60] + "…")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return f"a {type(value).__name__}"


def to_plain(node: Any) -> Any:
    """The parsed YAML as plain dict/list/str/int/float/bool/None (dates as ISO text)."""
    if isinstance(node, dict):
        return {to_plain(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime | date):
        return node.isoformat()
    if node is None:
        return None
    return str(node)


def position(node: Any, loc: Loc, *, key: bool = False) -> Position:
    """1-based position of `loc` inside `node`: of the key itself when `key`, else its value.

    Walks as deep as the document goes; a missing key points at its enclosing mapping.
    """
    line, column = _start(node)
    current = node
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(current, CommentedMap) and part in current:
            line, column = current.lc.key(part) if (last and key) else current.lc.value(part)
            current = current[part]
        elif isinstance(current, CommentedSeq) and isinstance(part, int) and part < len(current):
            line, column = current.lc.item(part)
            current = current[part]
        else:
            break
    return line + 1, column + 1


def _start(node: Any) -> tuple[int, int]:
    if isinstance(node, CommentedMap | CommentedSeq):
        return node.lc.line, node.lc.col
    return 0, 0


class _Constructor(RoundTripConstructor):
    """The round-trip constructor, whose impossible dates (2026-13-01) are YAML errors at
    their place instead of a bare ValueError."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError as exc:
            raise ConstructorError(
                problem=f"{node.value!r} is not a date: {exc}", problem_mark=node.start_mark
            ) from exc


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


class Source:
    """One rule file being read: parses it and collects its problems into a shared list."""

    def __init__(self, file: str, problems: list[RuleProblem]) -> None:
        self.file = file
        self.problems = problems

    def parse(self, text: str) -> Any:
        """The document's root node; on a YAML error, records it and returns None."""
        yaml = YAML(typ="rt", pure=True)
        yaml.Constructor = _Constructor
        try:
            return yaml.load(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            what = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
            context = getattr(exc, "context", None)
            context_mark = getattr(exc, "context_mark", None)
            if context and context_mark is not None and context_mark is not mark:
                context += f" that starts at {context_mark.line + 1}:{context_mark.column + 1}"
            detail = f"{what} ({context})" if context else what
            self.add((line, column), f"YAML syntax error: {detail}")
            return None

    def add(self, where: Position, message: str) -> None:
        """Record a problem at an explicit position."""
        self.problems.append(RuleProblem(self.file, where[0], where[1], message))

    def at(self, node: Any, loc: Loc, message: str, *, key: bool = False) -> None:
        """Record a problem at `loc` inside `node` (see `position`)."""
        self.add(position(node, loc, key=key), message)
