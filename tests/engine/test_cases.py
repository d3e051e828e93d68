"""Regression cases through time: events at offsets, waits carried out when they come due,
expected actions at the offsets they happen; bad cases refused at file:line:column."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.support import ruleset
from worker.engine.case_files import load_cases
from worker.engine.cases import Case, CaseResult, offset, run_case
from worker.errors import RulesError

RULES = ruleset(
    """\
    version: 1
    timezone: Europe/Berlin
    business_hours: {days: [mon, tue, wed, thu, fri], between: ["09:00", "17:00"]}
    rules:
      - {name: open, on: message.received, when: {ticket: closed}, then: [open_ticket]}
      - name: close-after-24-business-hours
        on: message.received
        after: {business: 24h}
        unless: [conversation.updated]
        then: [close_ticket]
    """
)
MESSAGE = (
    "{event: message.received, timestamp: '2026-12-01T10:00:00+01:00', "  # a Tuesday
    "data: {conversation_id: 7, from: '491700000000', type: text, body: hi}}"
)


def cases(tmp_path: Path, text: str) -> list[Case]:
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n" + textwrap.indent(textwrap.dedent(text), "  "))
    return load_cases(path)


def run(tmp_path: Path, text: str) -> CaseResult:
    (case,) = cases(tmp_path, text)
    return run_case(RULES, case)


def test_a_24_business_hour_wait_is_carried_out_three_business_days_later(
    tmp_path: Path,
) -> None:
    result = run(
        tmp_path,
        f"""\
        - name: closed after three business days
          events: [{{event: {MESSAGE}}}]
          expect: [{{at: 0, open_ticket: }}, {{at: 3d, close_ticket: {{}}}}]
        """,
    )

    assert result.passed
    assert [(offset(at), a.kind) for at, a in result.timed_carried_out] == [
        ("0", "open_ticket"),
        ("3d", "close_ticket"),
    ]
    assert [step.describe() for step in result.steps] == [
        "event message.received",
        "wait of close-after-24-business-hours (due)",
    ]


def test_each_event_restarts_the_wait_and_an_unless_event_cancels_it(tmp_path: Path) -> None:
    restarted = run(
        tmp_path,
        f"""\
        - name: restarted
          events:
            - event: {MESSAGE}
            - {{at: 2d, event: {MESSAGE}}}
          expect: [open_ticket, {{at: 7d, close_ticket: }}]  # over a weekend
        """,
    )
    cancelled = run(
        tmp_path,
        f"""\
        - name: cancelled
          events:
            - event: {MESSAGE}
            - {{at: 1h, event: {{event: conversation.updated, data: {{conversation_id: 7}}}}}}
          expect: [open_ticket]
        """,
    )

    assert restarted.passed, restarted.timed_carried_out
    assert cancelled.passed
    assert cancelled.steps[-1].decision.wait_changes[0].reason == (
        "cancelled by conversation.updated (unless)"
    )


def test_an_action_at_another_time_than_expected_fails(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        f"""\
        - name: wrong time
          event: {MESSAGE}
          expect: [open_ticket, {{at: 1d, close_ticket: }}]
        """,
    )

    assert not result.passed
    assert result.case.expect[1].describe() == "at 1d  close_ticket"


def test_a_case_without_at_decides_its_one_event_as_before(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        f"""\
        - name: untimed
          event: {MESSAGE}
          expect: [open_ticket]
        """,
    )

    assert result.passed
    assert len(result.steps) == 1
    assert "close-after-24-business-hours" in result.decision.state_after.waits


def test_events_keep_the_offset_before_them_and_move_their_timestamps(tmp_path: Path) -> None:
    (case,) = cases(
        tmp_path,
        f"""\
        - name: offsets
          now: 2026-12-01T08:00:00Z
          events:
            - event: {MESSAGE}
            - {{at: 90m, event: {MESSAGE}}}
            - {{event: {MESSAGE}}}
          expect: []
        """,
    )

    assert [e.at for e in case.events] == [timedelta(0), *[timedelta(minutes=90)] * 2]
    result = run_case(RULES, case)
    moments = [s.event.timestamp for s in result.steps if s.event is not None]
    assert [m.isoformat() for m in moments if m is not None] == [
        "2026-12-01T08:00:00+00:00",
        "2026-12-01T09:30:00+00:00",
        "2026-12-01T09:30:00+00:00",
    ]


def test_a_wait_due_past_the_horizon_stays_pending(tmp_path: Path) -> None:
    far = ruleset(
        "version: 1\nrules:\n  - {name: far, on: '*', after: 500d, then: [open_ticket]}\n"
    )
    (case,) = cases(tmp_path, f"- name: far\n  events: [{{event: {MESSAGE}}}]\n  expect: []\n")

    result = run_case(far, case)

    assert result.passed
    assert list(result.decision.state_after.waits) == ["far"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"- name: x\n  events: [{{at: soon, event: {MESSAGE}}}]\n  expect: []\n",
            "3:19: 'at': found 'soon'; expected an offset from the case's start like 0, 30s",
        ),
        (
            f"- name: x\n  events: [{{at: 2h, event: {MESSAGE}}}, {{at: 1h, event: {MESSAGE}}}]\n"
            "  expect: []\n",
            "3:",
        ),
        (
            f"- name: x\n  event: {MESSAGE}\n  events: []\n  expect: []\n",
            "2:5: a case gives either 'event:' (one event) or 'events:'",
        ),
        ("- name: x\n  expect: []\n", "2:5: a case gives either 'event:'"),
        ("- name: x\n  events: [events/help.json]\n  expect: []\n", "3:14: an item of 'events'"),
        (
            f"- name: x\n  events: [{{when: 1h, event: {MESSAGE}}}]\n  expect: []\n",
            "3:21: unknown key 'when' in an event (expected at, event)",
        ),
        (
            f"- name: x\n  event: {MESSAGE}\n  expect: [{{at: 1x, close_ticket: }}]\n",
            "4:19: 'at': found '1x'",
        ),
        (
            f"- name: x\n  event: {MESSAGE}\n  expect: [{{at: 1h}}]\n",
            "4:14: an expected action is a name (open_ticket) or a mapping of one name",
        ),
    ],
)
def test_a_bad_timed_case_is_refused_where_it_is(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(RulesError) as caught:
        cases(tmp_path, text)

    found = [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]
    assert any(f.startswith(expected) for f in found), found
    if expected == "3:":
        assert any("is before the event above it" in f for f in found), found
