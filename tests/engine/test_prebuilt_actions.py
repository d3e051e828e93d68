"""Deciders plan an action whose params have no placeholder as one object per skip reason,
built with the ruleset; and leave out a blank-text skip the rule alone decides."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.planning import (
    EMPTY_COMMENT,
    NO_CONVERSATION,
    NO_HELPWAVE_TICKET,
    TICKET_ALREADY_OPEN,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RULES = """\
version: 1
rules:
  - name: fixed
    on: message.received
    then:
      - open_ticket
      - helpwave.add_comment: {text: "hello", isFromShop: true}
  - name: templated
    on: message.received
    then:
      - helpwave.add_comment: {text: "said {{ data.body }}"}
      - helpwave.add_comment: {text: "{{ data.body }}"}
"""


def _decide(body: str, state: ConversationState, conversation: str | None = "7") -> list[Any]:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    payload = {"event": "message.received", "data": {"conversation_id": 7, "body": body}}
    event = Event("message.received", payload, None, conversation)
    return list(evaluate(ruleset, event, state, now=NOW).actions)


def test_fixed_actions_are_planned_with_their_skip_reasons() -> None:
    with_ticket = ConversationState(helpwave_ticket_id="hw-1")
    assert _decide("hi", with_ticket)[:2] == [
        PlannedAction("fixed", 0, "open_ticket", {}, None),
        PlannedAction("fixed", 1, "helpwave.add_comment", {"text": "hello", "isFromShop": True}),
    ]
    open_now = ConversationState(ticket_open=True)
    assert [a.skip_reason for a in _decide("hi", open_now)[:2]] == [
        TICKET_ALREADY_OPEN,
        NO_HELPWAVE_TICKET,
    ]
    assert {a.skip_reason for a in _decide("hi", open_now, None)} == {NO_CONVERSATION}


def test_a_fixed_action_is_one_object_for_every_decision_that_plans_it() -> None:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    event = Event("message.received", {"data": {"body": "x"}}, None, "7")
    first = evaluate(ruleset, event, ConversationState(), now=NOW).actions
    again = evaluate(ruleset, event, ConversationState(), now=NOW).actions
    assert first[0] is again[0]
    assert first[1] is again[1]
    assert first[2] is not again[2]  # params with a placeholder: made per event
    assert first[2].params == {"text": "said x", "isFromShop": False}


def test_a_templated_text_is_blank_only_when_the_rule_cannot_tell() -> None:
    with_ticket = ConversationState(helpwave_ticket_id="hw-1")
    said, bare = _decide("   ", with_ticket)[2:]
    assert (said.params["text"], said.skip_reason) == ("said    ", None)
    assert (bare.params["text"], bare.skip_reason) == ("   ", EMPTY_COMMENT)
