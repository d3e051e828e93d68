"""evaluate: outcomes for every rule, modes, stop, cooldowns, projected state, placeholders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.support import (
    EXAMPLE_RULES,
    FIXTURES,
    NOW,
    decide,
    make_event,
    planned,
    reference_decision,
    ruleset,
    statuses,
    webhook,
)
from worker.engine import evaluate, load_ruleset, load_ruleset_from_texts
from worker.engine.decision import ConditionFailure, Decision
from worker.engine.model import ConversationState, Event

OPEN = ConversationState(ticket_open=True)
HELPWAVE_STORED = ConversationState(helpwave_ticket_id="987654321012345678")


def test_the_example_rules_open_a_ticket_and_mirror_a_help_request() -> None:
    decision = decide(load_ruleset(EXAMPLE_RULES), webhook("message_received_help"))

    assert planned(decision) == [
        ("helpwave.create_ticket", None),
        ("helpwave.add_comment", None),
        ("open_ticket", None),
    ]
    create, comment, _ = decision.actions
    assert create.params["name"] == "WhatsApp 966500000001"
    assert comment.params == {
        "text": "I need help, my order is broken",
        "isFromShop": False,
        "Channel": "Helpwave",
    }
    assert decision.conversation_id == "1042"
    after = decision.state_after
    assert after.evolve(waits={}) == ConversationState(
        ticket_open=True, helpwave_ticket_planned=True, last_customer_message=NOW
    )
    assert sorted(after.waits) == [  # rules/30-time.yaml
        "close-after-a-quiet-day",
        "escalate-after-4-business-hours",
        "one-note-per-burst",
    ]


def test_the_example_rules_close_on_thanks_and_still_mirror_the_message() -> None:
    decision = decide(load_ruleset(EXAMPLE_RULES), webhook("message_received_thanks"), OPEN)

    assert planned(decision) == [
        ("helpwave.create_ticket", None),
        ("helpwave.add_comment", None),
        ("close_ticket", None),
    ]
    assert statuses(decision)["open-on-customer-message"] == "stopped"
    assert decision.state_after.ticket_open is False


def test_the_example_rules_never_open_a_ticket_for_a_thank_you() -> None:
    decision = decide(load_ruleset(EXAMPLE_RULES), webhook("message_received_thanks"))

    assert ("open_ticket", None) not in planned(decision)


def test_the_example_rules_create_the_helpwave_ticket_with_the_conversation() -> None:
    decision = decide(load_ruleset(EXAMPLE_RULES), webhook("conversation_created"))

    assert planned(decision) == [("helpwave.create_ticket", None)]
    assert decision.actions[0].params["name"] == "WhatsApp 966500000001"


def test_events_no_rule_listens_to_plan_nothing() -> None:
    rules = load_ruleset(EXAMPLE_RULES)

    for name in ("message_status_updated", "conversation_updated", "order_updated"):
        decision = decide(rules, webhook(name))
        assert decision.actions == ()
        assert set(statuses(decision).values()) == {"not_for_event"}


def test_every_rule_gets_an_outcome_in_order_with_its_file_and_line() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - name: a
            on: order.updated
          - name: b
            on: message.received
            enabled: false
          - name: c
            on: message.received
            when: {data.type: image}
          - name: d
            on: "*"
        """
    )

    decision = decide(rules, make_event())

    assert [(o.rule, o.status, o.line) for o in decision.outcomes] == [
        ("a", "not_for_event", 3),
        ("b", "disabled", 5),
        ("c", "not_matched", 8),
        ("d", "matched", 11),
    ]
    assert all(o.file == "rules.yaml" for o in decision.outcomes)
    not_matched = decision.outcomes[2]
    assert not_matched.failure == ConditionFailure("data.type", "equals 'image'", "text")
    assert not_matched.reason == "data.type equals 'image': saw 'text'"
    assert decision.matched_rules == ("d",)
    assert decision.ruleset_version == rules.version


def test_mode_all_lets_every_matching_rule_act() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: a, on: message.received, then: [open_ticket]}
          - {name: b, on: message.received, then: [{helpwave.create_ticket: {}}]}
        """
    )

    assert statuses(decide(rules, make_event())) == {"a": "matched", "b": "matched"}


def test_first_match_lets_only_the_first_matching_rule_of_its_own_file_act() -> None:
    rules = load_ruleset_from_texts(
        {
            "1.yaml": """\
