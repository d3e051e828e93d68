"""Lint: warnings about rulesets that load but cannot do what they say; sound, never guesses."""

from __future__ import annotations

import textwrap

import pytest

from worker.engine import load_ruleset_from_texts
from worker.engine.impossible_patterns import never_matches
from worker.engine.lint import lint_ruleset


def lint(text: str) -> list[str]:
    texts = {"r.yaml": textwrap.dedent(text)}
    return [
        f"{p.line}:{p.column}: {p.message}"
        for p in lint_ruleset(load_ruleset_from_texts(texts), texts)
        if p.severity == "warning"
    ]


FIRST = "version: 1\nmode: first_match\nrules:\n"
ALL = "version: 1\nrules:\n"


@pytest.mark.parametrize(
    ("earlier", "shadowed"),
    [
        ("{name: a, on: message.received, then: [open_ticket]}", True),
        ("{name: a, on: '*', then: [open_ticket]}", True),
        ("{name: a, on: message.received, when: {data.type: text}, then: []}", True),
        ("{name: a, on: message.received, when: {all: [{ticket: closed}]}, then: []}", True),
        ("{name: a, on: message.received, when: {data.type: image}, then: []}", False),
        ("{name: a, on: conversation.created, then: []}", False),
        ("{name: a, on: message.received, cooldown: 5m, then: []}", False),
        ("{name: a, on: message.received, enabled: false, then: []}", False),
    ],
)
def test_a_rule_after_one_that_catches_all_its_events_never_acts(
    earlier: str, shadowed: bool
) -> None:
    later = "{name: b, on: message.received, when: {data.type: text, ticket: closed}, then: []}"
    found = lint(f"{FIRST}  - {earlier}\n  - {later}\n")

    assert any("rule 'b' can never act" in f for f in found) == shadowed


def test_an_earlier_stop_rule_shadows_later_rules_in_any_mode() -> None:
    found = lint(
        f"{ALL}  - {{name: a, on: '*', stop: true, then: []}}\n"
        "  - {name: b, on: message.received, then: []}\n"
    )

    assert found == [
        "4:12: rule 'b' can never act: rule 'a' (r.yaml:3) has stop: true, listens to all its "
        "events and has no conditions"
    ]


@pytest.mark.parametrize(
    ("rules", "warned"),
    [
        ("{name: o, on: message.received, then: [open_ticket]}\n"
         "  - {name: c, on: message.received, then: [close_ticket]}", True),
        ("{name: o, on: message.received, when: {ticket: closed}, then: [open_ticket]}\n"
         "  - {name: c, on: message.received, when: {ticket: open}, then: [close_ticket]}", False),
        ("{name: o, on: message.received, when: {data.type: text}, then: [open_ticket]}\n"
         "  - {name: c, on: message.received, when: {data.type: image}, then: [close_ticket]}",
         False),
        ("{name: o, on: message.received, then: [open_ticket]}\n"
         "  - {name: c, on: conversation.updated, then: [close_ticket]}", False),
        ("{name: o, on: message.received, stop: true, then: [open_ticket]}\n"
         "  - {name: c, on: message.received, then: [close_ticket]}", False),
        ("{name: oc, on: message.received, then: [open_ticket, close_ticket]}", True),
    ],
)  # fmt: skip
def test_opening_and_closing_on_one_event(rules: str, warned: bool) -> None:
    found = lint(f"{ALL}  - {rules}\n")

    assert any("closes the ticket" in f for f in found) == warned


def test_first_match_keeps_an_open_and_a_close_apart() -> None:
    found = lint(
        f"{FIRST}  - {{name: c, on: message.received, when: {{data.body: bye}}, "
        "then: [close_ticket]}\n  - {name: o, on: message.received, then: [open_ticket]}\n"
    )

    assert found == []


def test_a_pattern_that_cannot_match_is_pointed_at() -> None:
    found = lint(f"{ALL}  - name: a\n    on: message.received\n    when:\n      data.body: "
                 "{matches: 'x^y'}\n")  # fmt: skip

    assert found == [
        "6:28: pattern 'x^y' can never match: '^' (start of text) comes after text that must "
        "be matched before it"
    ]


@pytest.mark.parametrize(
    ("pattern", "impossible"),
    [
        ("a^b", True),
        ("$a", True),
        ("(a^b)+", True),
        ("x(^a|^b)", True),
        ("(?i)\\b(help|refund)\\b", False),
        ("^a$", False),
        ("(x|a^b)", False),
        ("(a^b)*", False),
        ("(?m)a$\\n^b", False),
        ("[[:alpha:]]^", False),  # read differently by RE2 and Python: never guessed
        ("a?^b", False),
    ],
)
def test_never_matches(pattern: str, impossible: bool) -> None:
    assert (never_matches(pattern) is not None) == impossible


def test_an_unknown_event_is_a_warning_with_a_suggestion_when_close() -> None:
    found = lint(f"{ALL}  - {{name: a, on: [message.receive.v2, order.updated], then: []}}\n")

    assert found == [
        "3:20: event 'message.receive.v2' is not one AwalChat is known to send; did you mean "
        "'message.received'? (known: message.received, message.status.updated, "
        "conversation.created, conversation.updated)",
        "3:40: event 'order.updated' is not one AwalChat is known to send (known: "
        "message.received, message.status.updated, conversation.created, conversation.updated)",
    ]


def test_a_cooldown_on_events_without_a_conversation() -> None:
    found = lint(f"{ALL}  - {{name: a, on: message.status.updated, cooldown: 5m, then: []}}\n")
    fine = lint(f"{ALL}  - {{name: a, on: message.received, cooldown: 5m, then: []}}\n")

    assert found == [
        "3:43: cooldown on a rule whose events carry no conversation "
        "(message.status.updated): it can never apply"
    ]
    assert fine == []
