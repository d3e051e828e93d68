"""Events no rule listens to, decided in batches (worker.processing.solo_batch), under a
worker SIGKILLed mid-backlog: every event decided exactly once, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment
from worker.engine.envelope import parse_webhook
from worker.engine.model import Event
from worker.storage import keys
from worker.storage.clients import async_redis
from worker.storage.conversations import ConversationStore
from worker.storage.decision_index import parse_entries
from worker.storage.inbox import Inbox

pytestmark = pytest.mark.integration

EVENTS = 6000


def status(n: int) -> bytes:
    data = {"message_id": f"wamid.out.{n}", "status": "delivered"}
    return json.dumps({"event": "message.status.updated", "data": data}).encode()


async def accept_all(url: str, bodies: list[bytes]) -> list[str]:
    """Accept every body as the receiver does (its own script, no HTTP): delivery ids."""
    client = async_redis(url, timeout=5.0)
    inbox = Inbox(client, deadline=10.0)
    try:
        ids = []
        for raw in bodies:
            event = parse_webhook(raw)
            assert isinstance(event, Event)
            ids.append((await inbox.accept(raw, event, dry_run=False)).delivery_id)
        return ids
    finally:
        await client.aclose()


@pytest.fixture
def open_only_rules(tmp_path: Path) -> Path:
    (tmp_path / "open.yaml").write_text(
        "version: 1\nrules:\n  - name: open-on-message\n    on: message.received\n"
        "    when: {ticket: closed}\n    then: [open_ticket]\n"
    )
    return tmp_path


def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    open_only_rules: Path,
) -> None:
    ids = asyncio.run(accept_all(redis_server.url, [status(n) for n in range(EVENTS)]))
    # the killed worker's locks must expire: 10 s, not the default 60 s, keeps the suite short
    env = {**fake_providers.env(), "CONVERSATION_LOCK_SECONDS": "10"}
    with Deployment(
        redis_server.url, env=env, rules=open_only_rules, workers=0, concurrency=4
    ) as dep:
        dep.start_worker()
        deadline = time.monotonic() + 120
        while redis_client.xlen(keys.DECISIONS) < 300:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.002)
        dep.kill_worker(0)
        decided = redis_client.xlen(keys.DECISIONS)
        assert decided < EVENTS  # killed mid-backlog
        active = cast(list[bytes], redis_client.zrange(keys.ACTIVE, 0, -1))
        in_flight = [m for m in active if m.startswith(b"d:")]
        dep.start_worker()
        store = ConversationStore(redis_client)

        def all_decided() -> bool:
            return redis_client.xlen(keys.DECISIONS) >= EVENTS and not redis_client.zcard(
                keys.ACTIVE
            )

        dep.wait_for(all_decided, timeout=240, what="every event decided")
    assert in_flight, "the kill landed between batches: nothing was in flight"
    assert redis_client.xlen(keys.DECISIONS) == EVENTS  # each decided once
    logged = {e.delivery_id for e in parse_entries(redis_client.xrange(keys.DECISIONS))}
    assert logged == set(ids)
    for delivery_id in ids[:: EVENTS // 50]:
        record = store.load(delivery_id)
        assert record is not None
        assert record.decision is not None
        assert record.raw == b""
    assert redis_client.keys("tw:inbox:*") == []
    assert redis_client.keys("tw:lock:*") == []
    assert redis_client.llen(keys.READY) == 0
