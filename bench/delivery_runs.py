"""The variants of `bench.delivery`: our deployment and the naive Celery baseline, each
draining the same backlog of opens against the fake AwalChat, measured from its call log.

`drain_ratio` compares a run with a perfect client: one that knows the provider's windows
exactly and sends `limit` calls at the very start of each window, its answers taking no
time. From the run's first call, it needs `ceil(n / limit) - 1` windows (first-call-aligned
windows: that many window lengths; clock-aligned: up to the start of that window of the
clock). The ratio is that time over ours (first call -> last success).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import redis

from tests.fakes.common import CallRecord
from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import start_redis_server
from tests.integration.harness import Deployment
from worker.ops.supervisor import stop_processes

ROOT = Path(__file__).resolve().parent.parent
LIMIT, WINDOW = 20, 5.0
FIRST_CONVERSATION = 700_001
CUTOFF = 120.0  # seconds per variant, to keep the whole bench within a few minutes
RULES = """\
version: 1
rules:
  - name: open-on-every-message
    on: message.received
    then: [open_ticket]
"""
Alignment = Literal["clock", "first_call"]


@dataclass(frozen=True)
class Result:
    """One variant's figures, from the fake's call log."""

    name: str
    alignment: Alignment
    calls: int
    ok: int
    rejected_429: int
    other: int
    duplicates: int
    lost: int
    wall: float  # first call to last success
    perfect: float  # what a perfect client needs from the same first call
    total: float  # queueing to last success
    per_window: str  # 200s per provider window, for diagnosis
    cutoff: float | None = None  # set when stopped with opens still missing

    @property
    def ratio(self) -> float:
        """Perfect client's drain time / ours (1.0: as fast as possible)."""
        return self.perfect / self.wall if self.wall > 0 and not self.lost else 0.0


def message(conversation: int) -> bytes:
    """A distinct message.received webhook for `conversation`."""
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {
                "message_id": f"wamid.bench.{conversation}",
                "conversation_id": conversation,
                "from": "966500000001",
                "to": "966500000099",
                "type": "text",
                "body": "hello, I need help with my order",
                "timestamp": "2026-11-27T10:00:00Z",
            },
        },
        separators=(",", ":"),
    ).encode()


def conversations(count: int) -> list[int]:
    return list(range(FIRST_CONVERSATION, FIRST_CONVERSATION + count))


async def accept_all(redis_url: str, bodies: list[bytes]) -> None:
    """Accept every body through the receiver's own atomic script (no HTTP)."""
    from worker.engine.envelope import parse_webhook
    from worker.engine.model import Event
    from worker.storage.clients import async_redis
    from worker.storage.inbox import Inbox

    client = async_redis(redis_url, timeout=5.0)
    inbox = Inbox(client, deadline=10.0)
    try:
        for raw in bodies:
            event = parse_webhook(raw)
            assert isinstance(event, Event)
            result = await inbox.accept(raw, event, dry_run=False)
            assert not result.duplicate
    finally:
        await client.aclose()


def opened(fake: FakeProvidersServer) -> int:
    tickets = fake.control.state()["awalchat"]["tickets"]
    return sum(1 for state in tickets.values() if state["opens"] > 0)


def wait_all_opened(
    fake: FakeProvidersServer, name: str, count: int, *, alive: Callable[[], bool]
) -> None:
    """Poll the fake until `count` conversations are open (or CUTOFF); progress every 5 s."""
    started = time.monotonic()
    next_print = started
    while True:
        done = opened(fake)
        now = time.monotonic()
        if done >= count or now - started > CUTOFF or not alive():
            print(f"  [{name}] {done}/{count} opened after {now - started:.0f} s", flush=True)
            return
        if now >= next_print:
            print(f"  [{name}] {done}/{count} opened, {now - started:.0f} s", flush=True)
            next_print = now + 5.0
        time.sleep(0.2)


def perfect_drain(alignment: Alignment, first: float, n: int) -> float:
    """Seconds a perfect client needs from its first call (at `first`) to its `n`th success."""
    windows = math.ceil(n / LIMIT) - 1
    if alignment == "first_call":
        return windows * WINDOW
    return max(0.0, (math.floor(first / WINDOW) + windows) * WINDOW - first)


