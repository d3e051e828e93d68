"""planning: when each action kind is skipped and what it changes, stated once; the compiled
deciders apply exactly that statement."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.support import NOW
from worker.engine.checks import AlwaysShape, Context
from worker.engine.decision import ConditionFailure
from worker.engine.fastpath import ActionStep, RuleEntry, compile_decider
from worker.engine.model import ACTION_KINDS
from worker.engine.planning import (
    EMPTY_COMMENT,
    NO_CONVERSATION,
    NO_HELPWAVE_TICKET,
    TICKET_ALREADY_CLOSED,
    TICKET_ALREADY_OPEN,
    Projection,
    plan_action,
)

OPEN, CLOSE = "open_ticket", "close_ticket"
CREATE, COMMENT = "helpwave.create_ticket", "helpwave.add_comment"
CLOSED = Projection(ticket_open=False, helpwave_ticket_id=None, helpwave_ticket_planned=False)
OPENED = CLOSED._replace(ticket_open=True)
STORED = CLOSED._replace(helpwave_ticket_id="987654321012345678")
PLANNED = CLOSED._replace(helpwave_ticket_planned=True)
HI = {"text": "hi"}


class Text(str):
    """A str subclass (as a YAML loader may give): checked by `is_blank`, not inline."""


@pytest.mark.parametrize(
    ("kind", "params", "before", "reason", "after"),
    [
        (OPEN, {}, CLOSED, None, OPENED),
        (OPEN, {}, OPENED, TICKET_ALREADY_OPEN, OPENED),
        (CLOSE, {}, OPENED, None, CLOSED),
        (CLOSE, {}, CLOSED, TICKET_ALREADY_CLOSED, CLOSED),
        # A create is never skipped: the executor looks the stored ticket up.
        (CREATE, {}, CLOSED, None, PLANNED),
        (CREATE, {}, PLANNED, None, PLANNED),
        (CREATE, {}, STORED, None, STORED._replace(helpwave_ticket_planned=True)),
        (COMMENT, HI, CLOSED, NO_HELPWAVE_TICKET, CLOSED),
        (COMMENT, HI, STORED, None, STORED),
        (COMMENT, HI, PLANNED, None, PLANNED),
        (COMMENT, {"text": " \n"}, STORED, EMPTY_COMMENT, STORED),
        (COMMENT, {"text": 5}, STORED, EMPTY_COMMENT, STORED),
        (COMMENT, {}, STORED, EMPTY_COMMENT, STORED),
        (COMMENT, {"text": Text(" ")}, STORED, EMPTY_COMMENT, STORED),
        (COMMENT, {"text": ""}, CLOSED, NO_HELPWAVE_TICKET, CLOSED),
        ("some.other_kind", {}, OPENED, None, OPENED),
    ],
)
def test_each_kind_is_skipped_or_changes_the_projection(
    kind: str,
    params: dict[str, Any],
    before: Projection,
    reason: str | None,
    after: Projection,
) -> None:
    assert plan_action(kind, params, before, has_conversation=True) == (reason, after)


@pytest.mark.parametrize("kind", ACTION_KINDS)
def test_every_action_of_an_event_without_a_conversation_is_skipped(kind: str) -> None:
    assert plan_action(kind, HI, CLOSED, has_conversation=False) == (NO_CONVERSATION, CLOSED)


def _always(context: Context) -> ConditionFailure | None:
    return None


PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "text": st.none()
        | st.integers()
        | st.lists(st.text(max_size=2), max_size=2)
        | st.sampled_from(["", " ", "\t\n", "hi", " x "])
        | st.text(max_size=4)
        | st.builds(Text, st.sampled_from(["", " ", "hi"]))
    },
)
STEPS = st.lists(st.tuples(st.sampled_from([*ACTION_KINDS, "some.other_kind"]), PARAMS), max_size=8)
PROJECTIONS = st.builds(
    Projection, st.booleans(), st.none() | st.just("987654321012345678"), st.booleans()
)


@settings(max_examples=400, deadline=None)
@given(steps=STEPS, start=PROJECTIONS, has_conversation=st.booleans(), opaque=st.booleans())
def test_a_compiled_decider_plans_as_the_statement_says(
    steps: list[tuple[str, dict[str, Any]]],
    start: Projection,
    has_conversation: bool,
    opaque: bool,
) -> None:
    actions = tuple(ActionStep(i, kind, params) for i, (kind, params) in enumerate(steps))
    entry = RuleEntry("r", AlwaysShape(), _always, actions=actions)
    decide = compile_decider([entry], opaque=opaque)

    names, acts, ticket_open, planned, _, _ = decide(
        {}, start.ticket_open, NOW, {}, not has_conversation, *start, False
    )

    expected: list[str | None] = []
    projection = start
    for kind, params in steps:
        reason, projection = plan_action(
            kind, params, projection, has_conversation=has_conversation
        )
        expected.append(reason)
    assert names == ["r"]
    assert [a.skip_reason for a in acts] == expected
    assert [(a.kind, dict(a.params)) for a in acts] == [(k, p) for k, p in steps]
    assert (ticket_open, planned) == (projection.ticket_open, projection.helpwave_ticket_planned)
    assert projection.helpwave_ticket_id == start.helpwave_ticket_id  # no action sets it
