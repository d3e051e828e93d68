"""GET /decisions behind ADMIN_TOKEN, and the rules details of /readyz."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import fakeredis
import pytest
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Event
from worker.receiver.app import create_app
from worker.receiver.decisions_api import decisions_routes
from worker.settings import Settings
from worker.storage.conversations import ConversationStore
from worker.storage.inbox import AcceptResult
from worker.storage.records import DeliveryRecord

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

RULES = load_ruleset_from_texts(
    {
        "r.yaml": "version: 1\nrules:\n"
        "  - name: open\n    on: message.received\n    then: [open_ticket]\n"
    }
)


class NoInbox:
    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult:
        raise AssertionError("not used")

    async def ping(self) -> None:
        return None


def record_decision(server: fakeredis.FakeServer, conversation: str, delivery_id: str) -> None:
    """Store a decided delivery the way the worker does."""
    client = fakeredis.FakeRedis(server=server)
    raw = json.dumps({"event": "message.received", "data": {"conversation_id": conversation}})
    client.hset(
        f"tw:delivery:{delivery_id}",
        mapping={"raw": raw, "received_at": "1.0", "dry_run": "0", "conversation": conversation},
    )
    event = Event("message.received", json.loads(raw), conversation_id=conversation)
    decision = evaluate(RULES, event, ConversationState(), now=datetime(2026, 1, 1, tzinfo=UTC))
    store = ConversationStore(client)
    record = store.load(delivery_id)
    assert isinstance(record, DeliveryRecord)
    store.store_decision(record, decision, ConversationState())


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def client_for(server: fakeredis.FakeServer, token: str | None) -> Iterator[TestClient]:
    settings = Settings(
        awalchat_webhook_secrets=(SecretStr("s"),),
        admin_token=SecretStr(token) if token else None,
        _env_file=None,
    )
    redis = fakeredis.FakeAsyncRedis(server=server)
    app = create_app(
        settings,
        NoInbox(),
        details=lambda: {"rules": {"version": "abc", "refused_change": None}},
        extra_routes=decisions_routes(settings, redis),
    )
    with TestClient(app) as http:
        yield http


@pytest.fixture
def admin(server: fakeredis.FakeServer) -> Iterator[TestClient]:
    yield from client_for(server, "tok3n")


def test_decisions_need_the_bearer_token(admin: TestClient) -> None:
    assert admin.get("/decisions").status_code == 401
    wrong = admin.get("/decisions", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "tok3n" not in wrong.text


def test_decisions_list_the_newest_first(admin: TestClient, server: fakeredis.FakeServer) -> None:
    record_decision(server, "1", "a" * 32)
    record_decision(server, "2", "b" * 32)
    answer = admin.get("/decisions", headers={"Authorization": "Bearer tok3n"})
    assert answer.status_code == 200
    decisions = answer.json()["decisions"]
    assert [d["delivery_id"] for d in decisions] == ["b" * 32, "a" * 32]
    assert decisions[0]["matched"] == ["open"]
    assert decisions[0]["actions"][0]["action"] == "open_ticket"
    one = admin.get(
        "/decisions?conversation=1&limit=5", headers={"Authorization": "Bearer tok3n"}
    ).json()["decisions"]
    assert [d["conversation"] for d in one] == ["1"]


def test_a_bad_limit_is_refused(admin: TestClient) -> None:
    answer = admin.get("/decisions?limit=0", headers={"Authorization": "Bearer tok3n"})
    assert answer.status_code == 400


def test_without_admin_token_the_route_is_off(server: fakeredis.FakeServer) -> None:
    for http in client_for(server, None):
        assert http.get("/decisions", headers={"Authorization": "Bearer x"}).status_code == 404


def test_readyz_names_the_rules_version(admin: TestClient) -> None:
    answer = admin.get("/readyz")
    assert answer.json() == {"status": "ready", "rules": {"version": "abc", "refused_change": None}}
