"""Shadow rules: never in the live plan, decided in a world of their own (the ruleset with
that one rule live), each with its own view; `shadow` + `after` refused at check."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.engine.support import NOW, decide, make_event, planned, ruleset, statuses
from worker.engine import load_ruleset_from_texts
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.shadow import (
    ShadowVerdict,
    decide_shadows,
    describe_difference,
    differences,
    fire_shadows,
)
from worker.engine.timers import fire
from worker.errors import RulesError

RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, ticket: closed}
    then: [open_ticket]
  - name: close-on-thanks-v2
    shadow: true
    on: message.received
    when: {data.body: {contains: thank}, ticket: open}
    then: [close_ticket]
    stop: true
  - name: note-everything
    shadow: true
    on: message.received
    when: {ticket: closed}
    then: [open_ticket, {helpwave.add_comment: {text: "{{ data.body }}"}}]
  - name: live-close
    on: message.received
    when: {data.body: {contains: bye}}
    then: [close_ticket]
"""
OPEN = ConversationState(ticket_open=True)


def message(body: str) -> Event:
    return make_event(data={"conversation_id": 7, "from": "9665", "body": body})


def test_shadow_rules_are_never_in_the_live_plan_nor_stop_live_rules() -> None:
    rules = ruleset(RULES)
    decision = decide(rules, message("thanks, bye"), OPEN)

    assert rules.shadow_rules == ("close-on-thanks-v2", "note-everything")
    assert planned(decision) == [("close_ticket", None)]  # live-close only
    assert [a.rule for a in decision.actions] == ["live-close"]
    assert statuses(decision)["close-on-thanks-v2"] == "shadow"
    assert statuses(decision)["note-everything"] == "shadow"
    assert decision.state_after.ticket_open is False


def test_a_shadow_rule_needs_no_credentials() -> None:
    rules = ruleset(RULES.replace("then: [close_ticket]\n", "then: []\n"))

    assert rules.uses_awalchat  # the live open/close rules
    disabled = ruleset(
        RULES.replace("    shadow: true\n", "    shadow: true\n    enabled: false\n")
    )
    assert disabled.shadow_rules == ()
    shadow_only = ruleset(
        "version: 1\nrules:\n  - name: s\n    shadow: true\n    on: '*'\n"
        "    then: [{helpwave.add_comment: {text: hi}}]\n"
    )
    assert not shadow_only.uses_helpwave


def test_each_shadow_rule_is_decided_with_the_live_rules_in_its_own_view() -> None:
    rules = ruleset(RULES)
    event = message("thank you")
    live = decide(rules, event, OPEN)
    views = {"close-on-thanks-v2": OPEN, "note-everything": ConversationState()}

    closer, noter = decide_shadows(rules, event, live, views, now=NOW)

    assert (closer.rule, closer.status, closer.acted) == ("close-on-thanks-v2", "matched", True)
    assert [(a.kind, a.skip_reason) for a in closer.actions] == [("close_ticket", None)]
    assert closer.differences == ("shadow_only:close_ticket",)
    assert closer.state_after.ticket_open is False  # its view only
    # the other shadow rule's world sees its own (closed) view, unaffected by the first
    assert [a.kind for a in noter.actions] == ["open_ticket", "helpwave.add_comment"]
    assert noter.actions[1].params["text"] == "thank you"
    assert noter.state_after.ticket_open is True
    assert live.state_after.ticket_open is True  # the live view never changes


def test_a_shadow_rule_sees_what_live_rules_do_in_its_world() -> None:
    rules = ruleset(RULES)
    view = ConversationState()
    # live opens on "help"; the shadow closer's world opens too (the live rule is there)
    event = message("help")
    live = decide(rules, event, view)
    (closer, _) = decide_shadows(
        rules,
        event,
        live,
        {"close-on-thanks-v2": view, "note-everything": view},
        now=NOW,
    )
    assert closer.status == "not_matched"
    assert "thank" in closer.reason
    assert closer.differences == ()
    assert closer.state_after.ticket_open is True


def test_live_acting_where_the_shadow_world_would_not_is_a_difference() -> None:
    rules = ruleset(RULES)
    event = message("bye")
    live = decide(rules, event, OPEN)
    # in this world the ticket is already closed: live-close is skipped there
    views = {"close-on-thanks-v2": ConversationState(), "note-everything": OPEN}

    closer, noter = decide_shadows(rules, event, live, views, now=NOW)

    assert closer.differences == ("live_only:close_ticket",)
    assert closer.actions == ()
    assert noter.differences == ()
    assert [describe_difference(d) for d in closer.differences] == [
        "live did close_ticket where the shadow would not"
    ]


def test_differences_count_kinds_and_ignore_skipped_actions() -> None:
    skipped = (PlannedAction("r", 0, "open_ticket", {}, "the ticket is already open"),)
    opened = (PlannedAction("r", 0, "open_ticket"),)

    assert differences(skipped, opened) == ("shadow_only:open_ticket",)
    assert differences(opened, skipped) == ("live_only:open_ticket",)
    assert differences(opened, opened) == ()
    assert describe_difference("shadow_only:open_ticket") == (
        "shadow would open_ticket where live did not"
    )


def test_a_verdict_round_trips_through_its_stored_form() -> None:
    rules = ruleset(RULES)
    event = message("thanks")
    live = decide(rules, event, OPEN)
    verdict = decide_shadows(rules, event, live, {"close-on-thanks-v2": OPEN}, now=NOW)[0]

    again = ShadowVerdict.from_json(verdict.to_json())

    assert again.to_json() == verdict.to_json()
    assert again.actions == verdict.actions


def test_a_live_wait_comes_due_in_each_world_that_scheduled_it() -> None:
    text = RULES + (
        "  - name: quiet-close\n    on: message.received\n    after: 1h\n    then: [close_ticket]\n"
    )
    rules = ruleset(text)
    event = message("help")
    live = decide(rules, event)
    world = decide_shadows(
        rules,
        event,
        live,
        {"close-on-thanks-v2": ConversationState(), "note-everything": OPEN},
        now=NOW,
    )
    due = NOW + timedelta(hours=1)
    assert live.state_after.waits["quiet-close"].due == due
    later = NOW + timedelta(hours=1, seconds=1)
    live_fire = fire(rules, "7", "quiet-close", due, live.state_after, now=later)
    views = {v.rule: v.state_after for v in world}
    views["note-everything"] = ConversationState()  # this world lost the wait

    closer, noter = fire_shadows(rules, "7", "quiet-close", due, live_fire, views, now=later)

    assert [a.kind for a in live_fire.actions] == ["close_ticket"]
    assert closer.state_after.ticket_open is False
    assert closer.differences == ()
    assert closer.status == "not_for_event"
    assert noter.differences == ("live_only:close_ticket",)


def test_shadow_with_after_is_refused_at_check() -> None:
    text = (
        "version: 1\nrules:\n  - name: s\n    on: message.received\n    after: 1h\n"
        "    shadow: true\n    then: [close_ticket]\n"
    )
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts({"a.yaml": text})

    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (6, 5)
    assert problem.message.startswith("a shadow rule cannot have 'after:'")


def test_shadow_must_be_a_boolean() -> None:
    text = "version: 1\nrules:\n  - name: s\n    on: '*'\n    shadow: yes please\n"
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts({"a.yaml": text})

    assert "'shadow': found 'yes please'; expected true or false" in str(caught.value)
