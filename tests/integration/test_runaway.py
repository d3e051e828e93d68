"""The runaway breaker on real parts: two rules that would open and close the same ticket
forever, driven by a sender repeating its event, on two workers: the caps hold across both,
what passes them is dead-lettered with its reason, and a replay acts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment
from tests.integration.test_faults import settled
from tests.samples import TOGGLE_RULES
from worker.delivery.dlq import DeadLetterQueue
from worker.processing.failures import replay_one

pytestmark = pytest.mark.integration


def test_a_ticket_toggled_forever_is_capped_across_workers(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(TOGGLE_RULES)
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path, workers=2) as dep:
        ids = []
        for n in range(12):
            body = {"event": "message.received", "data": {"conversation_id": 77, "n": n}}
            response = dep.post(json.dumps(body).encode())
            assert response.status_code == 202, response.text
            ids.append(response.json()["delivery_id"])
        dep.wait_for(lambda: settled(redis_client, ids), timeout=60, what="all decided")
        assert len(fake_providers.control.calls("awalchat")) == 6
        queue = DeadLetterQueue(redis_client)
        letters = queue.list(limit=20)
        assert len(letters) == 6
        assert {x.reason for x in letters} == {"runaway: more than 6 ticket actions in 10m"}
        assert replay_one(redis_client, queue, letters[0].id) == [letters[0].id]
        dep.wait_for(lambda: len(fake_providers.control.calls("awalchat")) == 7, what="replay")
