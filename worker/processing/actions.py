"""Turns an engine PlannedAction into helpdesk calls: the only place that knows both sides.

`ActionExecutor.execute` makes the calls for one action and returns the outcome and the
conversation state it leads to. It never retries: errors from the error tree propagate to
the processor, which owns the one retry layer.

HelpWave: the conversation's ticket id is stored in its state by the create that made it.
A create first looks the stored ticket up (`GET /tickets/{id}`) and reuses it unless
HelpWave answers that it is closed or gone; a comment goes to the id stored when it is
carried out, so comments after a replacing create go to the new ticket.

Both creates call `before_send()` right before their POST (and after the lookups that may
make it unnecessary): the action runner marks its send intent there
(`worker.storage.send_intents`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.engine.model import (
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    OPEN_TICKET,
    ConversationState,
    Event,
    PlannedAction,
)
from worker.engine.planning import NO_CONVERSATION, Projection, plan_action
from worker.errors import ActionError, ConfigError
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.helpwave import HelpWaveClient

DEFAULT_CHANNEL = "Helpwave"
_COMMENT_FIELDS = ("time", "subject", "fromEmail", "toEmails", "Channel")


@dataclass(frozen=True)
class ActionOutcome:
    """What one action did: `result` is "done", "already" (the wanted state held) or "skipped"."""

    result: str
    state: ConversationState
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, **self.detail}


def customer_phone(event: Event) -> str | None:
    """The customer's phone number: `data.from`, or `data.phone_number` on conversation.created."""
    data = event.payload.get("data")
    if not isinstance(data, Mapping):
        return None
    for name in ("from", "phone_number"):
        value = data.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


class ActionExecutor:
    """Carries out planned actions with the configured helpdesk clients."""

    def __init__(
        self,
        *,
        awalchat: AwalChatClient | None,
        helpwave: HelpWaveClient | None,
        default_phone_number_id: str | None,
    ) -> None:
        self._awalchat = awalchat
        self._helpwave = helpwave
        self._phone_number_id = default_phone_number_id

    def execute(
        self,
        action: PlannedAction,
        event: Event,
        state: ConversationState,
        *,
        before_send: Callable[[], None] = lambda: None,
    ) -> ActionOutcome:
        """Make the calls `action` needs; raise a HelpdeskError when one fails.

        `before_send` runs right before a create that is not idempotent goes out (a HelpWave
        ticket or comment); what it raises propagates and nothing is sent."""
        conversation = event.conversation_id
        if conversation is None:
            return ActionOutcome("skipped", state, {"reason": NO_CONVERSATION})
        if action.kind in (OPEN_TICKET, CLOSE_TICKET):
            return self._ticket(action, conversation, state)
        if action.kind == HELPWAVE_CREATE_TICKET:
            return self._create_ticket(action, event, state, before_send)
        if action.kind == HELPWAVE_ADD_COMMENT:
            return self._add_comment(action, state, before_send)
        raise ConfigError(f"unknown action kind {action.kind!r}")

    def _awalchat_client(self) -> AwalChatClient:
        if self._awalchat is None:
            raise ConfigError("AWALCHAT_HMAC_SECRET is not set")
        return self._awalchat

    def _helpwave_client(self) -> HelpWaveClient:
        if self._helpwave is None:
            raise ConfigError("HELPWAVE_API_KEY is not set")
        return self._helpwave

    def _ticket(
        self, action: PlannedAction, conversation: str, state: ConversationState
    ) -> ActionOutcome:
        client = self._awalchat_client()
        phone_number_id = str(action.params.get("phone_number_id") or self._phone_number_id or "")
        if not phone_number_id:
            raise ConfigError("AWALCHAT_PHONE_NUMBER_ID is not set")
        opening = action.kind == OPEN_TICKET
        call = client.open_ticket if opening else client.close_ticket
        change = call(conversation, phone_number_id)
        detail: dict[str, Any] = {"ticket_id": change.ticket_id} if change.ticket_id else {}
        return ActionOutcome(
            "already" if change.already else "done",
            state.evolve(ticket_open=opening),
            detail,
        )

    def _create_ticket(
        self,
        action: PlannedAction,
        event: Event,
        state: ConversationState,
        before_send: Callable[[], None],
    ) -> ActionOutcome:
        """Reuse the stored ticket ("already") unless HelpWave answers that it is closed or
        gone (404); else create one for the customer (found or created by phone number) and
        store its id ("done", naming the ticket it replaced). Either way the planned create
        is resolved (`helpwave_ticket_planned` cleared)."""
        client = self._helpwave_client()
        resolved = state.evolve(helpwave_ticket_planned=False)
        stored = state.helpwave_ticket_id
        replaced: dict[str, str] = {}
        if stored is not None:
            existing = client.get_ticket(stored)
            if existing is not None and not existing.closed:
                return ActionOutcome("already", resolved, {"ticket_id": existing.id})
            because = "not found" if existing is None else "closed"
            replaced = {"replaced": stored, "replaced_because": because}
        phone = customer_phone(event)
        if phone is None:
            raise ActionError(
                "the event has no customer phone number (data.from, data.phone_number)"
            )
        customer_id = client.find_or_create_customer(phone)
        fields = {"Channel": DEFAULT_CHANNEL, **action.params, "customerId": customer_id}
        before_send()
        ticket_id = client.create_ticket(fields)
        return ActionOutcome(
            "done",
            resolved.evolve(helpwave_ticket_id=ticket_id),
            {"ticket_id": ticket_id, "customer_id": customer_id, **replaced},
        )

    def _add_comment(
        self, action: PlannedAction, state: ConversationState, before_send: Callable[[], None]
    ) -> ActionOutcome:
        """Add the comment to the ticket stored now; skipped ("skipped", with the reason)
        when none is stored (the create planned before it failed) or the text is blank."""
        client = self._helpwave_client()
        ticket_id = state.helpwave_ticket_id
        stored = Projection(state.ticket_open, ticket_id, helpwave_ticket_planned=False)
        reason, _ = plan_action(action.kind, action.params, stored, has_conversation=True)
        if reason is not None or ticket_id is None:  # no id stored: NO_HELPWAVE_TICKET
            return ActionOutcome("skipped", state, {"reason": reason})
        text = str(action.params["text"])
        optional = {k: action.params[k] for k in _COMMENT_FIELDS if k in action.params}
        before_send()
        client.add_comment(
            ticket_id,
            text,
            is_from_shop=bool(action.params.get("isFromShop", False)),
            **optional,
        )
        return ActionOutcome("done", state, {"ticket_id": ticket_id})
