"""Lint: findings about a ruleset that loads, but probably does not do what its author meant.

    lint_ruleset(ruleset, texts, retention=None) -> [RuleProblem(severity="warning"), ...]

`texts` are the files the ruleset was loaded from (name -> YAML): findings point at the
key or value concerned. Every finding is certain where it says "never"; the others say
"can". Findings:

- a rule that can never act: an earlier rule of its `first_match` file (or any earlier rule
  with `stop: true`) listens to all its events and provably matches whenever it does (it
  has no conditions, or only conditions this rule also has);
- a rule that opens and one that closes the AwalChat ticket on the same event, when both
  can match it and both act (not provably exclusive, e.g. by `ticket: open` / `closed`);
- a `matches` pattern that can never match (`a^b`, `$a`);
- an `on:` event name AwalChat is not known to send (a did-you-mean when one is close);
- a `cooldown` on a rule whose events carry no conversation (it can never apply);
- about time (`lint_time`): a wait longer than `retention` (STATE_RETENTION), business hours
  with no open hour for a long stretch, `after:` on events without a conversation, an
  `unless:` event AwalChat is not known to send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.impossible_patterns import never_matches
from worker.engine.lint_time import NO_CONVERSATION_EVENTS, lint_calendar, lint_wait
from worker.engine.model import CLOSE_TICKET, KNOWN_EVENTS, OPEN_TICKET
from worker.engine.ruleset import WILDCARD, Rule, Ruleset
from worker.engine.yaml_source import Position, Source, levenshtein, position, to_plain
from worker.errors import RuleProblem

_OPAQUE: Final = frozenset({"any", "not", "time"})
_CLOSE_ISH: Final = 4  # edits; within 2 the loader already refuses the name as a typo

Conjunct = tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    rule: Rule
    node: CommentedMap
    conjuncts: frozenset[Conjunct]
    first_match: bool


def lint_ruleset(
    ruleset: Ruleset, texts: Mapping[str, str], *, retention: timedelta | None = None
) -> list[RuleProblem]:
    """Every lint finding of `ruleset`, as warnings, in file and line order. `retention`:
    how long a conversation's state is kept after its last event (STATE_RETENTION)."""
    problems: list[RuleProblem] = []
    entries: list[_Entry] = []
    by_name = {rule.name: rule for rule in ruleset.rules}
    for rule_file in ruleset.rule_files:
        text = texts.get(rule_file.name)
        if text is None:
            continue
        source = Source(rule_file.name, problems)
        root = source.parse(text)
        items = root.get("rules") if isinstance(root, CommentedMap) else None
        if not isinstance(items, CommentedSeq):
            continue
        if rule_file.calendar is not None:
            lint_calendar(rule_file.calendar, rule_file.name, root, problems)
        for node in items:
            rule = by_name.get(str(node.get("name"))) if isinstance(node, CommentedMap) else None
            if rule is None or rule.file != rule_file.name:
                continue
            zone = rule_file.timezone
            conjuncts = frozenset(_conjuncts(node.get("when"), zone))
            entries.append(_Entry(rule, node, conjuncts, rule_file.mode == "first_match"))
            _lint_rule(rule, node, source)
            lint_wait(rule, node, retention, problems)
    _lint_shadowed(entries, problems)
    _lint_open_close(entries, problems)
    return sorted(
        (p if p.severity == "warning" else _warning(p) for p in problems),
        key=lambda p: (p.file, p.line, p.column),
    )


def _warning(problem: RuleProblem) -> RuleProblem:
    return RuleProblem(problem.file, problem.line, problem.column, problem.message, "warning")


def _add(problems: list[RuleProblem], rule: Rule, where: Position, message: str) -> None:
    problems.append(RuleProblem(rule.file, where[0], where[1], message, "warning"))


def _lint_rule(rule: Rule, node: CommentedMap, source: Source) -> None:
    problems = source.problems
    names = node["on"] if isinstance(node["on"], CommentedSeq) else None
    for index, name in enumerate(names if names is not None else [node["on"]]):
        if name == WILDCARD or name in KNOWN_EVENTS:
            continue
        where = position(names, (index,)) if names is not None else position(node, ("on",))
        distance, close = min((levenshtein(str(name), known), known) for known in KNOWN_EVENTS)
        hint = f"; did you mean '{close}'?" if distance <= _CLOSE_ISH else ""
        _add(
            problems,
            rule,
            where,
            f"event '{name}' is not one AwalChat is known to send{hint} "
            f"(known: {', '.join(KNOWN_EVENTS)})",
        )
    events = rule.events
    if rule.cooldown is not None and events != WILDCARD and events <= NO_CONVERSATION_EVENTS:
        _add(
            problems,
            rule,
            position(node, ("cooldown",), key=True),
            "cooldown on a rule whose events carry no conversation "
            f"({', '.join(sorted(events))}): it can never apply",
        )
    for where, pattern in _patterns(node.get("when"), node, ("when",)):
        why = never_matches(pattern)
        if why is not None:
            _add(problems, rule, where, f"pattern {pattern!r} can never match: {why}")


