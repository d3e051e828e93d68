"""Keys an earlier version left without an expiry get one (or go) when a worker starts."""

from __future__ import annotations

import pytest
import redis

from worker.storage import keys
from worker.storage.upgrade import expire_legacy_keys


def test_legacy_keys_get_an_expiry_and_stateless_events_lose_their_state(
    redis_client: redis.Redis,
) -> None:
    client = redis_client
    client.set("tw:state:1", "{}")
    client.set("tw:state:d:" + "a" * 32, "{}")
    client.hset("tw:delivery:" + "b" * 32, "raw", "{}")
    client.rpush("tw:inbox:1", "x")
    client.rpush("tw:decisions:conv:1", "x")
    client.set("tw:state:2", "{}", ex=50)  # already bounded: untouched
    client.rpush("tw:decisions", "x")  # bounded by length: untouched
    assert expire_legacy_keys(client, retention=3600, batch=2) == 5
    assert client.exists("tw:state:d:" + "a" * 32) == 0
    for key in ("tw:state:1", "tw:delivery:" + "b" * 32, "tw:inbox:1", "tw:decisions:conv:1"):
        assert 3500 < client.ttl(key) <= 3600, key
    assert client.ttl("tw:state:2") <= 50
    assert client.ttl("tw:decisions") == -1
    assert expire_legacy_keys(client, retention=3600, force=True) == 0  # idempotent


def test_the_walk_runs_once_a_day_and_again_after_a_failed_one(
    redis_client: redis.Redis,
) -> None:
    client = redis_client
    assert expire_legacy_keys(client, retention=3600) == 0
    assert 0 < client.ttl(keys.UPGRADED) <= keys.UPGRADE_CHECK_TTL
    client.set("tw:state:1", "{}")
    assert expire_legacy_keys(client, retention=3600) == 0  # another start, the same day
    assert client.ttl("tw:state:1") == -1
    client.delete(keys.UPGRADED)  # a day later
    assert expire_legacy_keys(client, retention=3600) == 1


def test_a_walk_cut_short_by_redis_leaves_no_mark(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_client
    client.set("tw:state:1", "{}")
    with monkeypatch.context() as patched:
        patched.setattr(client, "scan", failing)
        with pytest.raises(redis.ConnectionError):
            expire_legacy_keys(client, retention=3600)
    assert client.exists(keys.UPGRADED) == 0
    assert expire_legacy_keys(client, retention=3600) == 1


def failing(*args: object, **kwargs: object) -> object:
    raise redis.ConnectionError("connection reset")
