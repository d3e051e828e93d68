"""`limits:` at the top of one rule file: loaded into `Ruleset.limits` (and so the breaker);
bad values and a second file setting it refused at file:line:column with a hint."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from worker.engine import load_ruleset_from_texts
from worker.engine.limit_keys import describe_limits, parse_cap
from worker.engine.ruleset import DEFAULT_LIMITS, Cap, Limits
from worker.errors import RulesError

RULE = "rules:\n  - name: r\n    on: message.received\n    then: [open_ticket]\n"


def file_with(top: str, rule: str = RULE) -> str:
    return "version: 1\n" + textwrap.dedent(top) + rule


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_ruleset_from_texts(files)
    return [f"{p.file}:{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


def test_no_limits_key_keeps_the_defaults() -> None:
    ruleset = load_ruleset_from_texts({"a.yaml": file_with("")})

    assert ruleset.limits == DEFAULT_LIMITS
    assert describe_limits(ruleset.limits) == (
        "tickets_per_conversation: 6/10m, comments_per_conversation: 60/10m"
    )


def test_limits_reach_the_ruleset_and_a_missing_key_keeps_its_default() -> None:
    top = "limits:\n  tickets_per_conversation: 3/1h30m\n"
    ruleset = load_ruleset_from_texts(
        {"a.yaml": file_with(top), "b.yaml": file_with("", "rules: []\n")}
    )

    assert ruleset.limits == Limits(
        tickets_per_conversation=Cap(3, timedelta(minutes=90)),
        comments_per_conversation=DEFAULT_LIMITS.comments_per_conversation,
    )


def test_both_keys_in_flow_style() -> None:
    top = "limits: {tickets_per_conversation: 2/5m, comments_per_conversation: 10 / 1m}\n"
    limits = load_ruleset_from_texts({"a.yaml": file_with(top)}).limits

    assert limits == Limits(Cap(2, timedelta(minutes=5)), Cap(10, timedelta(minutes=1)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "6 per 10m",
            "a.yaml:3:29: 'tickets_per_conversation': found '6 per 10m'; expected "
            "COUNT/DURATION like 6/10m (at most 6 actions in any 10 minutes)",
        ),
        (
            "0/10m",
            "a.yaml:3:29: 'tickets_per_conversation': found '0/10m'; the count must be at least 1",
        ),
        (
            "6/10 minutes",
            "a.yaml:3:29: 'tickets_per_conversation': found '6/10 minutes'; expected a "
            "duration after '/' like 10m",
        ),
        ("6", "a.yaml:3:29: 'tickets_per_conversation': found 6; expected COUNT/DURATION"),
    ],
)
def test_a_bad_value_is_refused_at_its_place(value: str, message: str) -> None:
    top = f"limits:\n  tickets_per_conversation: {value}\n"
    (problem,) = problems_of({"a.yaml": file_with(top)})

    assert problem.startswith(message)


def test_an_unknown_key_gets_a_did_you_mean() -> None:
    top = "limits:\n  ticket_per_conversation: 6/10m\n"
    (problem,) = problems_of({"a.yaml": file_with(top)})

    assert problem.startswith(
        "a.yaml:3:3: unknown key 'ticket_per_conversation' in limits; did you mean "
        "'tickets_per_conversation'?"
    )


def test_limits_must_be_a_mapping() -> None:
    (problem,) = problems_of({"a.yaml": file_with("limits: 6/10m\n")})

    assert problem.startswith("a.yaml:2:9: 'limits': found '6/10m'; expected a mapping like")


def test_a_second_file_setting_limits_is_refused_naming_the_first() -> None:
    top = "limits: {tickets_per_conversation: 6/10m}\n"
    problems = problems_of(
        {
            "10-a.yaml": file_with(top),
            "20-b.yaml": file_with("\n" + top, RULE.replace("name: r", "name: s")),
        }
    )

    assert problems == [
        "20-b.yaml:3:1: 'limits' is set twice; first set at 10-a.yaml:2:1 "
        "(one file of the ruleset holds the limits: remove one)"
    ]


@pytest.mark.parametrize(
    ("text", "cap"),
    [("6/10m", Cap(6, timedelta(minutes=10))), (" 1 / 2d ", Cap(1, timedelta(days=2)))],
)
def test_parse_cap(text: str, cap: Cap) -> None:
    assert parse_cap(text) == cap


@pytest.mark.parametrize("text", ["", "/", "a/10m", "-1/10m", "6/", "6/10x", "٣/10m"])
def test_parse_cap_refuses(text: str) -> None:
    assert isinstance(parse_cap(text), str)
