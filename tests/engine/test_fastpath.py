"""The compiled deciders: same decisions as the explaining checks, and no rule text as code."""

from __future__ import annotations

import io
import pickle
import re
import tokenize
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.support import NOW, decide, make_event, reference_decision, ruleset
from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.checks import Context
from worker.engine.decision import (
    ConditionFailure,
    Decision,
    RuleOutcome,
    condition_failure,
    rule_outcome,
)
from worker.engine.fastpath import RuleEntry, compile_decider, compile_predicate, generate
from worker.engine.model import (
    ConversationState,
    Event,
    PlannedAction,
    Wait,
    conversation_state,
    planned_action,
)
from worker.engine.multi_match import PatternSet
from worker.engine.operators import OPERATORS, compile_pattern

FILES = {
    "10-all.yaml": """\
version: 1
timezone: Asia/Riyadh
rules:
  - name: greet
    on: [message.received, conversation.updated]
    when:
      data.type: {in: [text, 1, null]}
      data.body: {contains_any: [help, "42"], not_contains: spam}
    then:
      - helpwave.create_ticket:
          name: "WhatsApp {{ data.from }} / {{data.n}}"
          lastMessage: "{{ data.body }}"
          tags: [vip, "{{ data.type }}"]
          isOpenedTicket: true
      - helpwave.add_comment: {text: "{{ data.body }}"}
    cooldown: 10m
  - name: numbers
    on: "*"
    when:
      any:
        - data.n: {gt: 5, lte: 100}
        - data.n: 3
        - data.n: {equals: [1, 2]}
        - data.flag: true
        - data.tags: {contains: vip}
    then: [open_ticket]
  - name: nested
    on: message.received
    when:
      not:
        any:
          - data.body: {matches: '(?i)\\bspam\\b'}
          - data.from: {starts_with: "+1", ends_with: "9"}
          - all: [{ticket: open}, {data.x: {exists: false}}]
    then: [close_ticket, {helpwave.add_comment: {text: "x {{ data.items.0.sku }}"}}]
  - name: night
    on: "*"
    when: {time: {between: ["22:00", "06:00"]}, data.body: {not_equals: ""}}
    then: [{helpwave.add_comment: {text: "{{ data.body }}"}}]
    stop: true
  - name: after-stop
    on: "*"
    then: [open_ticket]
""",
    "20-first.yaml": """\
version: 1
mode: first_match
rules:
  - name: first-a
    on: message.received
    when: {data.body: {matches: 'a+'}, data.n: {not_in: [7, seven]}}
    then: [open_ticket]
    cooldown: 1h
  - name: first-b
    on: message.received
    when: {data.body: {matches: 'b'}}
    then: [close_ticket]
  - name: first-c
    on: message.received
    then: []
""",
    "30-time.yaml": """\
version: 1
mode: first_match
timezone: Europe/Berlin
business_hours:
  days: [mon, tue, wed, thu, fri]
  between: ["22:00", "06:00:30"]
  holidays: [2024-05-15]
rules:
  - name: quiet
    on: message.received
    when: {data.type: text}
    after: 24h
    unless: [conversation.updated]
    then: [close_ticket]
  - name: burst
    on: [message.received, conversation.updated]
    when: {session: open}
    after: 30s
    then: [{helpwave.add_comment: {text: "got {{ data.body }}"}}, helpwave.create_ticket]
    cooldown: 5m
  - name: escalate
    on: "*"
    when: {any: [{session: expired}, {data.n: {gt: 5}}]}
    after: {business: 4h}
    unless: [other]
    then: [{helpwave.add_comment: {text: still open}}]
    stop: true
  - name: lapsed
    on: message.received
    when: {not: {session: open}}
    then: [open_ticket]
""",
}
RULES = load_ruleset_from_texts(FILES)
NAMES = [r.name for r in RULES.rules]
DEFINITIONS = {r.name: r.definition for r in RULES.rules}


