"""End to end on real parts: redis-server, `ticket-worker serve`, `ticket-worker work` (a real
Celery worker process) and the fake providers, which verify every signature and header.

A signed webhook leads to exactly one correctly signed call; every bad input leads to none.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

RULES = Path(__file__).parent / "rules"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def message(conversation: int, body: str, *, message_id: str) -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {
                "message_id": message_id,
                "conversation_id": conversation,
                "from": "966500000001",
                "to": "966500000099",
                "type": "text",
                "body": body,
                "timestamp": "2026-11-27T10:00:00Z",
            },
        },
        separators=(",", ":"),
    ).encode()


@pytest.fixture
def deployment(
    redis_server: RedisServer, fake_providers: FakeProvidersServer
) -> Iterator[Deployment]:
    with Deployment(redis_server.url, env=fake_providers.env(), rules=RULES) as dep:
        yield dep


def awalchat_calls(fake: FakeProvidersServer) -> list[dict[str, object]]:
    return [
        {"path": c.path, "status": c.status, "body": c.body} for c in fake.control.calls("awalchat")
    ]


def test_a_signed_webhook_leads_to_exactly_one_signed_call_per_action(
    deployment: Deployment, fake_providers: FakeProvidersServer, redis_client: redis.Redis
) -> None:
    response = deployment.post(message(101, "help, my order is broken", message_id="wamid.1"))
    assert response.status_code == 202, response.text

    deployment.wait_for(
        lambda: len(fake_providers.control.calls("helpwave")) >= 3, what="helpwave calls"
    )
    time.sleep(1.0)  # anything extra would show up now
    awalchat = fake_providers.control.calls("awalchat")
    assert [(c.path, c.status) for c in awalchat] == [
        ("/api/developer/wechat/chat/events/101", 200)
    ]
    assert json.loads(awalchat[0].body) == {"route": "openTicket"}
    helpwave = [(c.method, c.path, c.status) for c in fake_providers.control.calls("helpwave")]
    assert [(m, p) for m, p, _ in helpwave] == [
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
        ("POST", f"/api/v1/tickets/{_ticket_id(fake_providers)}/comments"),
    ]
    assert all(status in (200, 201) for _, _, status in helpwave)


def _ticket_id(fake: FakeProvidersServer) -> str:
    tickets = fake.control.state()["helpwave"]["tickets"]
    assert len(tickets) == 1
    return str(next(iter(tickets)))


def test_a_duplicate_delivery_is_answered_200_and_acted_on_once(
    deployment: Deployment, fake_providers: FakeProvidersServer
) -> None:
    body = message(202, "help please", message_id="wamid.2")
    assert deployment.post(body).status_code == 202
    again = deployment.post(body)  # a sender's retry: signed again, same bytes
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    deployment.wait_for(lambda: len(awalchat_calls(fake_providers)) >= 1, what="open call")
    time.sleep(1.0)
    assert len(awalchat_calls(fake_providers)) == 1


def test_open_then_close_happen_in_order(
    deployment: Deployment, fake_providers: FakeProvidersServer
) -> None:
    assert deployment.post(message(303, "help", message_id="wamid.3a")).status_code == 202
    assert deployment.post(message(303, "thanks a lot", message_id="wamid.3b")).status_code == 202
    deployment.wait_for(lambda: len(awalchat_calls(fake_providers)) >= 2, what="two calls")
    routes = [json.loads(str(c["body"]))["route"] for c in awalchat_calls(fake_providers)]
    assert routes == ["openTicket", "closeTicket"]


BAD_INPUTS = [
    ("unsigned", 401),
    ("wrong-secret", 401),
    ("tampered", 401),
    ("stale", 401),
    ("too-large", 413),
    ("not-json", 400),
    ("json-array", 400),
    ("no-event", 400),
]


def _bad_request(deployment: Deployment, kind: str) -> int:
    good = message(404, "help", message_id="wamid.bad")
    http = deployment.http
    if kind == "unsigned":
        return http.post("/webhooks/awalchat", content=good).status_code
    if kind == "wrong-secret":
        return deployment.post(good, secret="not-the-secret").status_code
    if kind == "tampered":
        from worker.receiver.signature import sign

        ts = str(int(time.time()))
        headers = {"X-Timestamp": ts, "X-Awal-Signature-256": sign("whsec-integration", good, ts)}
        return http.post(
            "/webhooks/awalchat", content=good.replace(b"help", b"HELP"), headers=headers
        ).status_code
    if kind == "stale":
        from worker.receiver.signature import sign

        ts = str(int(time.time()) - 3600)
        headers = {"X-Timestamp": ts, "X-Awal-Signature-256": sign("whsec-integration", good, ts)}
        return http.post("/webhooks/awalchat", content=good, headers=headers).status_code
    bodies = {
        "too-large": b'{"event":"message.received","data":{"body":"' + b"x" * (1 << 20) + b'"}}',
        "not-json": b"this is not json",
        "json-array": b'[{"event":"message.received"}]',
        "no-event": b'{"data":{"conversation_id":404}}',
    }
    return deployment.post(bodies[kind]).status_code


def test_bad_inputs_get_their_status_and_cause_no_call(
    deployment: Deployment, fake_providers: FakeProvidersServer, redis_client: redis.Redis
) -> None:
    for kind, status in BAD_INPUTS:
        assert _bad_request(deployment, kind) == status, kind
    # A good event after them: once it is acted on, everything before it was seen too.
    assert deployment.post(message(405, "help", message_id="wamid.good")).status_code == 202
    deployment.wait_for(lambda: len(awalchat_calls(fake_providers)) >= 1, what="the good call")
    time.sleep(1.0)
    paths = [c["path"] for c in awalchat_calls(fake_providers)]
    assert paths == ["/api/developer/wechat/chat/events/405"]
    assert redis_client.keys("tw:inbox:404") == []


def test_services_stop_within_ten_seconds_of_sigterm(deployment: Deployment) -> None:
    procs = [p for p in [deployment.receiver, *deployment.workers] if p is not None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=10) is not None
