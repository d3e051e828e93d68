"""The rule owners' commands through `ticket-worker ...`: check, test, explain, diff, schema."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.ops.support import run

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
WEBHOOKS = ROOT / "tests" / "fixtures" / "webhooks"


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A copy of the example rules, with their cases, for a test to edit."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    return rules


EXPLAINED = [
    pytest.param(
        "message_received_help",
        [],
        0,
        [
            "MATCH        open-on-customer-message",
            "no           close-on-thanks                      ticket is open: saw 'closed'",
            "other event  helpwave-ticket-on-new-conversation  listens for conversation.created",
            "  open_ticket {}  <- open-on-customer-message",
        ],
        [],
        id="every-rule-and-its-first-failing-condition",
    ),
    pytest.param(
        "message_received_help",
        ["--state", "open"],
        0,
        ["helpwave.add_comment {"],
        ["open_ticket", "(skipped"],  # the open's rule wants the ticket closed
        id="a-state-leaves-out-what-it-skips",
    ),
    pytest.param(
        "message_received_help",
        ["--state", "opne"],
        1,
        ["--state 'opne'"],
        [],
        id="a-bad-state-word-is-refused",
    ),
    pytest.param(
        "message_received_help",
        [],
        0,
        [
            "SCHEDULE     escalate-after-4-business-hours      would schedule helpwave.add_comment "
            "for 2024-05-14T13:30:00+00:00 (business time)",
            "would schedule the wait of close-after-a-quiet-day: scheduled for 2024-05-15T",
        ],
        [],
        id="what-would-be-scheduled",
    ),
    pytest.param(
        "conversation_updated",
        ["--state", "wait=escalate-after-4-business-hours:2024-05-14T13:30:00Z"],
        0,
        [
            "would cancel the wait of escalate-after-4-business-hours: cancelled by "
            "conversation.updated (unless)"
        ],
        [],
        id="what-would-be-cancelled",
    ),
]


@pytest.mark.parametrize(("webhook", "options", "code", "shown", "not_shown"), EXPLAINED)
def test_explain_says_what_the_example_rules_do_with_a_sample_webhook(
    webhook: str,
    options: list[str],
    code: int,
    shown: list[str],
    not_shown: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its exit code, and what it prints: on stdout, or on stderr when it refuses."""
    event = str(WEBHOOKS / f"{webhook}.json")
    exit_code, out, err = run(capsys, "explain", event, "--rules", str(RULES), *options)

    assert exit_code == code
    printed = out if code == 0 else err
    assert [text for text in shown if text not in printed] == []
    assert [text for text in not_shown if text in printed] == []


def test_explain_says_why_a_comment_has_no_helpwave_ticket(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = tmp_path / "no-sender.json"
    body = json.loads((WEBHOOKS / "message_received_help.json").read_text())
    del body["data"]["from"]  # the mirror creates no ticket without the customer's number
    event.write_text(json.dumps(body))

    code, out, _ = run(capsys, "explain", str(event), "--rules", str(RULES))
    stored, out2, _ = run(
        capsys, "explain", str(event), "--rules", str(RULES), "--state", "helpwave=42"
    )

    assert (code, stored) == (0, 0)
    assert "(skipped: no HelpWave ticket for this conversation)" in out
    assert "helpwave.add_comment {" in out2
    assert "(skipped" not in out2


def test_explain_json_is_the_stored_decision_format(capsys: pytest.CaptureFixture[str]) -> None:
    event = str(WEBHOOKS / "message_received_thanks.json")
    code, out, _ = run(capsys, "explain", event, "--rules", str(RULES), "--json", "--state", "open")

    decision = json.loads(out)
    assert code == 0
    assert [a["kind"] for a in decision["actions"]][-1] == "close_ticket"
    body = next(o for o in decision["outcomes"] if o["rule"] == "open-on-customer-message")
    assert body["status"] == "stopped"


def test_check_prints_lint_warnings_and_strict_fails_on_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nmode: first_match\nrules:\n"
        "  - {name: all, on: message.received, then: [open_ticket]}\n"
        "  - {name: never, on: message.received, when: {data.type: text}, then: [open_ticket]}\n"
    )

    code, out, _ = run(capsys, "check", str(rules))
    strict, _, _ = run(capsys, "check", "--strict", str(rules))

    assert code == 0
    assert f"{rules}:5:12: warning: rule 'never' can never act" in out
    assert "1 warning" in out
    assert strict == 1


def test_check_on_the_example_rules_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--strict", str(RULES))

    assert code == 0
    assert "warning" not in out