version: 1
mode: first_match
rules:
  - {name: a, on: message.received, when: {data.type: image}}
  - {name: b, on: message.received}
  - {name: c, on: message.received}
  - {name: d, on: order.updated}
""",
            "2.yaml": """\
version: 1
rules:
  - {name: e, on: message.received}
""",
        }
    )

    decision = decide(rules, make_event())

    assert statuses(decision) == {
        "a": "not_matched",
        "b": "matched",
        "c": "after_first_match",
        "d": "not_for_event",
        "e": "matched",
    }
    assert decision.outcomes[2].reason == "first_match: rule 'b' of this file matched first"


def test_stop_keeps_every_later_rule_from_acting_in_every_file() -> None:
    rules = load_ruleset_from_texts(
        {
            "1.yaml": "version: 1\nrules:\n"
            "  - {name: a, on: message.received, stop: true, then: [close_ticket]}\n"
            "  - {name: b, on: message.received, then: [open_ticket]}\n",
            "2.yaml": "version: 1\nrules:\n"
            "  - {name: c, on: message.received, then: [open_ticket]}\n"
            "  - {name: d, on: order.updated}\n",
        }
    )

    decision = decide(rules, make_event(), OPEN)

    assert statuses(decision) == {
        "a": "matched",
        "b": "stopped",
        "c": "stopped",
        "d": "not_for_event",
    }
    assert planned(decision) == [("close_ticket", None)]


def test_a_stop_rule_that_does_not_match_stops_nothing() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: a, on: message.received, when: {ticket: open}, stop: true}
          - {name: b, on: message.received}
        """
    )

    assert statuses(decide(rules, make_event())) == {"a": "not_matched", "b": "matched"}


COOLDOWN = """\
version: 1
rules:
  - name: greet
    on: message.received
    cooldown: 10m
    then: [open_ticket]
"""


def test_a_matched_rule_starts_its_cooldown() -> None:
    decision = decide(ruleset(COOLDOWN), make_event())

    assert decision.state_after.cooldowns == {"greet": NOW + timedelta(minutes=10)}


def test_a_rule_cooling_down_does_not_act_nor_restart_its_cooldown() -> None:
    until = NOW + timedelta(minutes=3)
    state = ConversationState(cooldowns={"greet": until})

    decision = decide(ruleset(COOLDOWN), make_event(), state)

    assert statuses(decision) == {"greet": "cooling_down"}
    assert (
        decision.outcomes[0].reason == f"matched, but its cooldown runs until {until.isoformat()}"
    )
    assert decision.actions == ()
    assert decision.state_after.cooldowns == {"greet": until}


def test_an_expired_cooldown_lets_the_rule_act_and_is_pruned() -> None:
    state = ConversationState(cooldowns={"greet": NOW, "gone": NOW - timedelta(days=1)})

    decision = decide(ruleset(COOLDOWN), make_event(), state)

    assert statuses(decision) == {"greet": "matched"}
    assert decision.state_after.cooldowns == {"greet": NOW + timedelta(minutes=10)}


def test_a_cooldown_does_not_start_when_the_rule_does_not_match() -> None:
    rules = ruleset(COOLDOWN.replace("    then:", "    when: {ticket: open}\n    then:"))

    assert decide(rules, make_event()).state_after.cooldowns == {}


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive_now = datetime(2024, 5, 14, 12, 0)
    state = ConversationState(cooldowns={"greet": datetime(2024, 5, 14, 12, 5)})

    decision = decide(ruleset(COOLDOWN), make_event(), state, now=naive_now)

    assert statuses(decision) == {"greet": "cooling_down"}


TWO_OPENS = """\
version: 1
rules:
  - {name: a, on: message.received, then: [open_ticket]}
  - {name: b, on: message.received, then: [open_ticket, close_ticket, close_ticket]}
"""