def per_window(calls: list[CallRecord], alignment: Alignment) -> str:
    """200s per provider window (clock windows: by the clock; else from the first call)."""
    ok = [call.time for call in calls if call.status == 200]
    if not ok:
        return ""
    origin = min(call.time for call in calls)
    if alignment == "clock":
        origin = math.floor(origin / WINDOW) * WINDOW
    counts = Counter(int((t - origin) // WINDOW) for t in ok)
    return " ".join(str(counts[i]) for i in range(max(counts) + 1))


def analyse(
    name: str, alignment: Alignment, calls: list[CallRecord], wanted: list[int], queued_at: float
) -> Result:
    """The figures of one variant from the fake's call log."""
    statuses = Counter(call.status for call in calls)
    ok_calls = [call for call in calls if call.status == 200]
    per_conversation = Counter(call.path.rsplit("/", 1)[-1] for call in ok_calls)
    duplicates = sum(1 for n in per_conversation.values() if n > 1)
    lost = sum(1 for conv in wanted if per_conversation[str(conv)] == 0)
    first = min((call.time for call in calls), default=queued_at)
    last_ok = max((call.time for call in ok_calls), default=first)
    return Result(
        name=name,
        alignment=alignment,
        calls=len(calls),
        ok=len(ok_calls),
        rejected_429=statuses[429],
        other=len(calls) - statuses[200] - statuses[429],
        duplicates=duplicates,
        lost=lost,
        wall=last_ok - first,
        perfect=perfect_drain(alignment, first, len(wanted)),
        total=last_ok - queued_at,
        per_window=per_window(calls, alignment),
        cutoff=CUTOFF if lost else None,
    )


def prepare(fake: FakeProvidersServer, alignment: Alignment) -> None:
    fake.control.reset()
    fake.control.configure(awalchat={"window_alignment": alignment})


def run_ours(
    fake: FakeProvidersServer,
    wanted: list[int],
    workers: int,
    alignment: Alignment,
    *,
    configured: bool = True,
) -> Result:
    """`serve` + `workers` x `work --concurrency 1` on a fresh redis, with `AWALCHAT_RATE`
    set to the fake's rate, or (`configured=False`) learning from the headers alone."""
    name = "ours" if configured else "ours, headers only"
    prepare(fake, alignment)
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp, start_redis_server() as server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        queued_at = time.time()
        asyncio.run(accept_all(server.url, [message(c) for c in wanted]))
        rate = f"{LIMIT}/{WINDOW:g}s" if configured else ""
        env = {**fake.env(), "AWALCHAT_RATE": rate}
        with Deployment(server.url, env=env, rules=rules, workers=workers, concurrency=1) as dep:

            def alive() -> bool:
                return all(p is not None and p.poll() is None for p in dep.workers)

            wait_all_opened(fake, name, len(wanted), alive=alive)
            time.sleep(1.0)  # any extra call would show up now
            calls = fake.control.calls("awalchat")
            if not alive():
                print(dep.logs()[-3000:], file=sys.stderr)
    return analyse(name, alignment, calls, wanted, queued_at)


@contextmanager
def naive_workers(
    env: dict[str, str], count: int, rate_limit: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    logs: list[IO[bytes]] = []
    procs: list[subprocess.Popen[bytes]] = []
    command = [
        sys.executable,
        *("-m", "celery", "-A", "bench.delivery_naive", "worker"),
        *("--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    try:
        for index in range(count):
            log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [*command, "-n", f"naive{index}@%h"],
                    cwd=ROOT,
                    env={**env, "NAIVE_RATE_LIMIT": rate_limit},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield procs
    finally:
        stop_processes(procs, timeout=15)
        for handle in logs:
            handle.close()


def run_naive(
    fake: FakeProvidersServer,
    wanted: list[int],
    workers: int,
    alignment: Alignment,
    *,
    rate_limit: str,
    name: str,
) -> Result:
    """Celery's `rate_limit` per worker: `workers` x `celery worker --concurrency 1`."""
    prepare(fake, alignment)
    with start_redis_server() as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWALCHAT_", "HELPWAVE_"))},
            **fake.env(),
            "REDIS_URL": server.url,
            "PYTHONPATH": str(ROOT),
        }
        from celery import Celery

        producer = Celery("naive-producer", broker=server.url)
        queued_at = time.time()
        with producer.connection_for_write() as connection:
            for conv in wanted:
                producer.send_task(
                    "bench.delivery_naive.open_ticket", args=[str(conv)], connection=connection
                )
        with naive_workers(env, workers, rate_limit) as procs:
            wait_all_opened(
                fake, name, len(wanted), alive=lambda: all(p.poll() is None for p in procs)
            )
            time.sleep(1.0)
            calls = fake.control.calls("awalchat")
    return analyse(name, alignment, calls, wanted, queued_at)


def limiter_fields(client: redis.Redis) -> dict[str, str]:
    """The first rate budget hash, for debugging a run by hand."""
    found = client.keys("tw:rl:*")
    if not found:
        return {}
    raw: dict[bytes, bytes] = client.hgetall(found[0])  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}
