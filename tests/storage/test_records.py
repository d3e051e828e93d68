"""The stored form of a decision: only the rules that listen to the event are explained."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.decision import Decision
from worker.engine.model import ConversationState, Event
from worker.storage.records import stored_form

RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}}
    then: [open_ticket]
  - name: close-on-update
    on: conversation.updated
    then: [close_ticket]
"""
EVENT = Event(
    "message.received",
    {"event": "message.received", "data": {"conversation_id": 7, "body": "thanks"}},
    None,
    "7",
)


def test_the_stored_form_leaves_out_rules_not_listening_and_reads_back() -> None:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    decision = evaluate(ruleset, EVENT, ConversationState(), now=datetime(2026, 1, 1, tzinfo=UTC))
    form = stored_form(decision)
    assert [o["rule"] for o in form["outcomes"]] == ["open-on-help"]
    assert form["outcomes"][0]["failure"]["seen"] == "thanks"
    full = decision.to_json()
    assert [o["rule"] for o in full["outcomes"]] == ["open-on-help", "close-on-update"]
    assert {k: v for k, v in full.items() if k != "outcomes"} == {
        k: v for k, v in form.items() if k != "outcomes"
    }
    assert Decision.from_json(form).actions == decision.actions
