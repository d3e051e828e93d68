"""Rules with `after:`: what an event schedules, restarts and cancels, and what a wait
coming due does (timers.fire); the WhatsApp session window (rules.md "Time")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.engine.support import NOW, decide, make_event, planned, ruleset, statuses
from worker.engine import Ruleset
from worker.engine.decision import Decision, WaitChange
from worker.engine.model import ConversationState
from worker.engine.timers import TIMER_EVENT, fire

QUIET = """\
version: 1
rules:
  - name: quiet
    description: 24 h without a customer message close the ticket.
    on: message.received
    when: {data.type: text}
    after: 24h
    unless: [conversation.updated]
    then: [close_ticket]
"""
OPEN = ConversationState(ticket_open=True)


def text(body: str = "hi", **data: object) -> dict[str, object]:
    return {"conversation_id": 1042, "from": "966500000001", "type": "text", "body": body, **data}


def quiet_wait(rules: Ruleset, at: datetime = NOW) -> ConversationState:
    return decide(rules, make_event(data=text()), OPEN, now=at).state_after


def test_a_matching_rule_with_after_schedules_its_actions_instead_of_acting() -> None:
    rules = ruleset(QUIET)
    decision = decide(rules, make_event(data=text()), OPEN)
    due = NOW + timedelta(hours=24)

    assert decision.actions == ()
    assert statuses(decision) == {"quiet": "scheduled"}
    assert decision.outcomes[0].reason == f"would schedule close_ticket for {due.isoformat()}"
    assert decision.matched_rules == ()
    assert decision.wait_changes == (WaitChange("quiet", due, f"scheduled for {due.isoformat()}"),)
    wait = decision.state_after.waits["quiet"]
    assert (wait.due, wait.definition, wait.business) == (due, rules.rules[0].definition, False)
    assert (wait.params, dict(wait.event)) == ((), {})  # close_ticket needs neither


def test_the_next_matching_event_restarts_the_wait() -> None:
    rules = ruleset(QUIET)
    later = NOW + timedelta(hours=3)

    decision = decide(rules, make_event(data=text()), quiet_wait(rules), now=later)

    assert decision.state_after.waits["quiet"].due == later + timedelta(hours=24)
    assert [c.due for c in decision.wait_changes] == [later + timedelta(hours=24)]


def test_a_listened_event_that_does_not_match_cancels_the_wait_saying_why() -> None:
    rules = ruleset(QUIET)
    decision = decide(rules, make_event(data=text(type="image")), quiet_wait(rules))

    assert decision.state_after.waits == {}
    assert decision.wait_changes == (
        WaitChange(
            "quiet", None, "cancelled by message.received (data.type equals 'text': saw 'image')"
        ),
    )


def test_an_unless_event_cancels_the_wait() -> None:
    rules = ruleset(QUIET)
    event = make_event("conversation.updated", data={"conversation_id": 1042})
    decision = decide(rules, event, quiet_wait(rules))

    assert decision.state_after.waits == {}
    assert decision.wait_changes == (
        WaitChange("quiet", None, "cancelled by conversation.updated (unless)"),
    )
    assert decision.outcomes[0].reason == (
        "listens for message.received; unless: conversation.updated cancels its wait"
    )


def test_an_event_the_rule_does_not_listen_to_leaves_the_wait() -> None:
    rules = ruleset(QUIET)
    state = quiet_wait(rules)
    decision = decide(rules, make_event("order.paid", data={"conversation_id": 1042}), state)

    assert decision.state_after.waits == state.waits
    assert decision.wait_changes == ()


def test_an_event_without_a_conversation_schedules_nothing() -> None:
    rules = ruleset(QUIET)
    decision = decide(rules, make_event(data={"type": "text"}), ConversationState())

    assert statuses(decision) == {"quiet": "matched"}
    assert "no conversation: nothing scheduled" in decision.outcomes[0].reason
    assert decision.state_after.waits == {}
    assert decision.wait_changes == ()


TWO = """\
version: 1
mode: MODE
rules:
  - name: ack
    on: message.received
    after: 30s
    then: [{helpwave.add_comment: {text: "got {{ data.body }}"}}]
    stop: STOP
  - name: open
    on: message.received
    then: [open_ticket]
