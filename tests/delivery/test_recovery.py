"""The recovery sweep: a conversation with a backlog that nothing covers gets a drain again."""

from __future__ import annotations

import fakeredis
import pytest

from worker.delivery.recovery import ACTIVE_KEY, Recovery

NOW = 1_000_000.0


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def sweeper(client: fakeredis.FakeRedis) -> Recovery:
    return Recovery(
        client,
        lock_key=lambda c: f"tw:lock:{c}",
        inbox_key=lambda c: f"tw:inbox:{c}",
        parked_key="tw:parked",
        queue="celery",
        build_message=lambda c: f"drain {c}",
        stale_after=90,
    )


def test_a_stale_uncovered_backlog_gets_a_drain_queued(client: fakeredis.FakeRedis) -> None:
    client.zadd(ACTIVE_KEY, {"1": NOW - 100})
    client.rpush("tw:inbox:1", "d1")
    assert sweeper(client).sweep(NOW) == ["1"]
    assert client.lrange("celery", 0, -1) == [b"drain 1"]
    assert client.zscore(ACTIVE_KEY, "1") == NOW  # not again before another 90 s


@pytest.mark.parametrize("cover", ["locked", "parked"])
def test_a_locked_or_parked_conversation_is_left_alone(
    client: fakeredis.FakeRedis, cover: str
) -> None:
    client.zadd(ACTIVE_KEY, {"2": NOW - 100})
    client.rpush("tw:inbox:2", "d2")
    if cover == "locked":
        client.set("tw:lock:2", "token")
    else:
        client.zadd("tw:parked", {"2": NOW + 3600})
    assert sweeper(client).sweep(NOW) == []
    assert client.llen("celery") == 0
    assert client.zscore(ACTIVE_KEY, "2") == NOW


def test_an_empty_inbox_is_no_longer_active(client: fakeredis.FakeRedis) -> None:
    client.zadd(ACTIVE_KEY, {"3": NOW - 100})
    assert sweeper(client).sweep(NOW) == []
    assert client.zscore(ACTIVE_KEY, "3") is None


def test_a_recent_mark_is_not_stale(client: fakeredis.FakeRedis) -> None:
    client.zadd(ACTIVE_KEY, {"4": NOW - 10})
    client.rpush("tw:inbox:4", "d4")
    assert sweeper(client).sweep(NOW) == []
    assert client.llen("celery") == 0
