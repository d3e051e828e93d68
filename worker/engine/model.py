"""The engine's data: what goes in (Event, ConversationState) and what comes out (Decision).

These dataclasses are the contract between the pure engine and the rest of the service.
Everything here is immutable and JSON-serialisable through `to_json` / `from_json`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

OPEN_TICKET: Final = "open_ticket"
CLOSE_TICKET: Final = "close_ticket"
HELPWAVE_CREATE_TICKET: Final = "helpwave.create_ticket"
HELPWAVE_ADD_COMMENT: Final = "helpwave.add_comment"
ACTION_KINDS: Final = (OPEN_TICKET, CLOSE_TICKET, HELPWAVE_CREATE_TICKET, HELPWAVE_ADD_COMMENT)
AWALCHAT_ACTIONS: Final = frozenset({OPEN_TICKET, CLOSE_TICKET})
HELPWAVE_ACTIONS: Final = frozenset({HELPWAVE_CREATE_TICKET, HELPWAVE_ADD_COMMENT})

# Event names AwalChat documents; an `on:` name within two edits of one of these is a typo.
KNOWN_EVENTS: Final = (
    "message.received",
    "message.status.updated",
    "conversation.created",
    "conversation.updated",
)


@dataclass(frozen=True)
class Event:
    """One webhook envelope as the engine sees it.

    `payload` is the whole decoded JSON object (`event`, `timestamp`, `data`, ...); rule paths
    are dotted into it. `conversation_id` is `data.conversation_id` as a string, when present.
    """

    name: str
    payload: Mapping[str, Any]
    timestamp: datetime | None = None
    conversation_id: str | None = None


@dataclass(frozen=True, init=False)
class ConversationState:
    """What the worker knows of one conversation before an event is decided.

    `ticket_open`: the AwalChat ticket, as projected by every decision so far (see
    `planning`). `helpwave_ticket_id`: the conversation's latest HelpWave ticket; only the
    executor writes it (from a create's answer), and whether HelpWave still has it open is
    looked up when a create is carried out, never stored here. `helpwave_ticket_planned`: a
    HelpWave create was decided since that id was stored (it may still be waiting, have
    been dry-run, or have failed); comments decided meanwhile are planned, and find the
    stored id, if any, when they are carried out.
    """

    ticket_open: bool = False
    helpwave_ticket_id: str | None = None
    helpwave_ticket_planned: bool = False
    cooldowns: Mapping[str, datetime] = field(default_factory=dict)  # rule name -> until (UTC)

    def __init__(
        self,
        ticket_open: bool = False,
        helpwave_ticket_id: str | None = None,
        helpwave_ticket_planned: bool = False,
        cooldowns: Mapping[str, datetime] | None = None,
    ) -> None:
        # The dataclass __init__, without one object.__setattr__ per field: one is made
        # for every event decided.
        fields = self.__dict__
        fields["ticket_open"] = ticket_open
        fields["helpwave_ticket_id"] = helpwave_ticket_id
        fields["helpwave_ticket_planned"] = helpwave_ticket_planned
        fields["cooldowns"] = {} if cooldowns is None else cooldowns

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket_open": self.ticket_open,
            "helpwave_ticket_id": self.helpwave_ticket_id,
            "helpwave_ticket_planned": self.helpwave_ticket_planned,
            "cooldowns": {name: until.isoformat() for name, until in self.cooldowns.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConversationState:
        """The state `to_json` wrote, or one stored by an older version.

        Older versions stored `helpwave_ticket_open` (a HelpWave ticket projected open)
        instead of `helpwave_ticket_planned`: open with no id stored meant a create was
        decided and had not stored its id, which is what `helpwave_ticket_planned` says.
        """
        ticket_id = data.get("helpwave_ticket_id")
        if "helpwave_ticket_planned" in data:
            planned = bool(data["helpwave_ticket_planned"])
        else:
            planned = bool(data.get("helpwave_ticket_open", False)) and ticket_id is None
        return cls(
            ticket_open=bool(data.get("ticket_open", False)),
            helpwave_ticket_id=ticket_id,
            helpwave_ticket_planned=planned,
            cooldowns={
                name: datetime.fromisoformat(until)
                for name, until in dict(data.get("cooldowns", {})).items()
            },
        )

    def evolve(self, **changes: Any) -> ConversationState:
        """A copy with `changes` applied."""
        return replace(self, **changes)


OutcomeStatus = Literal[
    "matched",  # every condition held; its actions are planned
    "not_matched",  # a condition failed: see `failure`
    "not_for_event",  # `on:` does not name this event
    "disabled",  # `enabled: false`
    "cooling_down",  # matched, but its cooldown for this conversation is running
    "stopped",  # an earlier rule had `stop: true`
    "after_first_match",  # `mode: first_match` and an earlier rule of its file matched
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


_new: Final = object.__new__


@dataclass(frozen=True)
class PlannedAction:
    """One action a matched rule asks for, placeholders filled.

    `skip_reason` is set when the action would change nothing (open while open, ...; see
    `planning`): it is recorded, never sent. `rule` + `index` identify it inside its decision.
    """

    rule: str
    index: int
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None

    @property
    def key(self) -> str:
        """Stable id within a decision; with the delivery id it forms the idempotency key."""
        return f"{self.rule}#{self.index}"


class Decision:
    """What to do for one event and why, for every rule of the ruleset.

    Immutable. Built like a dataclass: `Decision(ruleset_version, event, conversation_id,
    outcomes, actions, state_after)`. `evaluate` builds it with `explained_later` instead:
    the outcome of every rule is then worked out (by re-running the pure, explaining checks)
    the first time `outcomes` or `to_json()` is read, while `actions`, `state_after` and
    `matched_rules` are there from the start.
    """

    ruleset_version: str
    event: str
    conversation_id: str | None
    actions: tuple[PlannedAction, ...]
    state_after: ConversationState
    _outcomes: tuple[RuleOutcome, ...] | None
    _explain: Callable[[], tuple[RuleOutcome, ...]] | None
    _matched: tuple[str, ...] | None

    def __init__(
        self,
        ruleset_version: str,
        event: str,
        conversation_id: str | None,
        outcomes: tuple[RuleOutcome, ...],
        actions: tuple[PlannedAction, ...],
        state_after: ConversationState,
    ) -> None:
        _set = object.__setattr__
        _set(self, "ruleset_version", ruleset_version)
        _set(self, "event", event)
        _set(self, "conversation_id", conversation_id)
        _set(self, "actions", actions)
        _set(self, "state_after", state_after)
        _set(self, "_outcomes", tuple(outcomes))
        _set(self, "_explain", None)
        _set(self, "_matched", None)

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
    ) -> Decision:
        """A decision whose outcomes `explain()` returns when first read.

        `explain` must be pure, and agree with `matched_rules` (the rules whose outcome is
        "matched", in order).
        """
        decision = _new(cls)
        fields = decision.__dict__  # what __init__ sets, without __setattr__ (refused)
        fields["ruleset_version"] = ruleset_version
        fields["event"] = event
        fields["conversation_id"] = conversation_id
        fields["actions"] = actions
        fields["state_after"] = state_after
        fields["_outcomes"] = None
        fields["_explain"] = explain
        fields["_matched"] = matched_rules
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

    def to_json(self) -> dict[str, Any]:
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
        )


def planned_action(
    rule: str, index: int, kind: str, params: Mapping[str, Any], skip_reason: str | None
) -> PlannedAction:
    """`PlannedAction(rule, index, kind, params, skip_reason)`, without the frozen-dataclass
    cost of setting each field through `object.__setattr__` (evaluate makes many)."""
    action = _new(PlannedAction)
    fields = action.__dict__
    fields["rule"] = rule
    fields["index"] = index
    fields["kind"] = kind
    fields["params"] = params
    fields["skip_reason"] = skip_reason
    return action


def conversation_state(
    ticket_open: bool,
    helpwave_ticket_id: str | None,
    helpwave_ticket_planned: bool,
    cooldowns: Mapping[str, datetime],
) -> ConversationState:
    """`ConversationState(...)` with every field given, built as `planned_action` is."""
    state = _new(ConversationState)
    fields = state.__dict__
    fields["ticket_open"] = ticket_open
    fields["helpwave_ticket_id"] = helpwave_ticket_id
    fields["helpwave_ticket_planned"] = helpwave_ticket_planned
    fields["cooldowns"] = cooldowns
    return state


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
