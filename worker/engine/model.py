"""The engine's data: what goes in (Event, ConversationState) and what comes out (Decision).

These dataclasses are the contract between the pure engine and the rest of the service.
Everything here is immutable and JSON-serialisable through `to_json` / `from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

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


@dataclass(frozen=True)
class Wait:
    """A rule's actions scheduled for a conversation (rules.md "Time"): carried out at `due`
    (UTC) unless restarted or cancelled first.

    `definition` fingerprints the rule as it was when the wait started (`Rule.definition`):
    a later ruleset whose rule differs cancels it. `business`: `due` counted business time.
    `params`: each action's parameters, placeholders filled from the event that started the
    wait (an action without parameters has `{}`). `event`: the excerpt of that event the
    actions need when carried out (`envelope.excerpt`; empty when they need none).
    Stored compactly inside the conversation's state (`to_json`): a pending wait costs a few
    dozen bytes there, and one entry of the timers set.
    """

    rule: str
    due: datetime
    definition: str
    business: bool = False
    params: tuple[Mapping[str, Any], ...] = ()
    event: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> list[Any]:
        """`[rule, due in ms, definition]`, then `business`, `params` and `event` when set:
        a pending wait costs a few dozen bytes inside its conversation's state."""
        data: list[Any] = [self.rule, round(self.due.timestamp() * 1000), self.definition]
        extra: list[Any] = [
            1 if self.business else 0,
            [dict(p) for p in self.params] if any(self.params) else [],
            dict(self.event),
        ]
        while extra and not extra[-1]:
            extra.pop()
        return data + extra

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> Wait:
        rule, due_ms, definition, *extra = data
        extra += [0, [], {}][len(extra) :]
        return cls(
            rule=str(rule),
            due=datetime.fromtimestamp(int(due_ms) / 1000, UTC),
            definition=str(definition),
            business=bool(extra[0]),
            params=tuple(extra[1]),
            event=dict(extra[2]),
        )


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
    waits: Mapping[str, Wait] = field(default_factory=dict)  # rule name -> its pending wait
    last_customer_message: datetime | None = None  # the last message.received (UTC)

    def __init__(
        self,
        ticket_open: bool = False,
        helpwave_ticket_id: str | None = None,
        helpwave_ticket_planned: bool = False,
        cooldowns: Mapping[str, datetime] | None = None,
        waits: Mapping[str, Wait] | None = None,
        last_customer_message: datetime | None = None,
    ) -> None:
        # The dataclass __init__, without one object.__setattr__ per field: one is made
        # for every event decided.
        fields = self.__dict__
        fields["ticket_open"] = ticket_open
        fields["helpwave_ticket_id"] = helpwave_ticket_id
        fields["helpwave_ticket_planned"] = helpwave_ticket_planned
        fields["cooldowns"] = {} if cooldowns is None else cooldowns
        fields["waits"] = {} if waits is None else waits
        fields["last_customer_message"] = last_customer_message

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ticket_open": self.ticket_open,
            "helpwave_ticket_id": self.helpwave_ticket_id,
            "helpwave_ticket_planned": self.helpwave_ticket_planned,
            "cooldowns": {name: until.isoformat() for name, until in self.cooldowns.items()},
        }
        if self.waits:
            data["waits"] = [wait.to_json() for wait in self.waits.values()]
        if self.last_customer_message is not None:
            data["last_customer_message"] = self.last_customer_message.isoformat()
        return data

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
            waits={w.rule: w for w in (Wait.from_json(item) for item in data.get("waits", ()))},
            last_customer_message=(
                datetime.fromisoformat(data["last_customer_message"])
                if data.get("last_customer_message")
                else None
            ),
        )

    def evolve(self, **changes: Any) -> ConversationState:
        """A copy with `changes` applied."""
        return replace(self, **changes)


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
    waits: Mapping[str, Wait],
    last_customer_message: datetime | None,
) -> ConversationState:
    """`ConversationState(...)` with every field given, built as `planned_action` is."""
    state = _new(ConversationState)
    fields = state.__dict__
    fields["ticket_open"] = ticket_open
    fields["helpwave_ticket_id"] = helpwave_ticket_id
    fields["helpwave_ticket_planned"] = helpwave_ticket_planned
    fields["cooldowns"] = cooldowns
    fields["waits"] = waits
    fields["last_customer_message"] = last_customer_message
    return state
