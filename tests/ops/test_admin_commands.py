"""Operator commands against a real redis-server: decisions, dlq, and diff --recent."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.helpers_redis import RedisServer
from worker.delivery.dlq import Attempt, DeadAction, DeadLetter, DeadLetterQueue
from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Event
from worker.ops.cli import main
from worker.storage.conversations import ConversationStore
from worker.storage.rules_publication import PublicationStore

OLD = "version: 1\nrules:\n  - name: open\n    on: message.received\n    then: [open_ticket]\n"
NEW = OLD.replace("message.received", "conversation.created")


@pytest.fixture
def env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(NEW)
    return tmp_path


def decide(client: redis.Redis, conversation: str, delivery_id: str) -> None:
    """A delivery accepted and decided, as the receiver and the worker leave it."""
    raw = json.dumps({"event": "message.received", "data": {"conversation_id": conversation}})
    client.hset(
        f"tw:delivery:{delivery_id}",
        mapping={"raw": raw, "received_at": "1.0", "dry_run": "0", "conversation": conversation},
    )
    event = Event("message.received", json.loads(raw), conversation_id=conversation)
    ruleset = load_ruleset_from_texts({"old.yaml": OLD})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    decision = evaluate(ruleset, event, ConversationState(), now=now)
    store = ConversationStore(client)
    record = store.load(delivery_id)
    assert record is not None
    store.store_decision(record, decision, ConversationState())


def test_decisions_shows_the_log_newest_first(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    decide(redis_client, "1", "a" * 32)
    decide(redis_client, "2", "b" * 32)
    assert main(["decisions", "--limit", "5"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["conversation"] for d in shown] == ["2", "1"]
    assert shown[0]["actions"][0]["outcome"] == {"result": "pending"}
    assert main(["decisions", "--conversation", "1"]) == 0
    assert [d["conversation"] for d in json.loads(capsys.readouterr().out)] == ["1"]


def test_diff_recent_replays_the_decision_log(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    decide(redis_client, "1", "a" * 32)
    assert main(["diff", "old.yaml", "new.yaml", "--recent", "10"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 events change" in out


def test_dlq_list_show_replay_and_drop(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    decide(redis_client, "1", "a" * 32)
    queue = DeadLetterQueue(redis_client)
    letter = DeadLetter(
        created_at=time.time(),
        delivery_id="a" * 32,
        conversation="1",
        action=DeadAction(kind="open_ticket", params={}, rule="open", index=0),
        idempotency_key="a" * 32 + ":open#0",
        reason="refused: 404",
        attempts=[Attempt(at=1.0, status=404, answer='{"error":"not_found"}')],
        event={"event": "message.received", "data": {"conversation_id": 1}},
    )
    # The second was written before letters carried their event: it is read from its delivery.
    first, second = queue.add(letter), queue.add(replace(letter, event={}))
    assert main(["dlq", "list"]) == 0
    assert "refused: 404" in capsys.readouterr().out
    assert main(["dlq", "show", first]) == 0
    assert json.loads(capsys.readouterr().out)["attempts"][0]["status"] == 404
    assert main(["dlq", "replay", first]) == 0
    assert main(["dlq", "replay", first]) == 1  # gone: a replay acts once
    assert main(["dlq", "replay", second]) == 0
    assert redis_client.lrange("tw:inbox:1", 0, -1) == [
        f"r{first}".encode(),
        f"r{second}".encode(),
    ]
    assert redis_client.llen("celery") == 2
    replayed = ConversationStore(redis_client).load(f"r{first}")
    assert replayed is not None
    assert replayed.decision is not None
    assert [a.key for a in replayed.decision.actions] == ["open#0"]
    third = queue.add(replace(letter, delivery_id="c" * 32, event={}))
    assert main(["dlq", "replay", third]) == 1  # its event is gone: named, not replayed
    assert "drop it" in capsys.readouterr().err
    assert main(["dlq", "drop", third]) == 0
    assert main(["dlq", "show", third]) == 1
    capsys.readouterr()
    assert main(["dlq", "list"]) == 0
    assert "empty" in capsys.readouterr().out


WHEN = (
    "version: 1\nrules:\n  - name: open-on-help\n    on: message.received\n"
    "    when: {data.body: {contains: help}}\n    then: [open_ticket]\n"
)


def test_decisions_show_why_each_rule_did_not_act_in_new_and_old_records(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    ruleset = load_ruleset_from_texts({"when.yaml": WHEN})
    PublicationStore(redis_client).publish(ruleset.version, {"when.yaml": WHEN}, 0)
    raw = json.dumps(
        {"event": "message.received", "data": {"conversation_id": "3", "body": "thanks"}}
    )
    event = Event("message.received", json.loads(raw), conversation_id="3")
    decision = evaluate(ruleset, event, ConversationState(), now=datetime(2026, 1, 1, tzinfo=UTC))
    store = ConversationStore(redis_client)
    for delivery_id, old in (("n" * 32, False), ("o" * 32, True)):
        redis_client.hset(
            f"tw:delivery:{delivery_id}",
            mapping={"raw": raw, "received_at": "1.0", "dry_run": "0", "conversation": "3"},
        )
        record = store.load(delivery_id)
        assert record is not None
        store.store_decision(record, decision, ConversationState())
        if old:  # as an older version stored it: every listening rule explained
            redis_client.hset(
                f"tw:delivery:{delivery_id}", "decision", json.dumps(decision.to_json())
            )
    assert main(["decisions", "--conversation", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["explained"] for d in shown] == ["stored", "on read"]
    for described in shown:
        assert described["rules"] == [
            {
                "rule": "open-on-help",
                "status": "not_matched",
                "reason": "data.body contains 'help': saw 'thanks'",
            }
        ]