def test_check_errors_exit_1_with_positions(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "tests" / "fixtures" / "rules" / "bad" / "unknown_operator.yaml"
    code, _, err = run(capsys, "check", str(bad))

    assert code == 1
    assert "unknown_operator.yaml:" in err
    assert "did you mean 'contains'?" in err


def test_test_runs_the_example_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", str(RULES))

    assert code == 0
    assert out.rstrip().endswith("(ruleset " + str(RULES) + ")")
    assert " passed, 0 failed" in out


FAILING_CASES = [
    pytest.param(
        "cases:\n"
        "  - name: wrong on purpose\n"
        "    event: events/help.json\n"
        "    expect: [close_ticket]\n",
        [
            "  expected:\n    close_ticket\n  actual:\n    helpwave.create_ticket",
            "no           close-on-thanks",
        ],
        id="expected-actual-and-why",
    ),
    pytest.param(
        "cases:\n"
        "  - name: closed a day late on purpose\n"
        "    events: [{event: events/help.json}]\n"
        "    expect: [helpwave.create_ticket, helpwave.add_comment, open_ticket,\n"
        "             helpwave.add_comment, helpwave.add_comment, {at: 2d, close_ticket: }]\n",
        [
            "    at 2d  close_ticket\n  actual:\n    at 0  helpwave.create_ticket",
            "    at 1d  close_ticket {}  <- close-after-a-quiet-day",
            "    at 1d: wait of close-after-a-quiet-day (due)",
            "DUE          close-after-a-quiet-day  due 2024-05-15T09:30:00+00:00, carried out",
        ],
        id="the-times-of-a-timed-case",
    ),
]


@pytest.mark.parametrize(("cases", "shown"), FAILING_CASES)
def test_a_failing_case_shows_expected_actual_and_why(
    cases: str, shown: list[str], rules_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rules_copy / "tests" / "failing.yaml").write_text(cases)

    code, out, _ = run(capsys, "test", str(rules_copy / "tests" / "failing.yaml"))

    assert code == 1
    assert "FAIL " in out
    assert [text for text in shown if text not in out] == []
    assert out.rstrip().endswith(f"0 passed, 1 failed (ruleset {rules_copy})")


def test_a_bad_cases_file_is_refused_with_positions(
    capsys: pytest.CaptureFixture[str], rules_copy: Path
) -> None:
    (rules_copy / "tests" / "bad.yaml").write_text(
        "cases:\n  - name: x\n    event: events/help.json\n    expct: []\n"
    )

    code, _, err = run(capsys, "test", str(rules_copy))

    assert code == 1
    assert f"{rules_copy / 'tests' / 'bad.yaml'}:4:5: error: unknown key 'expct'" in err


def test_test_without_cases_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shutil.copy(RULES / "20-awalchat-tickets.yaml", tmp_path)

    code, out, _ = run(capsys, "test", str(tmp_path))

    assert code == 1
    assert "no cases files" in out


def test_diff_lists_the_events_whose_actions_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, rules_copy: Path
) -> None:
    new = rules_copy
    tickets = new / "20-awalchat-tickets.yaml"
    tickets.write_text(
        tickets.read_text().replace("- open_ticket", "- open_ticket: {}\n      - close_ticket")
    )
    events = tmp_path / "events.jsonl"
    bodies = [
        json.loads((WEBHOOKS / f"{name}.json").read_text())
        for name in ("message_received_help", "message_received_thanks", "message_status_updated")
    ]
    events.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")

    code, out, _ = run(capsys, "diff", str(RULES), str(new), "--events", str(events))

    assert code == 0
    assert "events.jsonl#1: message.received (conversation 1042)" in out
    assert "    close_ticket {}  <- open-on-customer-message" in out
    assert "2 of 3 events change" in out  # the thanks finds the ticket closed


def test_diff_reads_a_json_array_and_a_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array = tmp_path / "events.json"
    array.write_text(json.dumps([json.loads((WEBHOOKS / "order_updated.json").read_text())]))

    code, out, _ = run(capsys, "diff", str(RULES), str(RULES), "--events", str(array))
    folder, out2, _ = run(capsys, "diff", str(RULES), str(RULES), "--events", str(WEBHOOKS))

    assert (code, folder) == (0, 0)
    assert "0 of 1 events change" in out
    assert f"0 of {len(list(WEBHOOKS.glob('*.json')))} events change" in out2


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")

    assert code == 0
    assert out == (ROOT / "worker" / "rules.schema.json").read_text()


def test_explain_reads_the_last_customer_message_for_session_conditions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - {name: window, on: '*', when: {session: open}, then: []}\n"
    )
    updated = str(WEBHOOKS / "conversation_updated.json")
    body = json.loads((WEBHOOKS / "conversation_updated.json").read_text())
    recent = datetime.fromisoformat(body["timestamp"]) - timedelta(hours=2)

    _, never, _ = run(capsys, "explain", updated, "--rules", str(rules))
    _, open_, _ = run(
        capsys, "explain", updated, "--rules", str(rules), "--state", f"last_message={recent}"
    )
    code, _, err = run(capsys, "explain", updated, "--rules", str(rules), "--state", "wait=x")

    assert "no           window  session is open: saw 'expired'" in never
    assert "MATCH        window  every condition held" in open_
    assert code == 1
    assert "expected wait=RULE:ISO-DUE" in err


def test_check_warns_of_a_wait_longer_than_the_state_retention(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_RETENTION", "7d")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n"
        "  - {name: late, on: message.received, after: 10d, then: [close_ticket]}\n"
    )

    code, out, _ = run(capsys, "check", str(rules))

    assert code == 0
    assert f"{rules}:3:40: warning: this wait is 10d, longer than STATE_RETENTION (7d)" in out


def test_diff_counts_a_change_in_what_is_scheduled_or_when(
    capsys: pytest.CaptureFixture[str], rules_copy: Path
) -> None:
    new = rules_copy
    timed = new / "30-time.yaml"
    timed.write_text(timed.read_text().replace("after: 24h", "after: 12h"))

    code, out, _ = run(
        capsys,
        "diff",
        str(RULES),
        str(new),
        "--events",
        str(WEBHOOKS / "message_received_help.json"),
    )

    assert code == 0
    assert "1 of 1 events change" in out
    assert "    wait of close-after-a-quiet-day: scheduled for 2024-05-15T09:30:00+00:00" in out
    assert "    wait of close-after-a-quiet-day: scheduled for 2024-05-14T21:30:00+00:00" in out