@st.composite
def waits(draw: st.DrawFn) -> dict[str, Wait]:
    """Pending waits of rules with after:, of rules without it, of a rule since removed;
    most with the rule's definition, some with a stale one."""
    names = draw(st.lists(st.sampled_from([*NAMES, "gone"]), max_size=4, unique=True))
    return {
        name: Wait(
            name,
            draw(MOMENTS),
            draw(st.sampled_from([DEFINITIONS.get(name, "x"), "stale"])),
            draw(st.booleans()),
        )
        for name in names
    }


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-10, 200)
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["help", "SPAM", "aab", "b", "", "42", "+1 555 9", "text", "\ud800", "١٢"])
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
DATA = st.dictionaries(
    st.sampled_from(["body", "type", "n", "from", "flag", "tags", "x", "items"]), VALUES
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(["message.received", "conversation.updated", "other", "x"]),
    data=DATA | VALUES,
    timestamp=st.none() | MOMENTS,
    conversation=st.none() | st.just("c1"),
    state=st.builds(
        ConversationState,
        ticket_open=st.booleans(),
        helpwave_ticket_id=st.none() | st.just("hw1"),
        helpwave_ticket_planned=st.booleans(),
        cooldowns=st.dictionaries(st.sampled_from(NAMES), MOMENTS, max_size=3),
        waits=waits(),
        last_customer_message=st.none() | MOMENTS,
    ),
    now=MOMENTS,
)
def test_compiled_decisions_equal_the_explaining_checks_run_eagerly(
    name: str,
    data: Any,
    timestamp: datetime | None,
    conversation: str | None,
    state: ConversationState,
    now: datetime,
) -> None:
    event = Event(name, {"event": name, "data": data}, timestamp, conversation)
    decision = evaluate(RULES, event, state, now=now)
    expected = reference_decision(RULES, event, state, now=now)
    assert decision.actions == expected.actions
    assert decision.state_after == expected.state_after
    assert decision.matched_rules == expected.matched_rules
    assert decision.outcomes == expected.outcomes
    assert decision.wait_changes == expected.wait_changes
    assert decision.to_json() == expected.to_json()


@pytest.mark.parametrize("body", ["help", "spam", "aab", "b", "", None, ["vip"]])
@pytest.mark.parametrize("ticket_open", [True, False])
def test_the_opaque_fallback_decides_the_same(body: Any, ticket_open: bool) -> None:
    plan = RULES.plan
    _, candidates = plan.for_event("message.received")
    entries = [plan.entries[i] for i in candidates]
    source, _ = generate(entries, opaque=True)
    assert "H(" in source
    fast, opaque = compile_decider(entries), compile_decider(entries, opaque=True)
    payload = {"event": "message.received", "data": {"body": body, "n": 6, "tags": body}}
    cool: dict[str, datetime] = {}
    args = (payload, ticket_open, NOW, cool, False, ticket_open, None, False, False)
    assert fast(*args) == opaque(*args)


OUR_NAMES = frozenset(
    {"build", "decide", "payload", "t", "moment", "cool", "nc", "to", "hid", "hp", "so", "names"}
    | {"sch"}
    | {"acts", "started", "p", "s", "a", "d", "x", "out", "append", "get", "copy", "strip"}
    | {"casefold", "startswith", "endswith", "type", "len", "dict", "str", "not", "and", "or"}
    | {"is", "in", "if", "elif", "else", "def", "return", "True", "False", "None", "__dict__"}
    | {"M", "R", "F", "N", "E", "W", "H", "U", "S", "B", "T", "NEW", "PA"}
)
OUR_STRINGS = frozenset({"'rule'", "'index'", "'kind'", "'params'", "'skip_reason'"})