def test_actions_follow_a_projected_ticket_state_through_the_decision() -> None:
    decision = decide(ruleset(TWO_OPENS), make_event())

    assert planned(decision) == [
        ("open_ticket", None),
        ("open_ticket", "ticket already open"),
        ("close_ticket", None),
        ("close_ticket", "ticket already closed"),
    ]
    assert [a.key for a in decision.actions] == ["a#0", "b#0", "b#1", "b#2"]
    assert decision.state_after.ticket_open is False


def test_conditions_see_the_state_as_the_event_found_it() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: open, on: message.received, when: {ticket: closed}, then: [open_ticket]}
          - {name: while-closed, on: message.received, when: {ticket: closed}}
        """
    )

    assert statuses(decide(rules, make_event())) == {"open": "matched", "while-closed": "matched"}


HELPWAVE = """\
version: 1
rules:
  - name: mirror
    on: message.received
    then:
      - helpwave.create_ticket: {name: "WhatsApp {{ data.from }}"}
      - helpwave.add_comment: {text: "{{ data.body }}"}
      - helpwave.create_ticket: {}
"""


def test_a_helpwave_create_is_never_skipped_when_decided() -> None:
    # Whether HelpWave still has a ticket open is looked up when the create is carried out
    # (reused while open): the engine plans every create, a second one in a decision too.
    decision = decide(ruleset(HELPWAVE), make_event(data={"conversation_id": 7, "body": "hi"}))

    assert planned(decision) == [
        ("helpwave.create_ticket", None),
        ("helpwave.add_comment", None),
        ("helpwave.create_ticket", None),
    ]
    assert decision.state_after.helpwave_ticket_planned is True
    assert decision.state_after.helpwave_ticket_id is None


def test_a_stored_helpwave_ticket_is_left_for_the_executor_to_look_up() -> None:
    decision = decide(
        ruleset(HELPWAVE), make_event(data={"conversation_id": 7, "body": "hi"}), HELPWAVE_STORED
    )

    assert planned(decision)[0] == ("helpwave.create_ticket", None)
    assert decision.state_after.helpwave_ticket_id == "987654321012345678"  # only stored later
    assert decision.state_after.helpwave_ticket_planned is True


def test_a_comment_needs_a_helpwave_ticket_stored_or_planned() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: c, on: message.received, then: [{helpwave.add_comment: {text: hi}}]}
        """
    )

    assert planned(decide(rules, make_event())) == [
        ("helpwave.add_comment", "no HelpWave ticket for this conversation")
    ]
    for state in (HELPWAVE_STORED, ConversationState(helpwave_ticket_planned=True)):
        decision = decide(rules, make_event(), state)
        assert planned(decision) == [("helpwave.add_comment", None)]
        assert decision.state_after == state.evolve(last_customer_message=NOW)


def test_a_comment_whose_text_comes_out_empty_is_skipped() -> None:
    decision = decide(ruleset(HELPWAVE), make_event(data={"conversation_id": 7}), HELPWAVE_STORED)

    assert planned(decision)[1] == ("helpwave.add_comment", "comment text is empty")


def test_a_state_stored_by_an_older_version_still_loads() -> None:
    # Older versions projected `helpwave_ticket_open`; open with no id meant a create decided
    # whose id was not stored yet.
    created = {"ticket_open": True, "helpwave_ticket_id": "9", "helpwave_ticket_open": True}
    pending = {"ticket_open": False, "helpwave_ticket_id": None, "helpwave_ticket_open": True}

    assert ConversationState.from_json(created) == ConversationState(True, "9", False)
    assert ConversationState.from_json(pending) == ConversationState(False, None, True)
    assert ConversationState.from_json({}) == ConversationState()
    state = ConversationState(True, "9", True, {"r": NOW})
    assert ConversationState.from_json(state.to_json()) == state


def test_actions_of_an_event_without_a_conversation_are_skipped() -> None:
    decision = decide(ruleset(TWO_OPENS), make_event(data={"type": "text"}))

    assert {skip for _, skip in planned(decision)} == {"event has no conversation"}
    assert decision.conversation_id is None
    assert decision.state_after.ticket_open is False


