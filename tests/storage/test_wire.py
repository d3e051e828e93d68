"""The Celery wire format: our hand-built drain message is what kombu itself stores.

`celery.send_task` on a real Redis broker stores a message; `celery_message` must build the
same JSON, field for field, but for the per-message values (ids, tag, origin, reply_to). A Celery or
kombu upgrade that changes the format fails here, not in production.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from celery import Celery

from tests.helpers_redis import RedisServer
from worker.storage.keys import CELERY_QUEUE
from worker.storage.wire import DRAIN_TASK, celery_message, drain_message

# Per message: its ids and tag, and the sender's host and pid; per app: `reply_to` (where
# results would go: we keep none).
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "origin", "reply_to"}


def kombu_message(url: str, client: redis.Redis) -> dict[str, Any]:
    app = Celery("wire-test", broker=url)
    app.conf.update(
        task_serializer="json", accept_content=["json"], task_default_queue=CELERY_QUEUE
    )
    app.send_task(DRAIN_TASK, args=["1042"])
    [raw] = client.lrange(CELERY_QUEUE, 0, -1)
    client.delete(CELERY_QUEUE)
    return dict(json.loads(raw))


def without_per_message(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_per_message(v) for k, v in value.items() if k not in PER_MESSAGE}
    return value


def test_our_message_is_kombus_but_for_its_ids(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    theirs = kombu_message(redis_server.url, redis_client)
    ours = json.loads(celery_message(DRAIN_TASK, ["1042"]))
    assert without_per_message(ours) == without_per_message(theirs)
    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])
    for message in (ours, theirs):
        assert message["headers"]["id"] == message["headers"]["root_id"]
        assert message["headers"]["id"] == message["properties"]["correlation_id"]


def test_each_message_has_ids_of_its_own() -> None:
    first, second = json.loads(drain_message("7")), json.loads(drain_message("7"))
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    assert json.loads(base64.b64decode(first["body"]))[0] == ["7"]