def assert_only_our_own_tokens(source: str) -> None:
    """Every name in `source` is one the generator makes, every string literal its own."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            assert token.string in OUR_NAMES or re.fullmatch(r"[cvfnbmg]\d+", token.string)
        elif token.type == tokenize.STRING:
            assert token.string in OUR_STRINGS
        elif token.type == tokenize.NUMBER:
            assert token.string.isdigit()


PATTERNS = [
    r"(?i)\bhelp\b",
    r"\bhelp\b",
    "^$",
    "",
    "a$",
    "^a",
    "a|b",
    r"\d+",
    r"(?s)x.y",
    r"\pL\pN",
    r"[[:upper:]]{2}",
    "é",
    "(?m)^b$",
    r"\Aab\z",
]
TEXTS = st.text(max_size=30) | st.sampled_from(
    ["", "help", "HELP me", "a", "b", "ab", "x\ny", "é", "A1", "\ud800x", "a\nb\n", "ab"]
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS | st.integers() | st.none())
def test_a_pattern_set_finds_what_each_matches_test_finds(text: Any) -> None:
    patterns = [compile_pattern(p) for p in PATTERNS]
    together, one_by_one = PatternSet(patterns), PatternSet(patterns, one_by_one=True)
    assert together.uses_set
    assert not one_by_one.uses_set
    expected = [i for i, p in enumerate(PATTERNS) if OPERATORS["matches"](p)(text)]
    assert sorted(together(text)) == expected
    assert sorted(one_by_one(text)) == expected


HOSTILE = [
    "__import__('os').system('echo owned')",
    "'; import os; '",
    '"""\nraise SystemExit\n"""',
    "\\' + str(1/0) + \\'",
    "{{ data.body }}",
    "c0",
    "v0",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_rule_text_never_becomes_code_only_a_value(value: str) -> None:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    rules = ruleset(
        f"""\
        version: 1
        rules:
          - name: "{quoted}"
            on: message.received
            when:
              any:
                - data.body: "{quoted}"
                - data.body: {{contains: "{quoted}", starts_with: "{quoted}"}}
                - data.tags: {{in: ["{quoted}"]}}
            then: [{{helpwave.add_comment: {{text: "{quoted} {{{{ data.body }}}}"}}}}]
        """
    )
    assert rules.rules[0].name == value
    source, constants = generate(rules.plan.entries)
    assert value in constants
    assert_only_our_own_tokens(source)
    assert_only_our_own_tokens(generate(RULES.plan.entries)[0])
    matching = decide(rules, make_event(data={"body": value}), ConversationState())
    assert matching.matched_rules == (value,)
    other = decide(rules, make_event(data={"body": "hello"}), ConversationState())
    assert other.matched_rules == ()


def test_a_condition_too_deep_to_inline_calls_its_explaining_check() -> None:
    when = "{data.body: hi}"
    for _ in range(60):
        when = f"{{not: {when}}}"
    rules = ruleset(f"version: 1\nrules:\n  - name: deep\n    on: '*'\n    when: {when}\n")
    condition = rules.rules[0].condition
    source, _ = generate([RuleEntry("deep", condition.shape, condition.check)])
    assert "H(" in source
    predicate = compile_predicate(condition.shape, condition.check)
    for body in ["hi", "HI", "ho", None]:
        payload = {"event": "x", "data": {"body": body}}
        held = condition.check(Context(payload, False, NOW)) is None
        assert predicate(payload, False, NOW) is held


def _decision(explain: Any) -> Decision:
    return Decision.explained_later(
        "v1",
        "message.received",
        "c1",
        explain,
        (PlannedAction("r", 0, "open_ticket"),),
        ConversationState(ticket_open=True),
        ("r",),
    )


def test_outcomes_are_explained_once_and_only_when_read() -> None:
    calls = []
    outcome = RuleOutcome("r", "matched", "every condition held")

    def explain() -> tuple[RuleOutcome, ...]:
        calls.append(1)
        return (outcome,)

    decision = _decision(explain)
    assert decision.matched_rules == ("r",)
    assert decision.actions[0].kind == "open_ticket"
    assert calls == []
    assert decision.outcomes == (outcome,)
    assert decision.to_json()["outcomes"][0]["rule"] == "r"
    assert calls == [1]


def test_a_decision_is_immutable_equal_by_value_and_pickles() -> None:
    outcome = RuleOutcome("r", "matched", "every condition held")
    lazy = _decision(lambda: (outcome,))
    eager = Decision("v1", "message.received", "c1", (outcome,), lazy.actions, lazy.state_after)
    assert lazy == eager
    assert eager.matched_rules == ("r",)
    assert Decision.from_json(lazy.to_json()) == lazy
    assert pickle.loads(pickle.dumps(lazy)) == eager
    assert "matched" in repr(lazy)
    with pytest.raises(FrozenInstanceError):
        lazy.event = "other"
    with pytest.raises(FrozenInstanceError):
        del lazy.actions


def test_the_fast_constructors_build_what_the_dataclasses_build() -> None:
    assert planned_action("r", 1, "close_ticket", {}, "why") == PlannedAction(
        "r", 1, "close_ticket", {}, "why"
    )
    until = {"r": NOW + timedelta(minutes=5)}
    wait = {"r": Wait("r", NOW, "d41d8cd9", business=True)}
    assert conversation_state(True, "7", True, until, wait, NOW) == ConversationState(
        True, "7", True, until, wait, NOW
    )
    state = ConversationState(True, "7", True, until, wait, NOW)
    assert ConversationState.from_json(state.to_json()) == state
    failure = condition_failure("data.body", "equals 'a'", None, True)
    assert failure == ConditionFailure("data.body", "equals 'a'", None, missing=True)
    assert rule_outcome("r", "not_matched", "why", failure, "f.yaml", 3) == RuleOutcome(
        "r", "not_matched", "why", failure, "f.yaml", 3
    )
    assert ConversationState().cooldowns == {}
    assert ConversationState().cooldowns is not ConversationState().cooldowns
