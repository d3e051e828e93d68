"""`explain`, `diff` and `check` on shadow rules and `limits:`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ops.support import run
from tests.samples import SHADOW_RULES

# the shadow rule acts whatever the ticket's state, so `explain` shows why one action is skipped
RULES = SHADOW_RULES.replace(", ticket: open}", "}")
THANKS = {"event": "message.received", "data": {"conversation_id": 9, "body": "thanks"}}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "rules.yaml").write_text(RULES)
    (tmp_path / "event.json").write_text(json.dumps(THANKS))
    return tmp_path


def test_explain_shows_a_shadow_rules_would_have_actions(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = str(files / "event.json")
    code, out, _ = run(capsys, "explain", event, "--rules", str(files / "old"), "--state", "open")

    assert code == 0
    assert "shadow       close-on-thanks  shadow: true" in out
    assert "actions: none" in out
    assert "close_ticket             would have  <- close-on-thanks [shadow]" in out
    assert "shadow close-on-thanks differs: shadow would close_ticket where live did not" in out

    code, out, _ = run(capsys, "explain", event, "--rules", str(files / "old"), "--json")
    data = json.loads(out)
    assert data["actions"] == []
    assert data["shadow"][0]["rule"] == "close-on-thanks"
    assert data["shadow"][0]["actions"][0]["skip"] == "ticket already closed"


def test_diff_says_when_a_shadow_rule_goes_live_and_limits_change(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (files / "new").mkdir()
    live = RULES.replace("    shadow: true\n", "").replace("5/10m", "8/1h")
    (files / "new" / "rules.yaml").write_text(live)
    events = files / "events.jsonl"
    events.write_text(json.dumps(THANKS) + "\n")

    code, out, _ = run(
        capsys, "diff", str(files / "old"), str(files / "new"), "--events", str(events)
    )

    assert code == 0
    assert "close-on-thanks: was shadow, now live" in out
    assert (
        "limits: tickets_per_conversation: 5/10m, comments_per_conversation: 60/10m -> "
        "tickets_per_conversation: 8/1h, comments_per_conversation: 60/10m"
    ) in out


def test_check_refuses_a_bad_limit_with_its_place(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = files / "bad.yaml"
    bad.write_text(RULES.replace("5/10m", "5 per 10m"))

    code, _, err = run(capsys, "check", str(bad))

    assert code == 1
    assert f"{bad}:2:36: error: 'tickets_per_conversation': found '5 per 10m'" in err