"""


@pytest.mark.parametrize(
    ("mode", "stop", "status"),
    [("first_match", "false", "after_first_match"), ("all", "true", "stopped")],
)
def test_a_rule_that_schedules_counts_as_matched_for_first_match_and_stop(
    mode: str, stop: str, status: str
) -> None:
    rules = ruleset(TWO.replace("MODE", mode).replace("STOP", stop))
    decision = decide(rules, make_event(data=text("help")))

    assert statuses(decision) == {"ack": "scheduled", "open": status}
    assert decision.state_after.waits["ack"].params == ({"text": "got help", "isFromShop": False},)


def test_a_wait_keeps_the_event_excerpt_a_helpwave_create_needs() -> None:
    rules = ruleset(
        "version: 1\nrules:\n  - {name: c, on: message.received, after: 1m,"
        " then: [{helpwave.create_ticket: {name: 'WA {{ data.from }}'}}]}\n"
    )
    event = make_event(data=text(), timestamp=NOW)
    wait = decide(rules, event, ConversationState()).state_after.waits["c"]

    assert wait.params == ({"Channel": "Helpwave", "name": "WA 966500000001"},)
    assert dict(wait.event) == {
        "event": "message.received",
        "data": {"conversation_id": 1042, "from": "966500000001"},
        "timestamp": NOW.isoformat(),
    }
    restored = ConversationState.from_json(
        decide(rules, event, ConversationState()).state_after.to_json()
    )
    assert restored.waits["c"] == wait


def test_a_stopped_rule_s_wait_is_cancelled_by_the_event_it_did_not_decide() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: thanks, on: message.received, when: {data.body: thanks}, stop: true,
             then: [close_ticket]}
          - {name: quiet, on: message.received, after: 1h, then: [close_ticket]}
        """
    )
    state = decide(rules, make_event(data=text("hi")), OPEN).state_after
    decision = decide(rules, make_event(data=text("thanks")), state)

    assert statuses(decision) == {"thanks": "matched", "quiet": "stopped"}
    assert decision.wait_changes == (
        WaitChange(
            "quiet",
            None,
            "cancelled by message.received (rule 'thanks' matched earlier and has stop: true)",
        ),
    )


def test_a_cooldown_is_not_looked_at_when_scheduling() -> None:
    rules = ruleset(QUIET.replace("then: [close_ticket]", "then: [close_ticket]\n    cooldown: 2d"))
    state = OPEN.evolve(cooldowns={"quiet": NOW + timedelta(hours=1)})

    assert statuses(decide(rules, make_event(data=text()), state)) == {"quiet": "scheduled"}


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda t: t.replace("  - name: quiet", "  - name: other"), "the rule was removed"),
        (lambda t: t + "    enabled: false\n", "the rule was disabled"),
        (lambda t: t.replace("24h", "12h"), "the rule was changed"),
    ],
)
def test_the_next_event_ends_a_wait_its_new_ruleset_no_longer_has(edit: object, why: str) -> None:
    state = quiet_wait(ruleset(QUIET))
    new = ruleset(edit(QUIET))  # type: ignore[operator]
    event = make_event("order.paid", data={"conversation_id": 1042})

    decision = decide(new, event, state)

    assert decision.wait_changes == (WaitChange("quiet", None, f"cancelled: {why}"),)
    assert decision.state_after.waits == {}


BUSINESS = """\
version: 1
timezone: Europe/Berlin
business_hours: {days: [mon, tue, wed, thu, fri], between: ["09:00", "17:00"]}
rules:
  - name: escalate
    on: message.received
    after: {business: 4h}
    then: [{helpwave.add_comment: {text: still open after 4 business hours}}]
"""


def test_a_business_wait_counts_open_hours_from_when_they_open() -> None:
    tuesday_night = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # 21:00 in Berlin
    decision = decide(ruleset(BUSINESS), make_event(data=text()), now=tuesday_night)
    due = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # Wednesday 13:00 in Berlin

    assert decision.state_after.waits["escalate"].due == due
    assert decision.state_after.waits["escalate"].business
    assert decision.outcomes[0].reason == (
        f"would schedule helpwave.add_comment for {due.isoformat()} (business time)"
    )
    assert decision.wait_changes[0].reason == f"scheduled for {due.isoformat()} (business time)"


def test_business_hours_that_never_open_schedule_nothing_and_say_so() -> None:
    days = ", ".join((NOW.date() + timedelta(days=n)).isoformat() for n in range(-1, 410))
    rules = ruleset(BUSINESS.replace('"17:00"]}', f'"17:00"], holidays: [{days}]}}'))
    state = ConversationState(waits=quiet_wait(ruleset(BUSINESS)).waits)

    decision = decide(rules, make_event(data=text()), state)

    assert statuses(decision) == {"escalate": "scheduled"}
    assert decision.outcomes[0].reason == (
        "matched, but nothing scheduled: its business hours never open"
    )
    assert decision.state_after.waits == {}
    assert [c.reason for c in decision.wait_changes] == [
        "cancelled by message.received (its business hours never open)"
    ]


