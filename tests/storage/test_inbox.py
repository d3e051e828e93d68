"""Inbox.accept: one atomic script dedupes, stores, orders and queues a delivery."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio

from tests.helpers_redis import RedisServer, silent_server, start_redis_server
from worker.engine.model import Event
from worker.errors import QueueUnavailableError
from worker.storage.clients import async_redis as redis_client
from worker.storage.inbox import WAKE_LIMIT, AcceptResult, Inbox, delivery_id_for
from worker.storage.keys import DEFAULT_STATE_RETENTION, SEEN_TTL, WAKES_TTL
from worker.storage.wire import DRAIN_READY_TASK, celery_message

pytestmark = pytest.mark.anyio

RAW = b'{"event":"message.received","data":{"conversation_id":7}}'
EVENT = Event(name="message.received", payload={}, conversation_id="7")
NOW = 1700000000.25


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    fake = fakeredis.FakeAsyncRedis()
    yield fake
    await fake.aclose()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with start_redis_server() as running:
        yield running


async def accept(
    client: redis.asyncio.Redis, raw: bytes = RAW, event: Event = EVENT, *, dry_run: bool = False
) -> AcceptResult:
    return await Inbox(client, now=lambda: NOW).accept(raw, event, dry_run=dry_run)


def decode(message: bytes | str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def test_accept_stores_orders_and_queues_one_delivery(
    client: redis.asyncio.Redis,
) -> None:
    result = await accept(client, dry_run=True)
    delivery_id = delivery_id_for(RAW)
    assert result == AcceptResult(delivery_id=delivery_id, duplicate=False)
    assert len(delivery_id) == 32
    assert await client.hgetall(f"tw:delivery:{delivery_id}") == {
        b"raw": RAW,
        b"received_at": b"1700000000.25",
        b"dry_run": b"1",
        b"conversation": b"7",
    }
    assert await client.ttl(f"tw:delivery:{delivery_id}") > DEFAULT_STATE_RETENTION - 5
    assert SEEN_TTL - 5 < await client.ttl(f"tw:seen:{delivery_id}") <= SEEN_TTL
    assert await client.lrange("tw:inbox:7", 0, -1) == [delivery_id.encode()]
    assert await client.ttl("tw:inbox:7") > DEFAULT_STATE_RETENTION - 5
    assert await client.lrange("tw:ready", 0, -1) == [b"7"]
    [message] = await client.lrange("celery", 0, -1)
    headers = decode(message)["headers"]
    assert (headers["task"], headers["argsrepr"]) == (DRAIN_READY_TASK, "[]")
    assert await client.get("tw:wakes") == b"1"
    assert 0 < await client.ttl("tw:wakes") <= WAKES_TTL


async def test_same_body_again_is_a_duplicate_and_changes_nothing(
    client: redis.asyncio.Redis,
) -> None:
    first = await accept(client)
    again = await accept(client, dry_run=True)
    assert again == AcceptResult(delivery_id=first.delivery_id, duplicate=True)
    assert await client.llen("tw:ready") == 1
    assert await client.llen("tw:inbox:7") == 1
    assert await client.hget(f"tw:delivery:{first.delivery_id}", "dry_run") == b"0"


async def test_a_backlog_queues_a_few_wake_messages_not_one_per_webhook(
    client: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(client, now=lambda: NOW)
    for n in range(WAKE_LIMIT + 3):
        await inbox.accept(RAW + b" " * n, EVENT, dry_run=False)
    assert await client.llen("tw:ready") == WAKE_LIMIT + 3
    assert await client.llen("celery") == WAKE_LIMIT
    await client.set("tw:wakes", 0)  # the drains woken have started
    await inbox.accept(RAW + b"  " * 9, EVENT, dry_run=False)
    assert await client.llen("celery") == WAKE_LIMIT + 1


async def test_deliveries_of_one_conversation_queue_in_arrival_order(
    client: redis.asyncio.Redis,
) -> None:
    ids = [(await accept(client, RAW + b" " * n)).delivery_id.encode() for n in range(3)]
    assert await client.lrange("tw:inbox:7", 0, -1) == ids


async def test_event_without_conversation_gets_an_inbox_of_its_own(
    client: redis.asyncio.Redis,
) -> None:
    raw = b'{"event":"order.updated"}'
    result = await accept(client, raw, Event(name="order.updated", payload={}))
    conv = f"d:{result.delivery_id}"
    assert await client.lrange(f"tw:inbox:{conv}", 0, -1) == [result.delivery_id.encode()]
    assert await client.hget(f"tw:delivery:{result.delivery_id}", "conversation") == conv.encode()


async def test_concurrent_accepts_share_one_pipeline_and_each_gets_its_own_answer(
    client: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(client, now=lambda: NOW)
    bodies = [RAW, RAW + b" ", RAW]  # the third repeats the first within the same batch
    results = await asyncio.gather(*(inbox.accept(raw, EVENT, dry_run=False) for raw in bodies))
    assert [result.duplicate for result in results] == [False, False, True]
    assert await client.lrange("tw:inbox:7", 0, -1) == [
        results[0].delivery_id.encode(),
        results[1].delivery_id.encode(),
    ]
    assert await client.llen("tw:ready") == 2


async def test_a_script_cache_emptied_under_the_inbox_is_reloaded(
    client: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(client, now=lambda: NOW)
    await inbox.accept(RAW, EVENT, dry_run=False)
    await client.script_flush()
    results = await asyncio.gather(
        *(inbox.accept(RAW + b" " * n, EVENT, dry_run=False) for n in range(3))
    )
    assert [result.duplicate for result in results] == [True, False, False]
    assert await client.llen("tw:ready") == 3


async def test_a_caller_that_gave_up_before_its_batch_left_queues_nothing(
    client: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(client, now=lambda: NOW)
    given_up = asyncio.ensure_future(inbox.accept(RAW, EVENT, dry_run=False))
    kept = asyncio.ensure_future(inbox.accept(RAW + b" ", EVENT, dry_run=False))
    await asyncio.sleep(0)  # both wait for their batch, which has not left yet
    given_up.cancel()
    assert not (await kept).duplicate
    assert await client.llen("tw:ready") == 1
    assert await client.exists(f"tw:seen:{delivery_id_for(RAW)}") == 0


def test_celery_message_has_the_kombu_redis_transport_shape() -> None:
    message = decode(celery_message("some.task", ["a", "b"], queue="other").encode())
    assert message["content-type"] == "application/json"
    assert message["content-encoding"] == "utf-8"
    headers, properties = message["headers"], message["properties"]
    assert headers["task"] == "some.task"
    assert headers["id"] == headers["root_id"] == properties["correlation_id"]
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "other"}
    assert (properties["delivery_mode"], properties["priority"]) == (2, 0)
    assert properties["body_encoding"] == "base64"
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == (["a", "b"], {})
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def test_each_celery_message_has_its_own_task_id() -> None:
    first, second = (decode(celery_message("t", []).encode()) for _ in range(2))
    assert first["headers"]["id"] != second["headers"]["id"]


async def test_redis_down_raises_queue_unavailable_within_two_seconds_each(
    down_redis_url: str,
) -> None:
    client = redis_client(down_redis_url)
    inbox = Inbox(client)
    try:
        for _ in range(2):  # the second time on what the first left in the pool
            started = time.monotonic()
            with pytest.raises(QueueUnavailableError):
                await inbox.accept(RAW, EVENT, dry_run=False)
            assert time.monotonic() - started < 2.0  # interface.md, "Redis down"
            started = time.monotonic()
            with pytest.raises(QueueUnavailableError):
                await inbox.ping()
            assert time.monotonic() - started < 2.0
    finally:
        await client.aclose()


async def test_concurrent_accepts_against_a_silent_redis_each_fail_within_two_seconds() -> None:
    with silent_server() as url:
        client = redis_client(url)
        inbox = Inbox(client)

        async def accept(n: int) -> float:
            started = time.monotonic()
            await asyncio.sleep(n * 0.1)  # spread over several batches
            with pytest.raises(QueueUnavailableError):
                await inbox.accept(RAW + b" " * n, EVENT, dry_run=False)
            return time.monotonic() - started - n * 0.1

        try:
            assert max(await asyncio.gather(*(accept(n) for n in range(8)))) < 2.0
        finally:
            await client.aclose()


@pytest.mark.integration
async def test_inbox_fails_within_two_seconds_while_redis_hangs_and_recovers_after(
    server: RedisServer,
) -> None:
    client = redis_client(server.url)
    inbox = Inbox(client)
    try:
        assert not (await inbox.accept(RAW, EVENT, dry_run=False)).duplicate
        server.pause()
        try:
            for n in range(2):
                started = time.monotonic()
                with pytest.raises(QueueUnavailableError):
                    await inbox.accept(RAW + b" " * (n + 1), EVENT, dry_run=False)
                assert time.monotonic() - started < 2.0
                started = time.monotonic()
                with pytest.raises(QueueUnavailableError):
                    await inbox.ping()
                assert time.monotonic() - started < 2.0
        finally:
            server.resume()
        await inbox.ping()
        assert not (await inbox.accept(RAW + b"\n", EVENT, dry_run=False)).duplicate
    finally:
        await client.aclose()


@pytest.mark.integration
async def test_inbox_recovers_when_redis_comes_back_empty(server: RedisServer) -> None:
    client = redis_client(server.url)
    inbox = Inbox(client)
    try:
        await inbox.ping()
        assert not (await inbox.accept(RAW, EVENT, dry_run=False)).duplicate

        server.stop()
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError):
            await inbox.accept(RAW + b" ", EVENT, dry_run=False)
        assert time.monotonic() - started < 2.0
        with pytest.raises(QueueUnavailableError):
            await inbox.ping()

        server.start()  # empty: no script cached, no seen keys
        await inbox.ping()
        assert not (await inbox.accept(RAW, EVENT, dry_run=False)).duplicate
        assert await client.llen("tw:ready") == 1
    finally:
        await client.aclose()
