"""Storage benchmark: Redis bytes per event and per conversation, as the README states them.

    .venv/bin/python -m bench.storage [--status 2000] [--conversations 300] [--messages 5]

Real parts: a redis-server of its own, `ticket-worker serve` and `work`, the fake providers
and the shipped rules (`rules/`: AwalChat tickets and the HelpWave mirror). Figures are
`used_memory` deltas (what Redis really spends, allocator included) once every delivery is
decided and acted on, divided by the count:

- an event of no conversation (`message.status.updated`; no shipped rule listens to it),
  kept QUIET_RECORD_TTL (24 h);
- a conversation's first event (its state, its log, its first record);
- each further event of a conversation, kept STATE_RETENTION (at most
  DECISION_LOG_CONV_LIMIT records per conversation).

Writes the `## Storage` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.report import write_section
from tests.fakes.server import run_fake_providers
from tests.helpers_redis import start_redis_server
from tests.integration.harness import Deployment
from tests.integration.test_faults import settled
from worker.storage import keys
from worker.storage.decision_index import newest_ids

ROOT = Path(__file__).resolve().parent.parent


def envelope(event: str, data: dict[str, object]) -> bytes:
    body = {"event": event, "timestamp": "2026-11-27T10:00:00Z", "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def status(n: int) -> bytes:
    """A status update as AwalChat sends several per message sent (about 180 bytes)."""
    return envelope(
        "message.status.updated",
        {
            "message_id": f"wamid.HBgMOTY2NTAwMDAwMDAxFQIAERgSN0Q{n:012d}",
            "status": "delivered",
            "timestamp": "2026-11-27T10:00:00Z",
        },
    )


def message(conversation: int, n: int) -> bytes:
    """A customer's text message (about 330 bytes)."""
    return envelope(
        "message.received",
        {
            "message_id": f"wamid.HBgMOTY2NTAwMDAwMDAxFQIAEhgUM0E{conversation:08d}{n:04d}",
            "conversation_id": conversation,
            "from": f"9665{conversation:08d}",
            "to": "966500000099",
            "type": "text",
            "body": "Hello, my order has not arrived yet, can you help me please?",
            "timestamp": "2026-11-27T10:00:00Z",
        },
    )


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(
    dep: Deployment, client: redis.Redis, bodies: list[bytes], settle: Callable[[], bool]
) -> float:
    """Bytes of Redis memory per body once all are decided and acted on."""
    before = used(client)
    ids = []
    for body in bodies:
        response = dep.post(body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["delivery_id"])
    dep.wait_for(lambda: settled(client, ids) and settle(), timeout=600, what="all settled")
    client.memory_purge()
    return (used(client) - before) / len(bodies)


def fill_decision_log(client: redis.Redis, batch: int = 5000) -> None:
    """DECISION_LOG_LIMIT entries in the global decision stream, as `store_decision` adds."""
    for start in range(0, keys.DECISION_LOG_LIMIT, batch):
        pipe = client.pipeline(transaction=False)
        for n in range(start, start + batch):
            fields: dict[Any, Any] = {
                "d": f"{n:032x}",
                "c": "",
                "e": "message.status.updated",
                "r": "",
            }
            pipe.xadd(keys.DECISIONS, fields, maxlen=keys.DECISION_LOG_LIMIT, approximate=True)
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--messages", type=int, default=5)
    args = parser.parse_args()
    with (
        start_redis_server() as server,
        run_fake_providers() as fake,
        Deployment(server.url, env=fake.env(), rules=ROOT / "rules", concurrency=4) as dep,
    ):
        client = redis.Redis.from_url(server.url)

        def idle() -> bool:
            return client.llen(keys.CELERY_QUEUE) == 0 and client.zcard(keys.ACTIVE) == 0

        # Fill the global decision log to its bound first (entries shaped as the worker's):
        # from then on it is a constant, each new entry pushing the oldest out.
        fill_decision_log(client)
        quiet = measure(dep, client, [status(n) for n in range(10**6, 10**6 + args.status)], idle)
        conversations = range(10_000, 10_000 + args.conversations)
        first = measure(dep, client, [message(c, 0) for c in conversations], idle)
        later = measure(
            dep,
            client,
            [message(c, n) for n in range(1, args.messages) for c in conversations],
            idle,
        )
        [newest] = newest_ids(client, 1)
        record = client.memory_usage(keys.delivery(newest))
    days = keys.DEFAULT_STATE_RETENTION // 86400
    conversation = first + (args.messages - 1) * later
    lines = [
        "## Storage",
        "",
        f"Redis memory (`used_memory` deltas, allocator included) once every event is decided "
        f"and acted on, with the shipped rules; {platform.machine()}, Python "
        f"{platform.python_version()}, `python -m bench.storage`.",
        "",
        "| what | bytes | kept |",
        "|---|---|---|",
        f"| an event of no conversation (`message.status.updated`, no rule listens) | "
        f"{quiet:,.0f} | 24 h |",
        f"| a conversation's first event (state, its log, the record) | {first:,.0f} | "
        f"{days} days after its last event |",
        f"| each further event of a conversation | {later:,.0f} | the same; at most "
        f"{keys.DECISION_LOG_CONV_LIMIT} records per conversation |",
        f"| a conversation of {args.messages} messages | {conversation:,.0f} | |",
        "",
        f"One decided record of a customer message, alone: {record} bytes (`MEMORY USAGE`). "
        f"Before bounded storage an event of no conversation cost about 1.8 KiB for 7 days "
        f"and left a state key forever.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    write_section(report)


if __name__ == "__main__":
    main()