def _patterns(node: Any, parent: Any, loc: tuple[Any, ...]) -> Iterator[tuple[Position, str]]:
    """Every `matches:` argument under a condition node, with its position."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            if key == "matches" and isinstance(value, str):
                yield position(node, (key,)), value
            else:
                yield from _patterns(value, node, (key,))
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            yield from _patterns(item, node, (index,))


def _conjuncts(node: Any, zone: str) -> Iterator[Conjunct]:
    """The conditions that must all hold for `node` to hold, each as a comparable key.

    `any`, `not` and `time` are kept whole (with the file's timezone, which `time:` uses).
    """
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        plain = to_plain(value)
        if key == "all" and isinstance(value, list):
            for item in value:
                yield from _conjuncts(item, zone)
        elif key in _OPAQUE:
            yield (str(key), zone, _key(plain))
        elif key == "ticket":
            yield ("ticket", str(plain))
        elif isinstance(plain, dict):
            for op, arg in plain.items():
                yield (str(key), str(op), _key(arg))
        else:
            yield (str(key), "equals", _key(plain))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _covers(earlier: Rule, later: Rule) -> bool:
    """Does `earlier` listen to every event `later` listens to?"""
    if earlier.events == WILDCARD:
        return True
    return later.events != WILDCARD and later.events <= earlier.events


def _lint_shadowed(entries: list[_Entry], problems: list[RuleProblem]) -> None:
    for index, later in enumerate(entries):
        if not later.rule.enabled:
            continue
        for earlier in entries[:index]:
            rule = earlier.rule
            if not rule.enabled or rule.cooldown is not None or not _covers(rule, later.rule):
                continue
            if not earlier.conjuncts <= later.conjuncts:
                continue
            same_file = rule.file == later.rule.file
            if earlier.first_match and same_file:
                why = f"under first_match, rule '{rule.name}' (line {rule.line}) comes first"
            elif rule.stop:
                why = f"rule '{rule.name}' ({rule.file}:{rule.line}) has stop: true"
            else:
                continue
            condition = "has no conditions" if not earlier.conjuncts else "only conditions"
            detail = "" if not earlier.conjuncts else " this rule also has"
            _add(
                problems,
                later.rule,
                position(later.node, ("name",)),
                f"rule '{later.rule.name}' can never act: {why}, listens to all its events "
                f"and {condition}{detail}",
            )
            break


def _lint_open_close(entries: list[_Entry], problems: list[RuleProblem]) -> None:
    for index, later in enumerate(entries):
        for earlier in entries[: index + 1]:
            if not (earlier.rule.enabled and later.rule.enabled):
                continue
            if (earlier.rule.after is None) != (later.rule.after is None):
                continue  # one acts on the event, the other later
            pair = _opener_closer(earlier.rule, later.rule)
            if pair is None or not _overlap(earlier.rule, later.rule):
                continue
            if earlier is not later and _one_acts(earlier, later):
                continue
            opener, closer = pair
            if earlier is later:
                message = f"rule '{later.rule.name}' both opens and closes the ticket"
            else:
                message = (
                    f"rule '{opener}' opens and rule '{closer}' closes the ticket on the same "
                    "event, and both can match it (add ticket: closed / ticket: open?)"
                )
            _add(problems, later.rule, position(later.node, ("then",), key=True), message)


def _opener_closer(a: Rule, b: Rule) -> tuple[str, str] | None:
    kinds_a = {action.kind for action in a.actions}
    kinds_b = {action.kind for action in b.actions}
    if OPEN_TICKET in kinds_a and CLOSE_TICKET in kinds_b:
        return a.name, b.name
    if CLOSE_TICKET in kinds_a and OPEN_TICKET in kinds_b:
        return b.name, a.name
    return None


def _overlap(a: Rule, b: Rule) -> bool:
    return a.events == WILDCARD or b.events == WILDCARD or bool(a.events & b.events)


def _one_acts(earlier: _Entry, later: _Entry) -> bool:
    """Can the two never both act on one event (first_match, stop, exclusive conditions)?"""
    if earlier.first_match and earlier.rule.file == later.rule.file:
        return True
    if earlier.rule.stop:
        return True
    return _exclusive(earlier.conjuncts, later.conjuncts)


def _exclusive(a: frozenset[Conjunct], b: frozenset[Conjunct]) -> bool:
    """Do the two sets of conjuncts provably never hold together?"""
    for left in a:
        for right in b:
            if left[0] != right[0] or left == right:
                continue
            if left[0] == "ticket":
                return True
            if len(left) == 3 and left[1] == right[1] == "exists":
                return True
            if len(left) == 3 and left[1] == right[1] == "equals":
                x, y = json.loads(left[2]), json.loads(right[2])
                if isinstance(x, str) and isinstance(y, str) and x.casefold() != y.casefold():
                    return True
    return False
