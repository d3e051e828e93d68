"""ActionExecutor and HelpWave: a create looks the stored ticket up and reuses it unless it
is closed or gone; a comment goes to the ticket stored when it is carried out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.planning import EMPTY_COMMENT, NO_HELPWAVE_TICKET
from worker.errors import HelpdeskUnavailableError
from worker.helpdesks.helpwave import HelpWaveClient
from worker.processing.actions import ActionExecutor

STORED = "987654321012345678"
NEW = "111222333444555666"
EVENT = Event(
    "message.received",
    {"event": "message.received", "data": {"conversation_id": 7, "from": "966500000001"}},
    conversation_id="7",
)
CREATE = PlannedAction("r", 0, "helpwave.create_ticket", {"Channel": "Helpwave"})
OPEN = {"HumanTicketStatus": "OPEN", "closedAt": None}
CLOSED = {"HumanTicketStatus": "CLOSED", "closedAt": "2026-11-27T10:00:00Z"}


class HelpWave:
    """Answers as HelpWave would, the stored ticket's GET from `ticket`; records the calls."""

    def __init__(self, ticket: Callable[[], httpx.Response] | None = None) -> None:
        self.ticket = ticket
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        if request.method == "GET":
            assert self.ticket is not None
            return self.ticket()
        if request.url.path.endswith("/customers"):
            return httpx.Response(200, json={"success": True, "customer": {"id": 3}})
        if request.url.path.endswith("/tickets"):
            return httpx.Response(201, json={"success": True, "ticket": {"id": NEW}})
        return httpx.Response(201, json={"success": True})


def ticket(human: dict[str, Any] | None) -> Callable[[], httpx.Response]:
    body = {"success": True, "ticket": {"id": STORED, "HumanTicket": human}}
    return lambda: httpx.Response(200, json=body)


def executor(helpwave: HelpWave) -> ActionExecutor:
    http = httpx.Client(transport=httpx.MockTransport(helpwave), timeout=5)
    client = HelpWaveClient(http, base_url="https://shop.helpwave.example", api_key="k")
    return ActionExecutor(awalchat=None, helpwave=client, default_phone_number_id=None)


CREATED = [("POST", "/api/v1/customers"), ("POST", "/api/v1/tickets")]
LOOKED_UP = [("GET", f"/api/v1/tickets/{STORED}")]


def test_with_no_ticket_stored_a_create_creates_one_and_stores_its_id() -> None:
    helpwave = HelpWave()
    planned = ConversationState(helpwave_ticket_planned=True)

    outcome = executor(helpwave).execute(CREATE, EVENT, planned)

    assert helpwave.calls == CREATED
    assert outcome.to_json() == {"result": "done", "ticket_id": NEW, "customer_id": 3}
    assert outcome.state == ConversationState(helpwave_ticket_id=NEW)


@pytest.mark.parametrize(
    ("human", "why"),
    [(OPEN, "open"), (None, "no HumanTicket (created without isOpenedTicket): not closed")],
)
def test_a_stored_ticket_not_closed_is_reused(human: dict[str, Any] | None, why: str) -> None:
    helpwave = HelpWave(ticket(human))
    state = ConversationState(helpwave_ticket_id=STORED, helpwave_ticket_planned=True)

    outcome = executor(helpwave).execute(CREATE, EVENT, state)

    assert helpwave.calls == LOOKED_UP, why
    assert outcome.to_json() == {"result": "already", "ticket_id": STORED}
    assert outcome.state == ConversationState(helpwave_ticket_id=STORED)


@pytest.mark.parametrize(
    ("answer", "because"),
    [
        (ticket(CLOSED), "closed"),
        (ticket({"HumanTicketStatus": "OPEN", "closedAt": "2026-11-27T10:00:00Z"}), "closed"),
        (lambda: httpx.Response(404, json={"error": "Ticket not found"}), "not found"),
    ],
)
def test_a_stored_ticket_closed_or_gone_is_replaced(
    answer: Callable[[], httpx.Response], because: str
) -> None:
    helpwave = HelpWave(answer)
    state = ConversationState(ticket_open=True, helpwave_ticket_id=STORED)

    outcome = executor(helpwave).execute(CREATE, EVENT, state)

    assert helpwave.calls == LOOKED_UP + CREATED
    assert outcome.to_json() == {
        "result": "done",
        "ticket_id": NEW,
        "customer_id": 3,
        "replaced": STORED,
        "replaced_because": because,
    }
    assert outcome.state == ConversationState(ticket_open=True, helpwave_ticket_id=NEW)


def test_a_lookup_that_fails_creates_nothing_and_is_retried() -> None:
    helpwave = HelpWave(lambda: httpx.Response(503, json={"error": "busy"}))

    with pytest.raises(HelpdeskUnavailableError):
        executor(helpwave).execute(CREATE, EVENT, ConversationState(helpwave_ticket_id=STORED))

    assert helpwave.calls == LOOKED_UP


def test_a_comment_goes_to_the_ticket_stored_when_it_is_carried_out() -> None:
    helpwave = HelpWave()
    comment = PlannedAction("r", 1, "helpwave.add_comment", {"text": "hi", "isFromShop": False})

    outcome = executor(helpwave).execute(comment, EVENT, ConversationState(helpwave_ticket_id=NEW))

    assert helpwave.calls == [("POST", f"/api/v1/tickets/{NEW}/comments")]
    assert outcome.to_json() == {"result": "done", "ticket_id": NEW}


@pytest.mark.parametrize(
    ("state", "text", "reason"),
    [
        # The create planned before it failed: planned, but still no id stored.
        (ConversationState(helpwave_ticket_planned=True), "hi", NO_HELPWAVE_TICKET),
        (ConversationState(helpwave_ticket_id=NEW), "  ", EMPTY_COMMENT),
    ],
)
def test_a_comment_without_a_stored_ticket_or_text_is_skipped(
    state: ConversationState, text: str, reason: str
) -> None:
    helpwave = HelpWave()
    comment = PlannedAction("r", 1, "helpwave.add_comment", {"text": text})

    outcome = executor(helpwave).execute(comment, EVENT, state)

    assert helpwave.calls == []
    assert outcome.to_json() == {"result": "skipped", "reason": reason}
    assert outcome.state == state


def test_an_event_without_a_conversation_calls_nothing() -> None:
    helpwave = HelpWave()
    event = Event("message.received", {"event": "message.received", "data": {}})

    outcome = executor(helpwave).execute(CREATE, event, ConversationState())

    assert helpwave.calls == []
    assert outcome.to_json() == {"result": "skipped", "reason": "event has no conversation"}
