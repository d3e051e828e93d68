"""Send intents: marked once, found by a redo, cleared, confirmed by a replica or not sent."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from tests.helpers_redis import RedisServer, start_redis_server
from worker.ops.embedded_redis import free_port
from worker.storage import keys
from worker.storage.send_intents import Mark, SendIntents, field

DELIVERY, ACTION = "d1", "helpwave-ticket#0"


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_a_first_mark_is_stored_and_a_second_finds_it(client: fakeredis.FakeRedis) -> None:
    intents = SendIntents(client, connected_replicas=lambda: 0)
    assert intents.mark(DELIVERY, ACTION, 1_800_000_000.0) is Mark.MARKED
    assert client.hget(keys.delivery(DELIVERY), field(ACTION)) == b"1800000000.0"
    assert intents.mark(DELIVERY, ACTION, 1_800_000_001.0) is Mark.FOUND


def test_a_cleared_intent_can_be_marked_again(client: fakeredis.FakeRedis) -> None:
    intents = SendIntents(client, connected_replicas=lambda: 0)
    intents.mark(DELIVERY, ACTION, 1.0)
    intents.clear(DELIVERY, ACTION)
    assert intents.mark(DELIVERY, ACTION, 2.0) is Mark.MARKED


def test_intents_of_other_actions_are_independent(client: fakeredis.FakeRedis) -> None:
    intents = SendIntents(client, connected_replicas=lambda: 0)
    intents.mark(DELIVERY, ACTION, 1.0)
    assert intents.mark(DELIVERY, "helpwave-comment#0", 1.0) is Mark.MARKED


def test_without_info_no_replica_is_waited_for() -> None:
    """fakeredis has no INFO (nor have some managed Redis): marks are not confirmed."""
    intents = SendIntents(fakeredis.FakeRedis())
    assert intents.mark(DELIVERY, ACTION, 1.0) is Mark.MARKED


@pytest.fixture
def master() -> Iterator[RedisServer]:
    with start_redis_server() as server:
        yield server


def test_a_mark_no_replica_confirms_is_cleared_and_not_sent(master: RedisServer) -> None:
    """A replica counted as connected that does not acknowledge in time (WAIT -> 0)."""
    client = redis.Redis.from_url(master.url)
    intents = SendIntents(client, wait_ms=20, connected_replicas=lambda: 1)
    assert intents.mark(DELIVERY, ACTION, 1.0) is Mark.UNCONFIRMED
    assert client.hget(keys.delivery(DELIVERY), field(ACTION)) is None
    client.close()


def test_a_connected_replica_holds_the_intent_once_marked(master: RedisServer) -> None:
    client = redis.Redis.from_url(master.url)
    with tempfile.TemporaryDirectory(prefix="tw-replica-") as directory:
        replica = RedisServer(
            free_port(), Path(directory), extra=("--replicaof", "127.0.0.1", str(master.port))
        )
        replica.start()
        try:
            replica_client = redis.Redis.from_url(replica.url)
            deadline = time.monotonic() + 10
            while replica_client.info("replication")["master_link_status"] != "up":
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.05)
            intents = SendIntents(client, wait_ms=5000)
            assert intents.mark(DELIVERY, ACTION, 1.0) is Mark.MARKED
            assert replica_client.hget(keys.delivery(DELIVERY), field(ACTION)) == b"1.0"
            replica_client.close()
        finally:
            replica.stop()
    client.close()
