"""Delivery under faults, on real parts: every expected action applied exactly once, and
nothing left behind except what the dead-letter queue explains.

Faults: 20% 503 answers; answers slower than the client timeout; the connection dropped
after the provider acted; a worker SIGKILLed mid-backlog; redis-server (append-only)
restarted mid-backlog.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer, start_redis_server
from tests.integration.harness import Deployment
from worker.delivery.dlq import DeadLetterQueue
from worker.storage.conversations import ConversationStore

pytestmark = pytest.mark.integration

RULES = Path(__file__).parent / "rules"


def message(conversation: int, body: str = "help please") -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {
                "message_id": f"wamid.{conversation}",
                "conversation_id": conversation,
                "from": f"9665{conversation:08d}",
                "type": "text",
                "body": body,
            },
        },
        separators=(",", ":"),
    ).encode()


def post_all(dep: Deployment, conversations: range) -> list[str]:
    ids = []
    for conversation in conversations:
        response = dep.post(message(conversation))
        assert response.status_code == 202, response.text
        ids.append(response.json()["delivery_id"])
    return ids


def settled(client: redis.Redis, delivery_ids: list[str]) -> bool:
    """Every delivery decided and each of its actions finished (done, skipped or failed)."""
    store = ConversationStore(client)
    for delivery_id in delivery_ids:
        try:
            record = store.load(delivery_id)
        except redis.RedisError:
            return False
        if record is None or record.decision is None:
            return False
        if any(a.key not in record.done for a in record.decision.actions):
            return False
    return True


def opens_applied(fake: FakeProvidersServer) -> Counter[str]:
    """How many times the fake AwalChat actually opened each conversation's ticket."""
    return Counter(
        c.path.rsplit("/", 1)[-1]
        for c in fake.control.calls("awalchat")
        if c.applied and json.loads(c.body)["route"] == "openTicket"
    )


def assert_nothing_left(client: redis.Redis) -> None:
    assert client.keys("tw:inbox:*") == []
    assert client.keys("tw:lock:*") == []
    assert client.zcard("tw:parked") == 0


def assert_exactly_once(fake: FakeProvidersServer, conversations: range) -> None:
    applied = opens_applied(fake)
    assert applied == Counter({str(c): 1 for c in conversations})


@pytest.fixture
def open_only_rules(tmp_path: Path) -> Path:
    (tmp_path / "open.yaml").write_text(
        "version: 1\n"
        "rules:\n"
        "  - name: open-on-message\n"
        "    on: message.received\n"
        "    when: {ticket: closed}\n"
        "    then: [open_ticket]\n"
    )
    return tmp_path


def deploy(
    redis_url: str,
    fake: FakeProvidersServer,
    rules: Path,
    *,
    timeout: float = 5.0,
    workers: int = 1,
    concurrency: int = 2,
    lock_seconds: float | None = None,
) -> Deployment:
    env = {**fake.env(), "HTTP_TIMEOUT_SECONDS": str(timeout)}
    if lock_seconds is not None:  # the default (60 s) is what a restart waits out
        env["CONVERSATION_LOCK_SECONDS"] = f"{lock_seconds:g}"
    return Deployment(redis_url, env=env, rules=rules, workers=workers, concurrency=concurrency)


def test_twenty_percent_503_answers_still_act_exactly_once(
    redis_server: RedisServer, redis_client: redis.Redis, fake_providers: FakeProvidersServer
) -> None:
    fake_providers.control.configure(
        awalchat={"fail_ratio": 0.2}, helpwave={"fail_ratio": 0.2}, seed=7
    )
    conversations = range(1000, 1020)
    with deploy(redis_server.url, fake_providers, RULES, concurrency=4) as dep:
        ids = post_all(dep, conversations)
        dep.wait_for(lambda: settled(redis_client, ids), timeout=120, what="all settled")
    assert DeadLetterQueue(redis_client).list(limit=100) == []
    assert_exactly_once(fake_providers, conversations)
    state = fake_providers.control.state()["helpwave"]
    assert len(state["tickets"]) == len(conversations)  # one HelpWave ticket each
    statuses = Counter(c.status for c in fake_providers.control.calls())
    assert statuses[503] > 0  # the fault really happened
    assert_nothing_left(redis_client)


