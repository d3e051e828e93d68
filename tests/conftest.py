"""Fixtures shared by every tier: a real redis-server per test module that needs one, a Redis
that is down, and the fake providers (tests/fakes) as a session-wide process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.helpers_redis import RedisServer, free_port, silent_server, start_redis_server

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free port, empty."""
    with start_redis_server() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(params=["refusing connections", "never answering"])
def down_redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis that is down: nothing listens on its port, or it accepts and never answers."""
    if request.param == "refusing connections":
        yield f"redis://127.0.0.1:{free_port()}/0"
        return
    with silent_server() as url:
        yield url