def test_placeholders_are_filled_from_the_event_in_nested_values() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - name: r
            on: "*"
            then:
              - helpwave.create_ticket:
                  name: "{{data.from}} / {{ data.missing }} / {{ data.n }} / {{ data.ok }}"
                  lastMessage: "{{ data.items }}{{ data.nothing }}"
                  tags: [whatsapp, "{{ event }}"]
                  isOpenedTicket: true
                  unReadChatCount: 1
        """
    )
    data = {"conversation_id": 1, "from": "966", "n": 4.5, "ok": True, "items": [1, {"a": "b"}]}
    data["nothing"] = None

    (action,) = decide(rules, make_event("order.updated", data)).actions

    assert action.params == {
        "Channel": "Helpwave",
        "name": "966 /  / 4.5 / true",
        "lastMessage": '[1,{"a":"b"}]',
        "tags": ["whatsapp", "order.updated"],
        "isOpenedTicket": True,
        "unReadChatCount": 1,
    }


def test_placeholders_are_substituted_never_evaluated() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: r, on: "*", then: [{helpwave.add_comment: {text: "said: {{ data.body }}"}}]}
        """
    )
    body = "{{ data.secret }} __import__('os')"
    event = make_event(data={"conversation_id": 1, "body": body, "secret": "s3cret"})

    (action,) = decide(rules, event, HELPWAVE_STORED).actions

    assert action.params["text"] == f"said: {body}"


def test_time_conditions_use_the_event_timestamp_before_now() -> None:
    rules = ruleset(
        """\
        version: 1
        rules:
          - {name: night, on: "*", when: {time: {between: ["22:00", "06:00"]}}}
        """
    )
    at_night = datetime(2024, 5, 14, 23, 0, tzinfo=UTC)

    assert statuses(decide(rules, make_event(timestamp=at_night))) == {"night": "matched"}
    assert statuses(decide(rules, make_event())) == {"night": "not_matched"}
    assert statuses(decide(rules, make_event(), now=at_night)) == {"night": "matched"}


def test_a_decision_survives_a_json_round_trip() -> None:
    decision = decide(load_ruleset(EXAMPLE_RULES), webhook("message_received_help"))

    assert Decision.from_json(decision.to_json()) == decision


def test_evaluate_is_deterministic() -> None:
    rules = load_ruleset(EXAMPLE_RULES)
    event = webhook("message_received_thanks")

    assert decide(rules, event, OPEN) == decide(rules, event, OPEN)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["help", "thanks, resolved!", "I need help, my order is broken", "text"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
FIELDS = st.sampled_from(
    ["conversation_id", "body", "from", "type", "n", "tags", "deleted", "items", "phone_number"]
)
DATA = st.dictionaries(FIELDS, JSON_VALUES, max_size=8) | JSON_VALUES
EVENT_NAMES = st.sampled_from(
    ["message.received", "conversation.created", "conversation.updated", "order.updated"]
) | st.text(max_size=20)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
RULESETS = [load_ruleset(EXAMPLE_RULES), load_ruleset(FIXTURES / "rules" / "good")]
RULE_NAMES = sorted({r.name for rules in RULESETS for r in rules.rules})


@settings(max_examples=300, deadline=None)
@given(
    name=EVENT_NAMES,
    data=DATA,
    extra=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
    timestamp=st.none() | st.datetimes(timezones=st.none() | st.just(UTC)),
    conversation=st.none() | st.text(max_size=10),
    state=st.builds(
        ConversationState,
        ticket_open=st.booleans(),
        helpwave_ticket_id=st.none() | st.text(max_size=20),
        helpwave_ticket_planned=st.booleans(),
        cooldowns=st.dictionaries(st.sampled_from(RULE_NAMES), MOMENTS, max_size=3),
    ),
    now=MOMENTS,
)
def test_evaluate_never_raises_on_any_json_event(
    name: str,
    data: Any,
    extra: dict[str, Any],
    timestamp: datetime | None,
    conversation: str | None,
    state: ConversationState,
    now: datetime,
) -> None:
    payload = {**extra, "event": name, "data": data}
    event = Event(name, payload, timestamp, conversation)

    for rules in RULESETS:
        decision = evaluate(rules, event, state, now=now)
        assert len(decision.outcomes) == len(rules.rules)
        # The compiled path decides exactly what the explaining checks, run eagerly, decide.
        assert decision == reference_decision(rules, event, state, now=now)
        assert decision.matched_rules == tuple(
            o.rule for o in decision.outcomes if o.status == "matched"
        )
