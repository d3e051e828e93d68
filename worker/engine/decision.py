"""What the engine decides for one event, and why: `Decision`, each rule's `RuleOutcome` and
the `ConditionFailure` that explains a rule that did not match.

Immutable and JSON-serialisable through `to_json` / `from_json` (the stored form).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass
from datetime import datetime
from typing import Any, Final, Literal

from worker.engine.model import ConversationState, PlannedAction

_new: Final = object.__new__


OutcomeStatus = Literal[
    "matched",  # every condition held; its actions are planned
    "not_matched",  # a condition failed: see `failure`
    "not_for_event",  # `on:` does not name this event
    "disabled",  # `enabled: false`
    "shadow",  # `shadow: true`: decided in its own view, never in the live plan (`shadow`)
    "cooling_down",  # matched, but its cooldown for this conversation is running
    "stopped",  # an earlier rule had `stop: true`
    "after_first_match",  # `mode: first_match` and an earlier rule of its file matched
    "scheduled",  # matched, and has `after:`: its actions wait (see `wait_changes`)
    "due",  # a wait ended: its actions are planned (timers.fire)
    "superseded",  # a wait ended that a later event had restarted or cancelled
    "cancelled",  # a wait ended whose rule was removed, disabled or changed since
]


@dataclass(frozen=True)
class ConditionFailure:
    """The first condition of a rule that did not hold, and the value it saw."""

    path: str  # "data.body", "ticket", "time", ...
    expected: str  # human text: "contains 'thank'", "equals 'text'", "is open"
    seen: Any  # the value found (JSON-able); None with `missing=True` when absent
    missing: bool = False

    def describe(self) -> str:
        seen = "missing" if self.missing else repr(self.seen)
        return f"{self.path} {self.expected}: saw {seen}"


@dataclass(frozen=True)
class RuleOutcome:
    """Why one rule did or did not act on an event."""

    rule: str
    status: OutcomeStatus
    reason: str
    failure: ConditionFailure | None = None
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class WaitChange:
    """A wait this decision started or restarted (`due` set: when its actions are due) or
    cancelled (`due` None), and why, as a decision record says it: "scheduled for T
    (business time)", "cancelled by message.received (unless)", ..."""

    rule: str
    due: datetime | None
    reason: str


class OutcomesNotStored(LookupError):
    """A decision read back from its compact stored form has no rule outcomes: they are
    explained again on read, from the event, the state before and the ruleset version
    (`worker.storage.explanations`)."""


