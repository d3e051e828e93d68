"""The stored form of a decision: what `evaluate` decided is stored compact (no rule
outcomes, explained again on read); other decisions keep the listening rules' outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.decision import Decision, OutcomesNotStored, RuleOutcome
from worker.engine.model import ConversationState, Event
from worker.storage.records import compact, is_quiet, read_decision, stored_form, stored_texts

RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}}
    then: [open_ticket]
  - name: note
    on: message.received
    then: [{helpwave.add_comment: {text: "said {{ data.body }}"}}]
  - name: close-on-update
    on: conversation.updated
    then: [close_ticket]
"""
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = Event(
    "message.received",
    {"event": "message.received", "data": {"conversation_id": 7, "body": "thanks"}},
    None,
    "7",
)


def decided() -> Decision:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    return evaluate(ruleset, EVENT, ConversationState(), now=NOW)


def test_a_decision_evaluate_made_is_stored_without_outcomes_and_reads_back() -> None:
    decision = decided()
    form = stored_form(decision)
    assert "outcomes" not in form
    assert form["decided_at"] == NOW.timestamp()
    assert form["matched"] == ["note"]
    assert form["actions"] == [
        ["note", 0, "helpwave.add_comment", {"text": "said thanks", "isFromShop": False},
         "no HelpWave ticket for this conversation"],
    ]  # fmt: skip
    again = read_decision(json.loads(compact(form)))
    assert again.actions == decision.actions
    assert again.matched_rules == decision.matched_rules
    assert again.state_after == decision.state_after
    assert again.decided_at == NOW
    with pytest.raises(OutcomesNotStored):
        again.outcomes  # noqa: B018


def test_the_stored_texts_are_the_stored_form_and_the_state_after_encoded_once() -> None:
    decision = decided()
    text, after = stored_texts(decision)
    assert json.loads(text) == stored_form(decision)
    assert json.loads(after) == decision.state_after.to_json()


def test_a_decision_given_its_outcomes_keeps_those_of_the_rules_listening() -> None:
    decision = decided()
    given = Decision(
        decision.ruleset_version,
        decision.event,
        decision.conversation_id,
        decision.outcomes,
        decision.actions,
        decision.state_after,
    )
    form = stored_form(given)
    assert [o["rule"] for o in form["outcomes"]] == ["open-on-help", "note"]
    assert form["outcomes"][0]["failure"]["seen"] == "thanks"
    assert json.loads(stored_texts(given)[0]) == form
    assert read_decision(form).actions == given.actions


def test_quiet_means_no_rule_listened() -> None:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    status = Event("message.status.updated", {"event": "message.status.updated"}, None, None)
    quiet = evaluate(ruleset, status, ConversationState(), now=NOW)
    assert is_quiet(quiet, ruleset)
    assert not is_quiet(decided(), ruleset)
    read_back = read_decision(stored_form(quiet))
    assert is_quiet(read_back, ruleset)
    other = load_ruleset_from_texts({"rules.yaml": RULES + "# another version\n"})
    assert not is_quiet(read_back, other)  # cannot tell: the record keeps its body
    given = Decision(
        "v", "x", None, (RuleOutcome("r", "not_for_event", ""),), (), ConversationState()
    )
    assert is_quiet(given, other)
