"""A console over fakeredis, signed in as operator or viewer, and records to look at."""

from __future__ import annotations

import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakeredis
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from worker.console.app import create_console_app
from worker.delivery.dlq import Attempt, DeadAction, DeadLetter, DeadLetterQueue
from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.live_rules import RuleSource
from worker.ops.console_command import explain_text
from worker.settings import Settings
from worker.storage.conversations import ConversationStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

ADMIN, VIEWER = "admin-secret-token", "viewer-secret-token"
ORIGIN = "http://testserver"
RULES_TEXT = (
    "version: 1\nrules:\n"
    "  - name: open\n    on: message.received\n    then: [open_ticket]\n"
    "  - name: note\n    on: conversation.created\n    then: [open_ticket]\n"
)
RULES = load_ruleset_from_texts({"r.yaml": RULES_TEXT})


def settings(**extra: Any) -> Settings:
    values: dict[str, Any] = {
        "admin_token": SecretStr(ADMIN),
        "viewer_token": SecretStr(VIEWER),
        **extra,
    }
    return Settings(_env_file=None, **values)


def console_client(client: fakeredis.FakeRedis, rules_path: Path, **extra: Any) -> TestClient:
    app = create_console_app(
        settings(**extra),
        client,
        rules=RuleSource(rules_path),
        explain=explain_text,
        tail_seconds=0.5,
    )
    return TestClient(app, base_url=ORIGIN, follow_redirects=False)


def sign_in(http: TestClient, token: str = ADMIN) -> str:
    """Sign in; return the session's CSRF token (read from the overview's sign-out form)."""
    answer = http.post("/signin", data={"password": token}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303, answer.text
    page = http.get("/").text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return str(page[start : page.index('"', start)])


def decide(
    client: fakeredis.FakeRedis, delivery_id: str, conversation: str, *, body: str = "hello"
) -> None:
    """Store a decided delivery the way the worker does."""
    raw = json.dumps(
        {"event": "message.received", "data": {"conversation_id": conversation, "body": body}}
    )
    store = ConversationStore(client)
    store.create_record(
        delivery_id,
        raw=raw.encode(),
        received_at=time.time(),
        conversation=conversation,
        dry_run=False,
    )
    event = parse_webhook(raw.encode())
    assert isinstance(event, Event)
    decision = evaluate(RULES, event, ConversationState(), now=datetime(2026, 1, 1, tzinfo=UTC))
    record = store.load(delivery_id)
    assert record is not None
    store.store_decision(record, decision, ConversationState())


def letter(
    client: fakeredis.FakeRedis, *, reason: str = "refused: 422", kind: str = "open_ticket"
) -> str:
    """Add a dead letter; return its id."""
    return DeadLetterQueue(client).add(
        DeadLetter(
            created_at=time.time(),
            delivery_id="d1",
            conversation="1042",
            action=DeadAction(kind, {"conversation_id": "1042"}, "open", 0),
            idempotency_key="k",
            reason=reason,
            attempts=[Attempt(time.time(), 422, "<b>bad</b>")],
            event={"event": "message.received", "data": {"conversation_id": "1042"}},
        )
    )
