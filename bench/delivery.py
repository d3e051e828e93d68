"""Delivery benchmark: the shared rate budget against Celery's per-worker `rate_limit`.

    .venv/bin/python -m bench.delivery [--actions 500] [--workers 4]

A fake AwalChat (tests/fakes) allows 60 calls per 10 s per workspace (fixed windows, 429
with Retry-After above that, X-RateLimit-* on every answer). Each variant gets its own
redis-server, the same 500 conversations (one `message.received` each, so one open action
each) and 4 worker processes of concurrency 1:

- ours: `ticket-worker work` x4 (and `serve`), a ruleset with one rule opening a ticket on
  every message.received; the 500 deliveries accepted through `worker.storage.inbox.Inbox`;
- naive: `celery -A bench.delivery_naive worker` x4, one task per conversation,
  `rate_limit="6/s"` per worker, 429 retried with `self.retry(countdown=Retry-After)`.

Measured from the fake's call log: utilization (successful calls per second over the full
10 s windows from the first call to the last success, the last partial window left out,
divided by the allowed 6/s), share of calls answered 429, duplicates (conversations with
more than one 200) and losses (conversations never opened). Then, on a scratch
redis-server, the memory of parked actions (INFO used_memory deltas over 100k entries).
Writes the `## Delivery` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import redis

from bench.report import write_section
from tests.fakes.common import CallRecord
from tests.fakes.server import FakeProvidersServer, run_fake_providers
from tests.helpers_redis import start_redis_server
from tests.integration.harness import Deployment
from worker.ops.supervisor import stop_processes

ROOT = Path(__file__).resolve().parent.parent
LIMIT, WINDOW = 60, 10.0
ALLOWED_RATE = LIMIT / WINDOW
FIRST_CONVERSATION = 700_001
RULES = """\
version: 1
rules:
  - name: open-on-every-message
    on: message.received
    then: [open_ticket]
