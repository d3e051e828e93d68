"""Timers benchmark: our waits (rules with `after:`) against Celery's own countdown/ETA.

    .venv/bin/python -m bench.timers [--waits 100000] [--due 10000] [--rounds 3]

1. 100,000 pending waits, each in a conversation of its own, due in an hour:
   - ours: the decisions `evaluate` makes for a rule `after: 1h`, stored as the worker
     stores them (`ConversationStore.store_decision`: the wait in the conversation's state,
     one member of `tw:timers`); memory per wait is the `used_memory` delta against the same
     conversations decided by the same rule without `after:` (what a wait adds);
   - Celery: `apply_async(countdown=3600)` of a one-argument task, no worker running (the
     messages wait in the broker, as they would for a worker that is down or busy).
   Time to schedule them, and Redis bytes per wait.
2. `--due` waits (10,000) due in the same second, no rate limit, one worker process with 4
   threads, each wait's action one AwalChat `close_ticket` call to the fake provider:
   - ours: `ticket-worker work --concurrency 4`;
   - Celery: `celery worker --pool threads --concurrency 4` running a task that makes the
     same call with the same client, `apply_async(eta=due)` (bench/timers_celery.py), the
     worker's settings as ours (acks late, prefetch 1, JSON);
   - floor: the same calls made by the bare client alone, 4 threads in one process started
     at the due second (bench/timers_floor.py): no Redis, no decisions, no queue, the
     soonest any design with one worker process of 4 threads could make them here.
   How late each call starts (the fake's call log) after the due second: median and last,
   ours and Celery in `--rounds` interleaved rounds (each one's median run reported: the
   machine is shared, and one run alone can be off by half), the floor once,
   and the CPU seconds the fake provider itself spent answering them (/proc). Goal: the
   last one starts <= 2 s late; a floor above 2 s means no design with one worker process
   of 4 threads meets it on this machine.

Writes the `## Timers` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.e2e import cpu_seconds
from bench.report import median_run, write_section
from tests.fakes.server import FakeProvidersServer, run_fake_providers
from tests.helpers_redis import start_redis_server
from worker.engine import Ruleset, evaluate, load_ruleset_from_texts
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.ops.supervisor import stop_processes
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord

ROOT = Path(__file__).resolve().parent.parent
RULES = """\
version: 1
rules:
  - name: close-later
    on: message.received
    {after}then: [close_ticket]
