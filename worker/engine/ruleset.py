"""A loaded, validated ruleset: immutable, compiled once, shared by every evaluation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta, tzinfo
from functools import cached_property
from typing import Any, Final, Literal

from worker.engine.business_hours import BusinessCalendar
from worker.engine.checks import AllShape, AnyShape, Condition, NotShape, SessionShape, Shape
from worker.engine.decision import RuleOutcome
from worker.engine.fastpath import ActionStep, Decider, RuleEntry, compile_decider
from worker.engine.model import AWALCHAT_ACTIONS, HELPWAVE_ACTIONS
from worker.engine.templates import FixedParams

Mode = Literal["first_match", "all"]
_SHADOW: Final = "shadow: true: decided in its own view, never carried out (see shadow)"
WILDCARD: Literal["*"] = "*"


@dataclass(frozen=True)
class ActionSpec:
    """One entry of a rule's `then:`: its kind, its parameters as written (defaults filled)."""

    kind: str
    params: Mapping[str, Any]
    render: Callable[[Mapping[str, Any]], dict[str, Any]] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Rule:
    """One compiled rule. `events` is the set of names from `on:`, or '*' for every event."""

    name: str
    description: str
    file: str
    line: int
    events: frozenset[str] | Literal["*"]
    condition: Condition = field(repr=False, compare=False)
    actions: tuple[ActionSpec, ...]
    stop: bool = False
    cooldown: timedelta | None = None
    enabled: bool = True
    column: int = 1
    after: timedelta | None = None  # `after:`: its actions wait this long (see `timers`)
    business: bool = False  # `after: {business: ...}`: counted in the file's business hours
    unless: frozenset[str] = frozenset()  # `unless:`: events that cancel its wait
    definition: str = ""  # fingerprint of on/when/after/unless/then: a change cancels waits
    # the file's `business_hours:` (for a `business:` wait; None when the file has none)
    calendar: BusinessCalendar | None = field(default=None, repr=False, compare=False)
    shadow: bool = False  # `shadow: true`: decided in its own view, never carried out

    def listens_to(self, event: str) -> bool:
        """Is the rule decided on `event` (`on:` names it, or is "*" and `unless:` does not)."""
        if self.events == WILDCARD:
            return event not in self.unless
        return event in self.events


@dataclass(frozen=True)
class RuleFile:
    """Per-file options: `mode` applies among the file's own rules; `timezone` to `time:`;
    `calendar` (`business_hours:`) to its rules' `business:` waits; `limits` (`limits:`,
    None when the file has none, at `limits_at`) to the whole ruleset."""

    name: str
    mode: Mode = "all"
    timezone: str = "UTC"
    zone: tzinfo | None = field(default=None, repr=False, compare=False)
    calendar: BusinessCalendar | None = None
    limits: Limits | None = None
    limits_at: tuple[int, int] = field(default=(1, 1), compare=False)


@dataclass(frozen=True)
class Cap:
    """At most `count` actions in any `window` (rules.md "the runaway breaker")."""

    count: int
    window: timedelta

    def describe(self) -> str:
        seconds = int(self.window.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{self.count} in {seconds // size}{unit}"
        return f"{self.count} in {seconds}s"


@dataclass(frozen=True)
class Limits:
    """The ruleset's per-conversation caps: ticket actions (opens, closes, HelpWave creates)
    and HelpWave comments."""

    tickets_per_conversation: Cap = Cap(6, timedelta(minutes=10))
    comments_per_conversation: Cap = Cap(60, timedelta(minutes=10))


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, eq=False)
class Ruleset:
    """Every rule of every file, in order; `version` is a short hash of the files' texts.

    Two rulesets with the same `version` were loaded from the same texts. `limits`: the
    runaway breaker's caps (set by at most one file's `limits:`, else the defaults).
    """

    version: str
    rules: tuple[Rule, ...]
    rule_files: tuple[RuleFile, ...]
    limits: Limits = DEFAULT_LIMITS

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.rule_files)

    def file(self, name: str) -> RuleFile:
        """The options of the file called `name` (KeyError when there is none)."""
        for rule_file in self.rule_files:
            if rule_file.name == name:
                return rule_file
        raise KeyError(name)

    @cached_property
    def uses_awalchat(self) -> bool:
        """Does any enabled rule open or close AwalChat tickets (credentials needed)."""
        return self._uses(AWALCHAT_ACTIONS)

    @cached_property
    def uses_helpwave(self) -> bool:
        """Does any enabled rule call HelpWave (credentials needed)."""
        return self._uses(HELPWAVE_ACTIONS)

    def _uses(self, kinds: frozenset[str]) -> bool:
        return any(
            a.kind in kinds for r in self.rules if r.enabled and not r.shadow for a in r.actions
        )

    @cached_property
    def shadow_rules(self) -> tuple[str, ...]:
        """The names of the enabled `shadow: true` rules, in order (empty: no shadow work)."""
        return tuple(r.name for r in self.rules if r.shadow and r.enabled)

    @cached_property
    def shadow_worlds(self) -> Mapping[str, Ruleset]:
        """For each shadow rule, this ruleset with that one rule live (the other shadow
        rules stay shadow): what its own view is decided by (see `engine.shadow`)."""
        worlds = {}
        for name in self.shadow_rules:
            rules = tuple(replace(r, shadow=False) if r.name == name else r for r in self.rules)
            worlds[name] = Ruleset(self.version, rules, self.rule_files, self.limits)
        return worlds

    @cached_property
    def plan(self) -> Plan:
        """What `evaluate` precomputes once per ruleset."""
        return Plan(self)


