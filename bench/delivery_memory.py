"""Memory of parked actions for `bench.delivery`: INFO used_memory deltas on a scratch Redis.

Fills a scratch redis-server part by part (parked entry, inbox entry, decided delivery hash,
the other per-conversation keys) with `entries` of each and reads `used_memory` after each.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench.delivery_runs import FIRST_CONVERSATION, RULES, accept_all, message
from tests.helpers_redis import start_redis_server


@dataclass(frozen=True)
class Memory:
    """Bytes per parked action, by part (INFO used_memory deltas over `entries`)."""

    entries: int
    parked_entry: float  # tw:parked member (numeric conversation key) + score
    inbox_entry: float  # tw:inbox:{conv}: a list holding the delivery id
    delivery_hash: float  # tw:delivery:{id} decided (raw, decision, state_before), with TTL
    other: float  # tw:seen:{id}, tw:state:{conv}, tw:decisions:conv:{conv}

    @property
    def action(self) -> float:
        """What the brief counts: delivery hash + inbox entry + parked entry."""
        return self.parked_entry + self.inbox_entry + self.delivery_hash

    @property
    def everything(self) -> float:
        return self.action + self.other


def used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def decided_delivery(url: str, rules: Path) -> dict[bytes, bytes]:
    """The fields of one delivery as a parked action holds them: accepted and decided."""
    from worker.engine import evaluate
    from worker.live_rules import RuleSource
    from worker.storage import keys
    from worker.storage.conversations import ConversationStore

    conv = FIRST_CONVERSATION
    asyncio.run(accept_all(url, [message(conv)]))
    client = redis.Redis.from_url(url)
    store = ConversationStore(client)
    delivery_id = store.head(str(conv))
    assert delivery_id is not None
    record = store.load(delivery_id)
    assert record is not None
    from worker.engine.envelope import parse_webhook
    from worker.engine.model import Event

    event = parse_webhook(record.raw)
    assert isinstance(event, Event)
    state = store.state(str(conv))
    decision = evaluate(
        RuleSource(rules).current(), event, state, now=datetime.fromtimestamp(time.time(), UTC)
    )
    store.store_decision(record, decision, state)
    fields: dict[bytes, bytes] = client.hgetall(keys.delivery(delivery_id))  # type: ignore[assignment]
    client.close()
    return fields


def measure_memory(entries: int) -> Memory:
    """Fill a scratch redis-server part by part and read INFO memory after each part."""
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp, start_redis_server() as server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        template = decided_delivery(server.url, rules)
        client = redis.Redis.from_url(server.url)
        client.flushall()
        convs = [str(FIRST_CONVERSATION + i) for i in range(entries)]
        ids = [f"{i:032x}" for i in range(entries)]  # delivery ids: 32 hex digits
        due = time.time() + 3600
        state = json.dumps({"ticket_open": True})
        sizes: list[float] = []

        def part(fill: Callable[[Any, int], None]) -> None:
            before = used_memory(client)
            pipe = client.pipeline(transaction=False)
            for i in range(entries):
                fill(pipe, i)
                if i % 5000 == 4999:
                    pipe.execute()
            pipe.execute()
            sizes.append((used_memory(client) - before) / entries)

        def delivery(pipe: Any, i: int) -> None:
            fields = dict(template)
            fields[b"raw"] = message(int(convs[i]))
            fields[b"conversation"] = convs[i].encode()
            pipe.hset(f"tw:delivery:{ids[i]}", mapping=fields)
            pipe.expire(f"tw:delivery:{ids[i]}", 7 * 86400)

        def other(pipe: Any, i: int) -> None:
            pipe.set(f"tw:seen:{ids[i]}", "1", ex=86400)
            pipe.set(f"tw:state:{convs[i]}", state)
            pipe.lpush(f"tw:decisions:conv:{convs[i]}", ids[i])

        part(lambda pipe, i: pipe.zadd("tw:parked", {convs[i]: due + i}))
        part(lambda pipe, i: pipe.rpush(f"tw:inbox:{convs[i]}", ids[i]))
        part(delivery)
        part(other)
        client.close()
    return Memory(entries, *sizes)
