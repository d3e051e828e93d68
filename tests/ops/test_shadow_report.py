"""`ticket-worker shadow-report`: per shadow rule, its would-have counts and where it
disagrees with the live rules, from the workers' hour counters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
import redis

from tests.helpers_redis import RedisServer
from tests.samples import SHADOW_RULES
from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Event
from worker.engine.shadow import decide_shadows
from worker.ops.cli import main
from worker.ops.shadow_report import build_shadow_report, render_shadow_report
from worker.storage.shadow_log import ShadowLog

RULESET = load_ruleset_from_texts({"rules.yaml": SHADOW_RULES})
OPEN = ConversationState(ticket_open=True)


def decide_and_record(client: redis.Redis, conversation: str, body: str, *, at: float) -> None:
    """An item decided live and by the shadow rules, recorded as a worker does."""
    payload = {"event": "message.received", "data": {"conversation_id": conversation, "body": body}}
    event = Event("message.received", payload, conversation_id=conversation)
    now = datetime.fromtimestamp(at, UTC)
    live = evaluate(RULESET, event, OPEN, now=now)
    verdicts = decide_shadows(RULESET, event, live, {"close-on-thanks": OPEN}, now=now)
    delivery = f"{conversation}-{body}-{at}"
    ShadowLog(client).record(delivery, conversation, "live", [(v, 60) for v in verdicts], now=at)


def test_the_report_counts_would_have_actions_and_disagreements() -> None:
    client = fakeredis.FakeRedis()
    now = 1_800_000_000.0
    for number in range(5):
        decide_and_record(client, str(number), "thank you", at=now - 60 * number)
    decide_and_record(client, "9", "help", at=now)
    decide_and_record(client, "old", "thanks", at=now - 3 * 86400)  # outside 24h

    (row,) = build_shadow_report(client, RULESET, since=timedelta(hours=24), now=now)

    assert (row.rule, row.file, row.line) == ("close-on-thanks", "rules.yaml", 8)
    assert (row.decided, row.matched, row.acted) == (6, 5, 5)
    assert row.would == {"close_ticket": 5}
    (disagreement,) = row.disagreements
    assert disagreement.label == "shadow_only:close_ticket"
    assert disagreement.count == 5
    assert [c for c, _ in disagreement.examples] == ["0", "1", "2"]
    week = build_shadow_report(client, RULESET, since=timedelta(days=7), now=now)
    assert week[0].would == {"close_ticket": 6}
    text = render_shadow_report([row], since=timedelta(hours=24))
    assert "close-on-thanks  [rules.yaml:8]  (last 24h)" in text
    assert "would have close_ticket: 5" in text
    assert "disagrees 5x: shadow would close_ticket where live did not" in text
    assert "    e.g. conversation 0, delivery 0-thank you-" in text


def test_a_ruleset_without_shadow_rules_says_so() -> None:
    ruleset = load_ruleset_from_texts({"r.yaml": SHADOW_RULES.replace("    shadow: true\n", "")})
    reports = build_shadow_report(fakeredis.FakeRedis(), ruleset, since=timedelta(hours=1), now=0)

    assert reports == []
    assert render_shadow_report(reports, since=timedelta(hours=1)).startswith("no shadow rules")


def test_the_command_reads_the_deployment(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    (tmp_path / "rules.yaml").write_text(SHADOW_RULES)
    monkeypatch.setenv("RULES_PATH", str(tmp_path / "rules.yaml"))
    decide_and_record(redis_client, "1042", "thanks", at=time.time())
    decide_and_record(redis_client, "1043", "help", at=time.time())

    assert main(["shadow-report"]) == 0
    out = capsys.readouterr().out
    assert "decided 2, matched 1, would have acted on 1" in out
    assert "disagrees 1x: shadow would close_ticket where live did not" in out
    assert "e.g. conversation 1042" in out

    assert main(["shadow-report", "--since", "30d"]) == 1
    assert "--since '30d': expected a duration" in capsys.readouterr().err