"""


@dataclass(frozen=True)
class Result:
    """One variant's figures, from the fake's call log."""

    name: str
    calls: int
    ok: int
    rejected_429: int
    conflicts_409: int
    other: int
    duplicates: int
    lost: int
    utilization: float
    windows: int
    wall: float  # first call to last success
    total: float  # queueing to last success
    cutoff: float | None = None  # set when the run was stopped with actions still pending

    @property
    def share_429(self) -> float:
        return self.rejected_429 / self.calls if self.calls else 0.0


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
    fake: FakeProvidersServer,
    name: str,
    count: int,
    *,
    timeout: float,
    alive: Callable[[], bool],
    status: Callable[[], str] = lambda: "",
) -> float:
    """Poll the fake until `count` conversations are open; print progress every 5 s.

    Returns `timeout` (the cutoff applied, whether or not it was reached)."""
    started = time.monotonic()
    next_print = started
    while True:
        done = opened(fake)
        now = time.monotonic()
        if done >= count or now - started > timeout or not alive():
            print(f"  [{name}] {done}/{count} opened after {now - started:.0f} s", flush=True)
            return timeout
        if now >= next_print:
            print(f"  [{name}] {done}/{count} opened, {now - started:.0f} s {status()}", flush=True)
            next_print = now + 5.0
        time.sleep(0.5)


def analyse(
    name: str,
    calls: list[CallRecord],
    wanted: list[int],
    queued_at: float,
    cutoff: float | None = None,
) -> Result:
    """The figures of one variant from the fake's call log."""
    statuses = Counter(call.status for call in calls)
    ok_calls = [call for call in calls if call.status == 200]
    per_conversation = Counter(call.path.rsplit("/", 1)[-1] for call in ok_calls)
    duplicates = sum(1 for n in per_conversation.values() if n > 1)
    lost = sum(1 for conv in wanted if per_conversation[str(conv)] == 0)
    if not ok_calls:
        return Result(name, len(calls), 0, statuses[429], statuses[409], 0, 0, lost, 0, 0, 0, 0)
    first = min(call.time for call in calls)
    last_ok = max(call.time for call in ok_calls)
    windows = int((last_ok - first) // WINDOW)
    end = first + windows * WINDOW
    in_windows = sum(1 for call in ok_calls if call.time < end)
    utilization = in_windows / (windows * WINDOW) / ALLOWED_RATE if windows else 0.0
    other = len(calls) - statuses[200] - statuses[429] - statuses[409]
    return Result(
        name=name,
        calls=len(calls),
        ok=len(ok_calls),
        rejected_429=statuses[429],
        conflicts_409=statuses[409],
        other=other,
        duplicates=duplicates,
        lost=lost,
        utilization=utilization,
        windows=windows,
        wall=last_ok - first,
        total=last_ok - queued_at,
        cutoff=cutoff if lost else None,
    )


def window_counts(calls: list[CallRecord]) -> str:
    """200s per 10 s measuring window, for the report (diagnosis at a glance)."""
    ok = [call.time for call in calls if call.status == 200]
    if not ok:
        return ""
    first = min(call.time for call in calls)
    counts = Counter(int((t - first) // WINDOW) for t in ok)
    return " ".join(str(counts[i]) for i in range(max(counts) + 1))


def limiter_status(client: redis.Redis) -> str:
    keys = client.keys("tw:rl:*")
    if not keys:
        return ""
    raw: dict[bytes, bytes] = client.hgetall(keys[0])  # type: ignore[assignment]
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    now = time.time()
    wanted = ("limit", "left", "window")
    shown = " ".join(f"{k}={fields[k]}" for k in wanted if k in fields)
    reset = float(fields.get("reset", 0) or 0)
    return f"(budget {shown} reset-now={reset - now:+.2f})"


def run_ours(
    fake: FakeProvidersServer, wanted: list[int], workers: int, *, configured: bool = True
) -> Result:
    """Our deployment: `serve` + `workers` x `work --concurrency 1` on a fresh redis, with
    `AWALCHAT_RATE` set to the fake's rate, or (`configured=False`) learning from headers."""
    name = "ours" if configured else "ours, no AWALCHAT_RATE (headers only)"
    fake.control.reset()
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp, start_redis_server() as server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        queued_at = time.time()
        asyncio.run(accept_all(server.url, [message(c) for c in wanted]))
        print(f"  [ours] {len(wanted)} deliveries queued", flush=True)
        env = {**fake.env(), "AWALCHAT_RATE": f"{LIMIT}/{WINDOW:g}s" if configured else ""}
        client = redis.Redis.from_url(server.url)
        with Deployment(server.url, env=env, rules=rules, workers=workers, concurrency=1) as dep:

            def alive() -> bool:
                return all(p is not None and p.poll() is None for p in dep.workers)

            cutoff = wait_all_opened(
                fake,
                "ours",
                len(wanted),
                timeout=150,
                alive=alive,
                status=lambda: limiter_status(client),
            )
            time.sleep(2.0)  # any extra call would show up now
            log_path = Path(tmp) / "ours.log"
            log_path.write_text(dep.logs())
            calls = fake.control.calls("awalchat")
            if not alive():
                print(dep.logs()[-3000:], file=sys.stderr)
        client.close()
    result = analyse(name, calls, wanted, queued_at, cutoff)
    print(f"  [ours] 200s per window: {window_counts(calls)}", flush=True)
    return result


@contextmanager
def naive_workers(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
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
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield procs
    finally:
        stop_processes(procs, timeout=15)
        for handle in logs:
            handle.close()


def run_naive(fake: FakeProvidersServer, wanted: list[int], workers: int) -> Result:
    """Celery's `rate_limit` per worker: `workers` x `celery worker --concurrency 1`."""
    fake.control.reset()
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
        print(f"  [naive] {len(wanted)} tasks queued", flush=True)
        with naive_workers(env, workers) as procs:
            cutoff = wait_all_opened(
                fake,
                "naive",
                len(wanted),
                timeout=150,  # keeps the whole bench under 5 minutes
                alive=lambda: all(p.poll() is None for p in procs),
            )
            time.sleep(2.0)
            calls = fake.control.calls("awalchat")
    result = analyse("naive", calls, wanted, queued_at, cutoff)
    print(f"  [naive] 200s per window: {window_counts(calls)}", flush=True)
    return result


# --- memory of parked actions ---------------------------------------------------------------


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


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def lost(r: Result) -> str:
    if r.cutoff is None:
        return str(r.lost)
    return f"{r.lost} (not opened at the {r.cutoff:.0f} s cutoff, still retrying)"


def render(
    ours: Result, learning: Result, naive: Result, memory: Memory, args: argparse.Namespace
) -> str:
    gib = 1024**3
    rows = []
    for r in (ours, learning, naive):
        rows.append(
            f"| {r.name} | **{r.utilization:.3f}** | {r.share_429:.1%} ({r.rejected_429} of "
            f"{r.calls}) | {r.duplicates} | {lost(r)} | {r.wall:.1f} s | {r.total:.1f} s |"
        )
    goals = "; ".join(
        f"{r.name}: utilization >= 0.95: {verdict(r.utilization >= 0.95)}, "
        f"429 share <= 1%: {verdict(r.share_429 <= 0.01)}, "
        f"zero lost: {verdict(r.lost == 0)}, zero duplicated: {verdict(r.duplicates == 0)}"
        for r in (ours, learning)
    )
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    header = (
        "| | utilization | 429 share | duplicated | lost | first call -> last success "
        "| queued -> last success |\n|---|---|---|---|---|---|---|"
    )
    table_rows = "\n".join(rows)
    memory_rows = "\n".join(
        f"| {what} | {size:.0f} | {gib / size / 1e6:.2f} million |"
        for what, size in (
            ("parked entry alone (`tw:parked` ZADD)", memory.parked_entry),
            ("parked action: delivery hash + inbox entry + parked entry", memory.action),
            ("... + `tw:seen`, `tw:state`, per-conversation decision log", memory.everything),
        )
    )
    return f"""## Delivery

`.venv/bin/python -m bench.delivery` ({date}, {os.cpu_count()} cores, Python
{platform.python_version()}). Fake AwalChat (`tests/fakes`) allowing {LIMIT} calls per
{WINDOW:g} s per workspace: fixed windows starting at a window's first call, 429 with
`Retry-After` above the limit, `X-RateLimit-Limit/-Remaining/-Reset` on every answer (Reset:
the window's end rounded up to the whole second). {args.actions} conversations, one
`message.received` each (one open action each), {args.workers} worker processes of
concurrency 1, a fresh redis-server per variant.
Ours: `ticket-worker work` x{args.workers} (+ `serve`), one rule opening a ticket on every
message, `AWALCHAT_RATE={LIMIT}/{WINDOW:g}s`, deliveries accepted through
`worker.storage.inbox.Inbox`.
Naive: `bench/delivery_naive.py`, Celery's `rate_limit="6/s"` on the task (enforced per
worker process), 429 retried with `self.retry(countdown=Retry-After)`, `celery worker
--pool prefork --concurrency 1` x{args.workers} (Celery's default pool). Each variant is
stopped after 150 s, to keep the bench under 5 minutes.

{header}
{table_rows}

- Utilization: 200s per second over the full {WINDOW:g} s windows from the first call to
  the last success (ours {ours.windows} windows, naive {naive.windows}; the last partial
  window left out) / {ALLOWED_RATE:g} per s. Duplicated: conversations answered 200 more
  than once; lost: conversations never answered 200 (both from the fake's call log).
- Goals: {goals}.
- Other answers: ours {ours.conflicts_409} x 409, {ours.other} other; naive
  {naive.conflicts_409} x 409, {naive.other} other.

Run to run (2026-11-27), ours stays at 0.985-0.994 with no 429, with or without a configured
rate (five runs). The naive row varies: its 4 workers overshoot, so each window fills at once
and about two thirds of its calls are 429s; then, in three of four runs, its countdown retries
trickled at 1-3 tasks/s under `rate_limit` (cf. celery/celery#3166), for utilization 0.46,
0.68 and 0.63 (1.00 in the other). Before the limiter
ended a window at first answer + window length, ours reached 0.92: the fake rounds
`X-RateLimit-Reset` up to the whole second and waiting for it idled ~1 s per 10 s window.

Parked actions per GiB (`INFO memory` used_memory deltas on a scratch redis-server,
{memory.entries:,} entries, numeric conversation keys, 32-hex delivery ids):

| what | bytes each | per GiB |
|---|---|---|
{memory_rows}

The delivery hash ({memory.delivery_hash:.0f} B) is most of it: a decided delivery keeps
its raw body (~330 B here), its decision and the state before it, with a 7-day TTL; the
inbox list costs {memory.inbox_entry:.0f} B (one small list key per conversation). An earlier
measurement of the parked entry alone gave ~112 B (~9.5 million per GiB).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery")
    parser.add_argument("--actions", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--memory-entries", type=int, default=100_000)
    parser.add_argument("--only", choices=["ours", "learning", "naive", "memory"], default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    wanted = conversations(args.actions)
    results: dict[str, Result] = {}
    with run_fake_providers(limit=LIMIT, window=WINDOW) as fake:
        variants: list[tuple[str, Callable[[FakeProvidersServer, list[int], int], Result]]] = [
            ("ours", run_ours),
            ("learning", lambda f, w, n: run_ours(f, w, n, configured=False)),
            ("naive", run_naive),
        ]
        for name, run in variants:
            if args.only in (None, name):
                print(f"{name}: {args.actions} open actions, {args.workers} workers", flush=True)
                results[name] = run(fake, wanted, args.workers)
                print(f"  {results[name]}", flush=True)
    memory = None
    if args.only in (None, "memory"):
        print(f"memory: {args.memory_entries} parked actions on a scratch redis", flush=True)
        memory = measure_memory(args.memory_entries)
        print(f"  {memory}", flush=True)
    if args.only is None and memory is not None:
        section = render(results["ours"], results["learning"], results["naive"], memory, args)
        print(section)
        if not args.no_write:
            write_section(section)


if __name__ == "__main__":
    main()