def test_answers_slower_than_the_timeout_are_retried_without_a_second_effect(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    open_only_rules: Path,
) -> None:
    fake_providers.control.configure(awalchat={"delay": 3.0})
    conversations = range(2000, 2005)
    with deploy(redis_server.url, fake_providers, open_only_rules, timeout=1.0) as dep:
        ids = post_all(dep, conversations)
        dep.wait_for(
            lambda: len(opens_applied(fake_providers)) == len(conversations),
            timeout=60,
            what="the provider applied every open",
        )
        fake_providers.control.configure(awalchat={"delay": 0.0})
        dep.wait_for(lambda: settled(redis_client, ids), timeout=120, what="all settled")
    assert_exactly_once(fake_providers, conversations)
    outcomes = [ConversationStore(redis_client).load(i) for i in ids]
    assert all(
        r is not None and r.done["open-on-message#0"]["result"] == "already" for r in outcomes
    )
    assert DeadLetterQueue(redis_client).count() == 0
    assert_nothing_left(redis_client)


def test_a_connection_dropped_after_the_provider_acted(
    redis_server: RedisServer, redis_client: redis.Redis, fake_providers: FakeProvidersServer
) -> None:
    fake_providers.control.configure(
        awalchat={"drop_after_act": 0.3}, helpwave={"drop_after_act": 0.3}, seed=3
    )
    conversations = range(3000, 3015)
    with deploy(redis_server.url, fake_providers, RULES, concurrency=4) as dep:
        ids = post_all(dep, conversations)
        dep.wait_for(lambda: settled(redis_client, ids), timeout=120, what="all settled")
    assert_exactly_once(fake_providers, conversations)
    # HelpWave creates cannot be repeated safely: a lost answer is dead-lettered, explained.
    helpwave_drops = [
        c
        for c in fake_providers.control.calls("helpwave")
        if c.outcome == "dropped" and c.path != "/api/v1/customers"
    ]
    letters = DeadLetterQueue(redis_client).list(limit=100)
    assert len(letters) == len(helpwave_drops)
    assert all("may have been applied" in letter.reason for letter in letters)
    tickets = fake_providers.control.state()["helpwave"]["tickets"]
    customers_with_tickets = Counter(t["customerID"] for t in tickets.values())
    assert set(customers_with_tickets.values()) <= {1}  # never a second ticket
    assert_nothing_left(redis_client)


def test_a_worker_killed_mid_backlog_loses_and_repeats_nothing(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    open_only_rules: Path,
) -> None:
    fake_providers.control.configure(awalchat={"delay": 0.2})
    conversations = range(4000, 4030)
    with deploy(redis_server.url, fake_providers, open_only_rules, workers=2) as dep:
        ids = post_all(dep, conversations)
        dep.wait_for(lambda: len(opens_applied(fake_providers)) >= 5, what="some progress")
        dep.kill_worker(0)
        dep.start_worker()
        dep.wait_for(lambda: settled(redis_client, ids), timeout=180, what="all settled")
    assert_exactly_once(fake_providers, conversations)
    assert DeadLetterQueue(redis_client).count() == 0
    assert_nothing_left(redis_client)


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    with start_redis_server(appendonly=True) as server:
        yield server


def test_redis_restarted_mid_backlog_loses_and_repeats_nothing(
    durable_redis: RedisServer, fake_providers: FakeProvidersServer, open_only_rules: Path
) -> None:
    fake_providers.control.configure(awalchat={"delay": 0.2})
    conversations = range(5000, 5030)
    client = redis.Redis.from_url(durable_redis.url)
    try:
        # the locks survive the restart and must expire: 10 s, not 60 s, to keep the suite
        # short (the default's 2-minute recovery is shown by the killed-worker test)
        with deploy(
            durable_redis.url, fake_providers, open_only_rules, workers=2, lock_seconds=10
        ) as dep:
            ids = post_all(dep, conversations)
            dep.wait_for(lambda: len(opens_applied(fake_providers)) >= 5, what="some progress")
            durable_redis.stop()  # SIGKILL: only what was fsynced survives
            time.sleep(1.0)
            durable_redis.start()
            dep.wait_for(lambda: settled(client, ids), timeout=240, what="all settled")
        assert_exactly_once(fake_providers, conversations)
        assert DeadLetterQueue(client).count() == 0
        assert_nothing_left(client)
    finally:
        client.close()


def test_a_worker_stopped_mid_backlog_hands_its_work_back_within_ten_seconds(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    open_only_rules: Path,
) -> None:
    fake_providers.control.configure(awalchat={"delay": 2.0})
    conversations = range(6000, 6006)
    with deploy(redis_server.url, fake_providers, open_only_rules) as dep:
        ids = post_all(dep, conversations)
        dep.wait_for(lambda: len(opens_applied(fake_providers)) >= 1, what="a call under way")
        worker = dep.workers[0]
        assert worker is not None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
        dep.workers[0] = None
        dep.start_worker()
        dep.wait_for(lambda: settled(redis_client, ids), timeout=180, what="all settled")
    assert_exactly_once(fake_providers, conversations)
    assert_nothing_left(redis_client)
