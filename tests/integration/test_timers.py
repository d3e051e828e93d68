"""Time in rules on real parts: waits in Redis, released by any worker, carried out once.

A close 4 s after the last message (±1 s), a second message restarting the wait, an
`unless:` event cancelling it, a worker SIGKILLed and a Redis restarted (with its data)
while waits are pending (each still carried out once), and a business-hours wait that
starts counting when the hours open.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer, start_redis_server
from tests.integration.harness import Deployment
from worker.storage import keys

pytestmark = pytest.mark.integration

TOLERANCE = 1.0


def rules(opens_in: float) -> tuple[str, float]:
    """Rules whose business hours open `opens_in` seconds from now (UTC), for an hour; and
    the time they open."""
    start = (datetime.now(UTC) + timedelta(seconds=opens_in)).replace(microsecond=0)
    end = start + timedelta(hours=1)  # may wrap midnight: the span belongs to its first day
    text = f"""\
version: 1
business_hours:
  timezone: UTC
  days: [mon, tue, wed, thu, fri, sat, sun]
  between: ["{start:%H:%M:%S}", "{end:%H:%M:%S}"]
rules:
  - name: open-on-message
    on: message.received
    when: {{ticket: closed}}
    then: [open_ticket]
  - name: close-after-quiet
    on: message.received
    after: 4s
    unless: [conversation.updated]
    then: [close_ticket]
  - name: open-in-business-hours
    on: conversation.created
    after: {{business: 2s}}
    then: [open_ticket]
"""
    return text, start.timestamp()


def message(conversation: int, n: int) -> bytes:
    data = {"conversation_id": conversation, "from": "966500000001", "body": f"hello {n}"}
    return json.dumps({"event": "message.received", "data": data, "n": n}).encode()


def event(name: str, conversation: int) -> bytes:
    return json.dumps({"event": name, "data": {"conversation_id": conversation}}).encode()


def calls(fake: FakeProvidersServer, route: str) -> list[tuple[str, float]]:
    """(conversation, time) of every applied AwalChat call with `route`."""
    return [
        (c.path.rsplit("/", 1)[-1], c.time)
        for c in fake.control.calls("awalchat")
        if c.applied and json.loads(c.body)["route"] == route
    ]


def post(dep: Deployment, body: bytes) -> float:
    response = dep.post(body)
    assert response.status_code == 202, response.text
    return time.time()


def test_waits_restart_cancel_and_come_due_on_time(
    redis_server: RedisServer, fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    text, opens = rules(opens_in=12.0)
    (tmp_path / "rules.yaml").write_text(text)
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path, workers=2) as dep:
        assert time.time() < opens
        post(dep, event("conversation.created", 30))  # counted from the opening: due +2 s
        post(dep, message(10, 1))
        time.sleep(2)
        restarted = post(dep, message(10, 2))  # restarts 10's wait: due 4 s from now
        post(dep, message(20, 1))
        time.sleep(1)
        post(dep, event("conversation.updated", 20))  # cancels 20's wait (unless)
        dep.wait_for(lambda: len(calls(fake_providers, "closeTicket")) >= 1, timeout=15)
        dep.wait_for(lambda: len(calls(fake_providers, "openTicket")) >= 3, timeout=20)
        time.sleep(5)  # what should not happen has had its chance
    closes = calls(fake_providers, "closeTicket")
    assert [c for c, _ in closes] == ["10"]
    assert abs(closes[0][1] - (restarted + 4)) <= TOLERANCE, closes[0][1] - restarted
    business = [t for c, t in calls(fake_providers, "openTicket") if c == "30"]
    assert len(business) == 1
    assert abs(business[0] - (opens + 2)) <= TOLERANCE, business[0] - opens


def test_pending_waits_survive_a_killed_worker_and_a_redis_restart(
    fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(rules(opens_in=3600.0)[0])
    conversations = range(100, 130)
    with start_redis_server(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        with Deployment(server.url, env=fake_providers.env(), rules=tmp_path, workers=2) as dep:
            for conversation in conversations:
                post(dep, message(conversation, 1))
            dep.wait_for(lambda: client.zcard(keys.TIMERS) == len(conversations), timeout=20)
            dep.kill_worker(0)  # SIGKILL, waits pending
            server.restart()  # with its data (append-only, fsync always)
            dep.wait_for(
                lambda: len(calls(fake_providers, "closeTicket")) >= len(conversations),
                timeout=150,  # a killed worker's locks and messages come back within 2 min
                what="every wait carried out",
            )
            time.sleep(2)
        client.close()
    closes = Counter(c for c, _ in calls(fake_providers, "closeTicket"))
    assert closes == Counter({str(c): 1 for c in conversations})