"""
FIRST = 500_000


def rules_text(after: str | None) -> str:
    return RULES.format(after=f"after: {after}\n    " if after else "")


def ruleset(after: str | None) -> Ruleset:
    return load_ruleset_from_texts({"timers.yaml": rules_text(after)})


def event(conversation: int) -> Event:
    data = {"conversation_id": conversation, "from": "966500000001", "body": "hello"}
    raw = json.dumps({"event": "message.received", "data": data}).encode()
    parsed = parse_webhook(raw)
    assert isinstance(parsed, Event)
    return parsed


def store_decisions(url: str, count: int, *, after: str | None, now: datetime) -> float:
    """Decide and store one event for each of `count` conversations; return the seconds."""
    rules = ruleset(after)
    client = redis.Redis.from_url(url)
    store = ConversationStore(client)
    state = ConversationState(ticket_open=True)
    started = time.perf_counter()
    for n in range(count):
        conversation = FIRST + n
        decision = evaluate(rules, event(conversation), state, now=now)
        record = DeliveryRecord(f"{n:032x}", b"", 0.0, False, str(conversation), None, None, {}, {})
        store.store_decision(record, decision, state)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def used(client: redis.Redis) -> int:
    client.memory_purge()
    return int(client.info("memory")["used_memory"])


@dataclass(frozen=True)
class Scheduling:
    seconds: float
    bytes_per_wait: float


def ours_scheduling(count: int) -> Scheduling:
    """Bytes per wait: the conversations' states and `tw:timers` with waits, against the
    same states without (the decision records, history kept either way, left out)."""
    now = datetime.now(UTC)
    with start_redis_server() as plain, start_redis_server() as waits:
        store_decisions(plain.url, count, after=None, now=now)
        seconds = store_decisions(waits.url, count, after="1h", now=now)
        sizes = []
        for url in (plain.url, waits.url):
            client = redis.Redis.from_url(url)
            for pattern in (keys.delivery("*"), keys.DECISIONS + "*"):
                for batch in _batches(client.scan_iter(match=pattern, count=1000)):
                    client.unlink(*batch)
            sizes.append(used(client))
        assert redis.Redis.from_url(waits.url).zcard(keys.TIMERS) == count
    return Scheduling(seconds, (sizes[1] - sizes[0]) / count)


def _batches(items: Iterator[bytes], size: int = 1000) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def celery_scheduling(count: int) -> Scheduling:
    from bench.timers_celery import make_app

    with start_redis_server() as server:
        client = redis.Redis.from_url(server.url)
        before = used(client)
        app = make_app(server.url)
        started = time.perf_counter()
        for n in range(count):
            app.send_task("bench.timers_celery.close", args=[str(FIRST + n)], countdown=3600)
        seconds = time.perf_counter() - started
        after = used(client)
    return Scheduling(seconds, (after - before) / count)


@dataclass(frozen=True)
class Lateness:
    median: float
    last: float
    calls: int
    fake_cpu: float  # CPU seconds the fake provider spent until the last call arrived


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in commands
    ]
    try:
        yield
    finally:
        stop_processes(procs, timeout=15)


def lateness(fake: FakeProvidersServer, due: float, count: int, timeout: float) -> Lateness:
    """Wait (before `due`) for `count` AwalChat calls; how late each reached the fake."""
    assert fake.pid is not None
    cpu = cpu_seconds(fake.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and fake.control.count("awalchat") < count:
        time.sleep(2)
    cpu = cpu_seconds(fake.pid) - cpu
    calls = fake.control.calls("awalchat")  # answered 200 or 409: a close reached it
    late = sorted(c.time - due for c in calls)
    return Lateness(statistics.median(late), late[-1], len(calls), cpu)


def env_for(url: str | None, fake: FakeProvidersServer, rules: Path) -> dict[str, str]:
    """The settings of a process under test: the fake provider, Redis at `url` if any."""
    (rules / "timers.yaml").write_text(rules_text("1h"))  # what the waits were decided by
    return {
        **os.environ,
        **fake.env(),
        **({"REDIS_URL": url} if url else {}),
        "RULES_PATH": str(rules),
        "WORKER_METRICS_PORT": "0",
        "PYTHONPATH": str(ROOT),
    }


def ours_lateness(fake: FakeProvidersServer, count: int, lead: float) -> Lateness:
    due = time.time() + lead
    with start_redis_server() as server:
        when = datetime.fromtimestamp(due, UTC) - timedelta(hours=1)  # + `after: 1h` = due
        store_decisions(server.url, count, after="1h", now=when)
        command = [sys.executable, "-m", "worker.ops.cli", "work", "--concurrency", "4"]
        with (
            tempfile.TemporaryDirectory() as rules,
            processes([command], env_for(server.url, fake, Path(rules))),
        ):
            return lateness(fake, due, count, timeout=lead + 300)


def celery_lateness(fake: FakeProvidersServer, count: int, lead: float) -> Lateness:
    from bench.timers_celery import make_app

    due = time.time() + lead
    with start_redis_server() as server:
        app = make_app(server.url)
        eta = datetime.fromtimestamp(due, UTC)
        for n in range(count):
            app.send_task("bench.timers_celery.close", args=[str(FIRST + n)], eta=eta)
        command = [
            *(sys.executable, "-m", "celery", "-A", "bench.timers_celery", "worker"),
            *("--pool", "threads", "--concurrency", "4", "--loglevel", "WARNING"),
            *("--without-mingle", "--without-gossip", "--without-heartbeat"),
        ]
        with (
            tempfile.TemporaryDirectory() as rules,
            processes([command], env_for(server.url, fake, Path(rules))),
        ):
            return lateness(fake, due, count, timeout=lead + 300)


def floor_lateness(fake: FakeProvidersServer, count: int, lead: float) -> Lateness:
    due = time.time() + lead
    command = [sys.executable, "-m", "bench.timers_floor", "--count", str(count), "--due", str(due)]
    with (
        tempfile.TemporaryDirectory() as rules,
        processes([command], env_for(None, fake, Path(rules))),
    ):
        return lateness(fake, due, count, timeout=lead + 300)


LEAD = 30.0  # seconds from the start of a run to the due second: every worker is up by then


def median_late(runs: list[Lateness]) -> Lateness:
    """The run of median last lateness."""
    return median_run(runs, key=lambda run: run.last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    ours_s, celery_s = ours_scheduling(args.waits), celery_scheduling(args.waits)
    print(f"scheduling: ours {ours_s}, celery {celery_s}", flush=True)
    ours_runs: list[Lateness] = []
    celery_runs: list[Lateness] = []
    with run_fake_providers() as fake:
        for number in range(1, args.rounds + 1):
            for runs, run in ((ours_runs, ours_lateness), (celery_runs, celery_lateness)):
                fake.control.reset()
                fake.control.configure(awalchat={"limit": 10**9})
                runs.append(run(fake, args.due, lead=LEAD))
            print(f"round {number}: ours {ours_runs[-1]}, celery {celery_runs[-1]}", flush=True)
        fake.control.reset()
        fake.control.configure(awalchat={"limit": 10**9})
        floor_l = floor_lateness(fake, args.due, lead=LEAD)
    report = render(args, ours_s, celery_s, ours_runs, celery_runs, floor_l)
    print(report)
    write_section(report)


def render(
    args: argparse.Namespace,
    ours_s: Scheduling,
    celery_s: Scheduling,
    ours_runs: list[Lateness],
    celery_runs: list[Lateness],
    floor_l: Lateness,
) -> str:
    ours_l, celery_l = median_late(ours_runs), median_late(celery_runs)
    memory_goal = "met" if ours_s.bytes_per_wait <= 200 else "NOT met"
    late_goal = "met" if ours_l.last <= 2.0 else "NOT met"
    schedule_rows = [
        ("ours (`after: 1h`: decided and stored as the worker does)", ours_s),
        ("Celery `apply_async(countdown=3600)` (messages waiting in the broker)", celery_s),
    ]
    late_rows = [
        ("ours (`ticket-worker work --concurrency 4`)", ours_l),
        ("Celery `apply_async(eta=...)` (`--pool threads --concurrency 4`)", celery_l),
        ("floor: the bare client alone, 4 threads in one process (bench/timers_floor.py)", floor_l),
    ]
    if floor_l.last > 2.0:
        reach = (
            "above the 2 s goal: no design with one worker process of 4 threads can meet the "
            "goal on this machine, since these calls alone already take that long"
        )
    else:
        reach = "within the 2 s goal: the goal is reachable on this machine"
    lines = [
        "## Timers",
        "",
        f"`.venv/bin/python -m bench.timers` ({datetime.now(UTC):%Y-%m-%d}, "
        f"{platform.machine()}, Python {platform.python_version()}, 2 cores shared by Redis, "
        "the worker and the fake provider).",
        "",
        f"{args.waits:,} pending waits, one per conversation, due in an hour:",
        "",
        "| | time to schedule | Redis bytes per wait |",
        "|---|---|---|",
        *(f"| {name} | {r.seconds:.1f} s | {r.bytes_per_wait:,.0f} |" for name, r in schedule_rows),
        "",
        f"- Memory per wait: **{ours_s.bytes_per_wait:,.0f} B** (goal <= 200 B: {memory_goal}); "
        f"ratio ours / Celery {ours_s.bytes_per_wait / celery_s.bytes_per_wait:.2f}. Ours is "
        "what a wait adds to a conversation the worker keeps anyway (its entry in `tw:timers` "
        "and its place in the state); Celery's is a whole message.",
        "",
        f"{args.due:,} waits due in the same second, one AwalChat `close_ticket` each, no rate "
        "limit, one worker process with 4 threads; how late each call reached the fake provider "
        f"({args.rounds} rounds, ours and Celery interleaved in each, each one's median run by "
        "its last call; the floor once, after them):",
        "",
        "| | calls | median late | last late | fake provider's CPU |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r.calls:,} | {r.median:.2f} s | {r.last:.2f} s | {r.fake_cpu:.1f} s |"
            for name, r in late_rows
        ),
        "",
        f"- The last one starts **{ours_l.last:.2f} s** late (goal <= 2 s: {late_goal}); "
        f"ratio ours / Celery {ours_l.last / celery_l.last:.2f}. Each round's last call, ours / "
        "Celery: "
        + ", ".join(
            f"{o.last:.2f} s / {c.last:.2f} s" for o, c in zip(ours_runs, celery_runs, strict=True)
        )
        + ".",
        f"- Floor: the bare client alone, with nothing else, makes its last call "
        f"**{floor_l.last:.2f} s** late, {reach}; ours is {ours_l.last - floor_l.last:.2f} s "
        "above the floor.",
        f"- The fake provider alone spent {ours_l.fake_cpu:.1f} s of CPU answering ours' "
        f"{ours_l.calls:,} calls ({ours_l.fake_cpu / max(ours_l.calls, 1) * 1000:.2f} ms per "
        "call), on the same 2 cores as the callers.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