class Plan:
    """Per-ruleset lookups for evaluation, computed once.

    For an event name: the outcomes of the rules that cannot act on it (disabled, not for
    the event), the indexes of those that might, in order, and the compiled decider telling
    which of them act and plans their actions (see `fastpath`).
    """

    def __init__(self, ruleset: Ruleset) -> None:
        rules = ruleset.rules
        modes = {f.name: f.mode for f in ruleset.rule_files}
        self.first_match = tuple(modes.get(r.file) == "first_match" for r in rules)
        self.names = tuple(r.name for r in rules)
        groups = {name: number for number, name in enumerate(modes)}
        self.entries = tuple(
            RuleEntry(
                r.name,
                r.condition.shape,
                r.condition.check,
                groups[r.file] if self.first_match[i] else None,
                r.stop,
                tuple(_step(index, spec) for index, spec in enumerate(r.actions)),
                r.cooldown,
                r.after is not None,
            )
            for i, r in enumerate(rules)
        )
        self.by_name = {r.name: r for r in rules}
        self.timed = any(r.after is not None for r in rules)  # any rule with after:
        self.uses_session = any(_uses_session(r.condition.shape) for r in rules)
        self.matched = tuple(
            RuleOutcome(r.name, "matched", "every condition held", file=r.file, line=r.line)
            for r in rules
        )
        self._disabled = tuple(
            RuleOutcome(r.name, "disabled", "enabled: false", file=r.file, line=r.line)
            if not r.shadow or not r.enabled
            else RuleOutcome(r.name, "shadow", _SHADOW, file=r.file, line=r.line)
            for r in rules
        )
        self._not_for_event = tuple(
            RuleOutcome(
                r.name, "not_for_event", f"listens for {_names(r)}", file=r.file, line=r.line
            )
            for r in rules
        )
        self._rules = rules
        self._other_events = self._for(None)
        names = {name for r in rules if r.events != WILDCARD for name in r.events}
        names.update(name for r in rules for name in r.unless)
        self._by_event = {name: self._for(name) for name in sorted(names)}
        self.other_decider = self._decider(self._other_events[1])
        self.deciders = {
            name: self._decider(candidates) for name, (_, candidates) in self._by_event.items()
        }

    def for_event(self, event: str) -> tuple[tuple[RuleOutcome, ...], tuple[int, ...]]:
        """(the outcome of every rule that cannot act on `event`, indexes of those that may)."""
        return self._by_event.get(event, self._other_events)

    def decider(self, event: str) -> Decider:
        """The compiled decider of the rules that may act on `event` (see `fastpath`)."""
        return self.deciders.get(event, self.other_decider)

    def _decider(self, candidates: tuple[int, ...]) -> Decider:
        return compile_decider([self.entries[i] for i in candidates])

    def _for(self, event: str | None) -> tuple[tuple[RuleOutcome, ...], tuple[int, ...]]:
        outcomes = []
        candidates = []
        for i, rule in enumerate(self._rules):
            listens = rule.events == WILDCARD or (event is not None and rule.listens_to(event))
            if not rule.enabled or rule.shadow:
                outcomes.append(self._disabled[i])
            elif event is not None and event in rule.unless:
                reason = f"listens for {_names(rule)}; unless: {event} cancels its wait"
                outcomes.append(
                    RuleOutcome(rule.name, "not_for_event", reason, file=rule.file, line=rule.line)
                )
            elif not listens:
                outcomes.append(self._not_for_event[i])
            else:
                outcomes.append(self.matched[i])
                candidates.append(i)
        return tuple(outcomes), tuple(candidates)


def _uses_session(shape: Shape | None) -> bool:
    if isinstance(shape, SessionShape):
        return True
    if isinstance(shape, AllShape | AnyShape):
        return any(_uses_session(child.shape) for child in shape.children)
    if isinstance(shape, NotShape):
        return _uses_session(shape.inner.shape)
    return False


def _names(rule: Rule) -> str:
    return "every event" if rule.events == WILDCARD else ", ".join(sorted(rule.events))


def _step(index: int, spec: ActionSpec) -> ActionStep:
    if isinstance(spec.render, FixedParams):
        return ActionStep(index, spec.kind, spec.render.params)
    return ActionStep(index, spec.kind, spec.params, spec.render)
