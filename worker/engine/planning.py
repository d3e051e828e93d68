"""How an action is planned: the one statement, per action kind, of when it is skipped and
what it changes in the state projected through a decision.

`evaluate` plans the actions of the rules that act, in order, against a `Projection`: the
conversation's state when the event arrived, changed by each action planned before. An
action of an event without a conversation is skipped (NO_CONVERSATION); otherwise the first
`Skip` of its kind whose test holds gives its `skip_reason`, and an action not skipped
applies its kind's effect to the projection:

    kind                    skipped when (reason)                       effect when planned
    open_ticket             the ticket is open (TICKET_ALREADY_OPEN)      ticket open
    close_ticket            the ticket is closed (TICKET_ALREADY_CLOSED)  ticket closed
    helpwave.create_ticket  never                                       a HelpWave ticket planned
    helpwave.add_comment    no HelpWave ticket id stored and none planned
                            (NO_HELPWAVE_TICKET); blank text (EMPTY_COMMENT)

A HelpWave create is never skipped when it is decided: whether the conversation's stored
ticket is still open is known only to HelpWave, so the executor looks it up when it carries
the create out (reusing an open ticket, replacing a closed or missing one).

`PLANNING` is that table as data. `fastpath` compiles it into every decider (inline: no call
per action); `plan_action` applies it to one action at a time (the executor checks a comment
again when it is carried out; the tests compare the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from worker.engine.model import (
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    OPEN_TICKET,
)

NO_CONVERSATION: Final = "event has no conversation"
TICKET_ALREADY_OPEN: Final = "ticket already open"
TICKET_ALREADY_CLOSED: Final = "ticket already closed"
NO_HELPWAVE_TICKET: Final = "no HelpWave ticket for this conversation"
EMPTY_COMMENT: Final = "comment text is empty"


class Projection(NamedTuple):
    """What planning tracks through a decision (the fields of ConversationState it reads)."""

    ticket_open: bool
    helpwave_ticket_id: str | None
    helpwave_ticket_planned: bool


@dataclass(frozen=True, slots=True)
class TicketIs:
    """Holds when the projected AwalChat ticket is open (`open=True`) or closed."""

    open: bool


@dataclass(frozen=True, slots=True)
class NoHelpWaveTicket:
    """Holds when no HelpWave ticket id is stored and no create is planned."""


@dataclass(frozen=True, slots=True)
class BlankText:
    """Holds when the action's `param` is not a text with something besides whitespace."""

    param: str


SkipTest = TicketIs | NoHelpWaveTicket | BlankText


@dataclass(frozen=True, slots=True)
class Skip:
    """Skip the action with `reason` when `test` holds."""

    test: SkipTest
    reason: str


@dataclass(frozen=True, slots=True)
class KindPlanning:
    """How actions of one kind are planned: `skips` in order, then the effect when planned.

    `sets_ticket_open`: the projected ticket's state afterwards (None: unchanged);
    `plans_helpwave_ticket`: a HelpWave ticket will be there for later comments.
    """

    skips: tuple[Skip, ...] = ()
    sets_ticket_open: bool | None = None
    plans_helpwave_ticket: bool = False


PLANNING: Final[Mapping[str, KindPlanning]] = {
    OPEN_TICKET: KindPlanning(
        skips=(Skip(TicketIs(open=True), TICKET_ALREADY_OPEN),), sets_ticket_open=True
    ),
    CLOSE_TICKET: KindPlanning(
        skips=(Skip(TicketIs(open=False), TICKET_ALREADY_CLOSED),), sets_ticket_open=False
    ),
    HELPWAVE_CREATE_TICKET: KindPlanning(plans_helpwave_ticket=True),
    HELPWAVE_ADD_COMMENT: KindPlanning(
        skips=(
            Skip(NoHelpWaveTicket(), NO_HELPWAVE_TICKET),
            Skip(BlankText("text"), EMPTY_COMMENT),
        ),
    ),
}
NOTHING: Final = KindPlanning()  # a kind the table does not know: never skipped, no effect


def planning_of(kind: str) -> KindPlanning:
    """How actions of `kind` are planned."""
    return PLANNING.get(kind, NOTHING)


def is_blank(value: Any) -> bool:
    """Is `value` not a text with something besides whitespace (BlankText's test)."""
    return not isinstance(value, str) or not value.strip()


def holds(test: SkipTest, params: Mapping[str, Any], projection: Projection) -> bool:
    """Does `test` hold for an action with `params`, against `projection`."""
    if isinstance(test, TicketIs):
        return projection.ticket_open == test.open
    if isinstance(test, NoHelpWaveTicket):
        return projection.helpwave_ticket_id is None and not projection.helpwave_ticket_planned
    return is_blank(params.get(test.param))


def plan_action(
    kind: str, params: Mapping[str, Any], projection: Projection, *, has_conversation: bool
) -> tuple[str | None, Projection]:
    """The skip reason of one action (None: carry it out) and the projection after it."""
    if not has_conversation:
        return NO_CONVERSATION, projection
    planning = planning_of(kind)
    for skip in planning.skips:
        if holds(skip.test, params, projection):
            return skip.reason, projection
    ticket_open = planning.sets_ticket_open
    return None, Projection(
        projection.ticket_open if ticket_open is None else ticket_open,
        projection.helpwave_ticket_id,
        projection.helpwave_ticket_planned or planning.plans_helpwave_ticket,
    )
