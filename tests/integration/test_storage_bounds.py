"""Bounded storage on real parts: after a mixed run, every key in Redis is one that
`worker.storage.keys` lists, and each has an expiry unless it is listed as bounded.

The run: a dry-run deployment decides a few events, then a live one on the same Redis takes
conversations with messages, conversation.created, unknown events, a duplicate, 300
`message.status.updated`, a dead letter (the fake refuses) and its replay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment
from tests.integration.test_faults import settled
from worker.delivery.dlq import DeadLetterQueue
from worker.processing.failures import replay_all
from worker.storage.keys import spec_for

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "rules"


def envelope(event: str, data: dict[str, object]) -> bytes:
    body = {"event": event, "timestamp": "2026-11-27T10:00:00Z", "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def message(conversation: int, body: str, n: int) -> bytes:
    return envelope(
        "message.received",
        {
            "message_id": f"wamid.{conversation}.{n}",
            "conversation_id": conversation,
            "from": f"9665{conversation:08d}",
            "type": "text",
            "body": body,
        },
    )


def status(n: int) -> bytes:
    return envelope("message.status.updated", {"message_id": f"wamid.out.{n}", "status": "read"})


def post(dep: Deployment, body: bytes, expected: int = 202) -> str:
    response = dep.post(body)
    assert response.status_code == expected, response.text
    delivery_id: str = response.json()["delivery_id"]
    return delivery_id


def unbounded_keys(client: redis.Redis) -> list[str]:
    """Keys that no spec lists, or that have no expiry although their spec says they do."""
    wrong = []
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        spec = spec_for(key)
        if spec is None:
            wrong.append(f"{key}: not in worker.storage.keys")
        elif client.ttl(key) == -1 and spec.expires:
            wrong.append(f"{key}: no expiry")
    return wrong


def test_after_a_mixed_run_every_key_expires_or_is_listed_as_bounded(
    redis_server: RedisServer, redis_client: redis.Redis, fake_providers: FakeProvidersServer
) -> None:
    env = fake_providers.env()
    ids: list[str] = []
    with Deployment(redis_server.url, env={**env, "DRY_RUN": "true"}, rules=RULES) as dep:
        ids += [post(dep, message(1, "help please", 0)), post(dep, status(0))]
        dep.wait_for(lambda: settled(redis_client, ids), what="the dry run decided")
    assert redis_client.exists("tw:dry:state:1") == 1

    with Deployment(redis_server.url, env=env, rules=RULES, concurrency=4) as dep:
        ids += [post(dep, message(c, "help please", 1)) for c in range(1, 6)]
        ids += [post(dep, message(c, "thanks, solved", 2)) for c in range(1, 3)]
        ids.append(
            post(
                dep,
                envelope(
                    "conversation.created", {"conversation_id": 7, "phone_number": "966500000007"}
                ),
            )
        )
        ids.append(post(dep, envelope("order.updated", {"order_id": 9})))
        post(dep, message(1, "help please", 1), expected=200)  # a duplicate
        ids += [post(dep, status(n)) for n in range(1, 301)]
        dep.wait_for(lambda: settled(redis_client, ids), timeout=90, what="everything decided")

        fake_providers.control.configure(awalchat={"auth": "reject"})
        ids.append(post(dep, message(8, "help please", 3)))
        queue = DeadLetterQueue(redis_client)
        dep.wait_for(lambda: queue.count() >= 1, what="a dead letter")
        fake_providers.control.configure(awalchat={"auth": "verify"})
        assert replay_all(redis_client, queue)
        dep.wait_for(
            lambda: (
                settled(redis_client, ids)
                and queue.count() == 0
                and redis_client.llen("tw:inbox:8") == 0
            ),
            timeout=60,
            what="the replay",
        )

    assert redis_client.keys("tw:state:d:*") == []  # events of no conversation keep no state
    assert unbounded_keys(redis_client) == []