class Decision:
    """What to do for one event and why, for every rule of the ruleset.

    Immutable. Built like a dataclass: `Decision(ruleset_version, event, conversation_id,
    outcomes, actions, state_after)`. `evaluate` builds it with `explained_later` instead:
    the outcome of every rule is then worked out (by re-running the pure, explaining checks)
    the first time `outcomes` or `to_json()` is read, while `actions`, `state_after` and
    `matched_rules` are there from the start. Such a decision keeps `decided_at` (the `now`
    it was decided at): with the event, the state before and the ruleset version, its
    outcomes can be worked out again later (None: its outcomes were given whole).
    """

    ruleset_version: str
    event: str
    conversation_id: str | None
    actions: tuple[PlannedAction, ...]
    state_after: ConversationState
    wait_changes: tuple[WaitChange, ...]
    _outcomes: tuple[RuleOutcome, ...] | None
    _explain: Callable[[], tuple[RuleOutcome, ...]] | None
    _matched: tuple[str, ...] | None
    decided_at: datetime | None

    def __init__(
        self,
        ruleset_version: str,
        event: str,
        conversation_id: str | None,
        outcomes: tuple[RuleOutcome, ...],
        actions: tuple[PlannedAction, ...],
        state_after: ConversationState,
        wait_changes: tuple[WaitChange, ...] = (),
    ) -> None:
        _set = object.__setattr__
        _set(self, "ruleset_version", ruleset_version)
        _set(self, "event", event)
        _set(self, "conversation_id", conversation_id)
        _set(self, "actions", actions)
        _set(self, "state_after", state_after)
        _set(self, "wait_changes", tuple(wait_changes))
        _set(self, "_outcomes", tuple(outcomes))
        _set(self, "_explain", None)
        _set(self, "_matched", None)
        _set(self, "decided_at", None)

    @classmethod
    def explained_later(
        cls,
        ruleset_version: str,
        event: str,
        conversation_id: str | None,
        explain: Callable[[], tuple[RuleOutcome, ...]],
        actions: tuple[PlannedAction, ...],
        state_after: ConversationState,
        matched_rules: tuple[str, ...],
        wait_changes: tuple[WaitChange, ...] = (),
        decided_at: datetime | None = None,
    ) -> Decision:
        """A decision whose outcomes `explain()` returns when first read.

        `explain` must be pure, and agree with `matched_rules` (the rules whose outcome is
        "matched", in order). `decided_at`: the `now` it was decided at, when `explain` is
        `evaluate.explain` (it can then be run again on read).
        """
        decision = _new(cls)
        fields = decision.__dict__  # what __init__ sets, without __setattr__ (refused)
        fields["ruleset_version"] = ruleset_version
        fields["event"] = event
        fields["conversation_id"] = conversation_id
        fields["actions"] = actions
        fields["state_after"] = state_after
        fields["wait_changes"] = wait_changes
        fields["_outcomes"] = None
        fields["_explain"] = explain
        fields["_matched"] = matched_rules
        fields["decided_at"] = decided_at
        return decision

    @property
    def outcomes(self) -> tuple[RuleOutcome, ...]:
        """Why each rule of the ruleset did or did not act, in ruleset order."""
        outcomes = self._outcomes
        if outcomes is None:
            assert self._explain is not None
            outcomes = self._explain()
            object.__setattr__(self, "_outcomes", outcomes)
            object.__setattr__(self, "_explain", None)
        return outcomes

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """The names of the rules that matched (and act), in order."""
        matched = self._matched
        if matched is None:
            matched = tuple(o.rule for o in self.outcomes if o.status == "matched")
            object.__setattr__(self, "_matched", matched)
        return matched

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.ruleset_version,
            self.event,
            self.conversation_id,
            self.outcomes,
            self.actions,
            self.state_after,
            self.wait_changes,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Decision)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names = ("ruleset_version", "event", "conversation_id", "outcomes", "actions")
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=False))
        return f"Decision({shown}, state_after={self.state_after!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Decision, self._fields())

    def to_json(self, *, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The decision as JSON; outcomes whose status is in `leave_out` are left out."""
        data = self._to_json(leave_out)
        if self.wait_changes:
            data["wait_changes"] = wait_changes_json(self.wait_changes)
        return data

    def _to_json(self, leave_out: frozenset[str]) -> dict[str, Any]:
        return {
            "ruleset_version": self.ruleset_version,
            "event": self.event,
            "conversation_id": self.conversation_id,
            "outcomes": [
                {
                    "rule": o.rule,
                    "status": o.status,
                    "reason": o.reason,
                    "file": o.file,
                    "line": o.line,
                    "failure": None
                    if o.failure is None
                    else {
                        "path": o.failure.path,
                        "expected": o.failure.expected,
                        "seen": o.failure.seen,
                        "missing": o.failure.missing,
                    },
                }
                for o in self.outcomes
                if o.status not in leave_out
            ],
            "actions": [
                {
                    "rule": a.rule,
                    "index": a.index,
                    "kind": a.kind,
                    "params": dict(a.params),
                    "skip_reason": a.skip_reason,
                }
                for a in self.actions
            ],
            "state_after": self.state_after.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            ruleset_version=data["ruleset_version"],
            event=data["event"],
            conversation_id=data.get("conversation_id"),
            outcomes=tuple(
                RuleOutcome(
                    rule=o["rule"],
                    status=o["status"],
                    reason=o["reason"],
                    file=o.get("file", ""),
                    line=o.get("line", 0),
                    failure=None
                    if o.get("failure") is None
                    else ConditionFailure(
                        path=o["failure"]["path"],
                        expected=o["failure"]["expected"],
                        seen=o["failure"]["seen"],
                        missing=o["failure"].get("missing", False),
                    ),
                )
                for o in data["outcomes"]
            ),
            actions=tuple(
                PlannedAction(
                    rule=a["rule"],
                    index=a["index"],
                    kind=a["kind"],
                    params=a.get("params", {}),
                    skip_reason=a.get("skip_reason"),
                )
                for a in data["actions"]
            ),
            state_after=ConversationState.from_json(data["state_after"]),
            wait_changes=tuple(
                WaitChange(
                    rule=c["rule"],
                    due=None if c.get("due") is None else datetime.fromisoformat(c["due"]),
                    reason=c.get("reason", ""),
                )
                for c in data.get("wait_changes", ())
            ),
        )


def wait_changes_json(changes: tuple[WaitChange, ...]) -> list[dict[str, Any]]:
    """The waits a decision started or ended, as its JSON forms keep them."""
    return [
        {"rule": c.rule, "due": None if c.due is None else c.due.isoformat(), "reason": c.reason}
        for c in changes
    ]


def rule_outcome(
    rule: str,
    status: OutcomeStatus,
    reason: str,
    failure: ConditionFailure | None,
    file: str,
    line: int,
) -> RuleOutcome:
    """`RuleOutcome(...)` with every field given, built as `planned_action` is."""
    outcome = _new(RuleOutcome)
    fields = outcome.__dict__
    fields["rule"] = rule
    fields["status"] = status
    fields["reason"] = reason
    fields["failure"] = failure
    fields["file"] = file
    fields["line"] = line
    return outcome


def condition_failure(path: str, expected: str, seen: Any, missing: bool) -> ConditionFailure:
    """`ConditionFailure(...)` with every field given, built as `planned_action` is."""
    failure = _new(ConditionFailure)
    fields = failure.__dict__
    fields["path"] = path
    fields["expected"] = expected
    fields["seen"] = seen
    fields["missing"] = missing
    return failure