SESSION = """\
version: 1
rules:
  - {name: inside, on: "*", when: {session: open}}
  - {name: outside, on: "*", when: {session: expired}}
"""


@pytest.mark.parametrize(
    ("event", "last", "inside"),
    [
        ("message.received", None, True),  # the event itself counts
        ("conversation.updated", None, False),  # a conversation never seen
        ("conversation.updated", NOW - timedelta(hours=23, minutes=59), True),
        ("conversation.updated", NOW - timedelta(hours=24), False),
        ("message.received", NOW - timedelta(days=3), True),
    ],
)
def test_the_session_is_open_for_24_hours_after_the_last_customer_message(
    event: str, last: datetime | None, inside: bool
) -> None:
    state = ConversationState(last_customer_message=last)
    decision = decide(ruleset(SESSION), make_event(event), state)

    assert decision.matched_rules == (("inside",) if inside else ("outside",))
    failed = next(o for o in decision.outcomes if o.status == "not_matched")
    assert failed.reason == f"session is {'expired' if inside else 'open'}: saw " + (
        "'open'" if inside else "'expired'"
    )


def test_a_customer_message_sets_the_last_customer_message() -> None:
    rules = ruleset(SESSION)

    first = decide(rules, make_event(), now=NOW)
    other = decide(rules, make_event("conversation.updated"), first.state_after, now=NOW)

    assert first.state_after.last_customer_message == NOW
    assert other.state_after.last_customer_message == NOW
    no_conversation = decide(rules, make_event(data={}), now=NOW)
    assert no_conversation.state_after.last_customer_message is None


def fired(rules: Ruleset, state: ConversationState, due: datetime, now: datetime) -> Decision:
    return fire(rules, "1042", "quiet", due, state, now=now)


def test_a_wait_coming_due_carries_its_actions_out_against_the_state_then() -> None:
    rules = ruleset(QUIET)
    state = quiet_wait(rules)
    due = state.waits["quiet"].due

    decision = fired(rules, state, due, due + timedelta(milliseconds=300))

    assert (decision.event, decision.conversation_id) == (TIMER_EVENT, "1042")
    assert statuses(decision) == {"quiet": "due"}
    assert decision.outcomes[0].reason == f"due {due.isoformat()}, carried out"
    assert planned(decision) == [("close_ticket", None)]
    assert decision.state_after.waits == {}
    assert decision.state_after.ticket_open is False
    closed = fired(rules, state.evolve(ticket_open=False), due, due)
    assert planned(closed) == [("close_ticket", "ticket already closed")]


def test_a_wait_restarted_or_cancelled_since_is_superseded() -> None:
    rules = ruleset(QUIET)
    state = quiet_wait(rules)

    decision = fired(rules, state, NOW + timedelta(hours=1), NOW + timedelta(hours=1))

    assert statuses(decision) == {"quiet": "superseded"}
    assert decision.actions == ()
    assert decision.state_after == state


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (lambda t: t.replace("24 h without", "A day without"), "due"),  # description only
        (lambda t: t.replace("{data.type: text}", "{data.type: image}"), "cancelled"),
        (lambda t: t + "    enabled: false\n", "cancelled"),
    ],
)
def test_a_wait_whose_rule_changed_is_cancelled_when_due(edit: object, status: str) -> None:
    state = quiet_wait(ruleset(QUIET))
    due = state.waits["quiet"].due

    decision = fired(ruleset(edit(QUIET)), state, due, due)  # type: ignore[operator]

    assert statuses(decision) == {"quiet": status}
    assert decision.state_after.waits == {}
    if status == "cancelled":
        assert decision.actions == ()
        assert decision.wait_changes[0].reason.startswith("cancelled: the rule was")


def test_the_cooldown_is_checked_and_started_when_the_wait_comes_due() -> None:
    rules = ruleset(QUIET + "    cooldown: 2d\n")
    state = quiet_wait(rules)
    due = state.waits["quiet"].due

    done = fired(rules, state, due, due)
    cooling = fired(rules, state.evolve(cooldowns={"quiet": due + timedelta(hours=1)}), due, due)

    assert done.state_after.cooldowns == {"quiet": due + timedelta(days=2)}
    assert statuses(cooling) == {"quiet": "cooling_down"}
    assert cooling.actions == ()
    assert cooling.state_after.waits == {}
