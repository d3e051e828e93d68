"""End-to-end worker throughput: ours against a plain task-per-webhook Celery design and
Celery's no-op task rate, side by side in one run.

    .venv/bin/python -m bench.e2e [--events 1500] [--quiet 4000]

Each variant gets a fresh redis-server, the same fake providers (no rate limit: they
answer at once) and one worker process with 4 threads (acks late, prefetch 1, JSON):

- ours: the backlog accepted through the receiver's own script (`worker.storage.inbox`),
  then `ticket-worker work --concurrency 4`;
- plain: `celery -A bench.e2e_plain worker --pool threads --concurrency 4`, one `handle`
  task per webhook (same engine, ruleset, helpdesk client and executor; no lock, no
  decision log, no order);
- no-op: the same worker running a task that does nothing.

The backlog is 1,500 `message.received` events of 1,500 conversations (one open each).
Timing: from the moment the worker takes its first message to the moment the queue and
its unacknowledged set are both empty (polled every 10 ms), so every variant is timed the
same way; the fake's call log checks that each conversation was opened exactly once.
Then `--quiet` events no rule listens to (`message.status.updated`) through ours alone.
The four runs are repeated `--rounds` times, interleaved, and each variant's median run is
reported (the machine is shared: one run alone can be off by a third); the CPU time each
process spent per event is counted from /proc beside the rates.

Goals (issue 13): ours ≥ 1.5 x plain, ≥ 0.5 x no-op; quiet events ≥ 2,000/s.
Writes the `## End to end` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.delivery_runs import accept_all, message
from bench.e2e_report import OURS_NAME, PROCESSES, QUIET_NAME, Round, Run, render
from bench.report import write_section
from tests.fakes.server import FakeProvidersServer, run_fake_providers
from tests.helpers_redis import RedisServer, start_redis_server
from worker.ops.supervisor import stop_processes
from worker.storage.keys import CELERY_QUEUE, READY

ROOT = Path(__file__).resolve().parent.parent
FIRST = 800_001
RULES = """\
version: 1
rules:
  - name: close-on-thanks
    on: message.received
    when:
      ticket: open
      data.body: {contains: "thank you"}
    then: [close_ticket]
    stop: true
  - name: open-on-message
    on: message.received
    when:
      ticket: closed
    then: [open_ticket]
"""


def status_body(n: int) -> bytes:
    return json.dumps(
        {
            "event": "message.status.updated",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {"message_id": f"wamid.out.{n}", "status": "delivered"},
        },
        separators=(",", ":"),
    ).encode()


def outstanding(client: redis.Redis) -> int:
    pipe = client.pipeline(transaction=False)
    pipe.llen(CELERY_QUEUE)
    pipe.hlen("unacked")
    pipe.llen(READY)
    queued, unacked, ready = pipe.execute()
    return int(queued) + int(unacked) + int(ready)


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def time_until_empty(
    client: redis.Redis, alive: Callable[[], bool], pids: dict[str, int]
) -> tuple[float, tuple[tuple[str, float], ...]]:
    """Seconds from the first message taken off the queue (or conversation taken from
    `tw:ready`) until none is left or held, and the CPU seconds each of `pids` spent in
    between (whatever else the machine runs, these count only the processes' own work)."""
    deadline = time.monotonic() + 600

    def waiting() -> int:
        return int(client.llen(CELERY_QUEUE)) + int(client.llen(READY))

    queued = waiting()
    while waiting() >= queued:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError("the worker took no message")
        time.sleep(0.01)
    started, cpu_before = time.monotonic(), cpu_of(pids)
    next_print = started + 5
    while (left := outstanding(client)) > 0:
        now = time.monotonic()
        if not alive() or now > deadline:
            raise RuntimeError(f"the worker stopped with {left} messages left")
        if now >= next_print:
            print(f"    {left} messages left after {now - started:.0f} s", flush=True)
            next_print = now + 5
        time.sleep(0.01)
    seconds, cpu_after = time.monotonic() - started, cpu_of(pids)
    return seconds, tuple((name, cpu_after[name] - cpu_before[name]) for name in pids)


@contextmanager
def worker(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop_processes([proc], timeout=15)
            if proc.returncode not in (0, -15, None):
                log.seek(0)
                print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)


def environment(url: str, fake: FakeProvidersServer, rules: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWALCHAT_", "HELPWAVE_"))},
        **fake.env(),
        "REDIS_URL": url,
        "RULES_PATH": str(rules),
        "WORKER_METRICS_PORT": "0",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }


def processes(
    proc: subprocess.Popen[bytes], server: RedisServer, fake: FakeProvidersServer
) -> dict[str, int]:
    """The processes whose CPU time a run counts, by their names in the report."""
    assert server.process is not None
    assert fake.pid is not None
    return dict(zip(PROCESSES, (proc.pid, server.process.pid, fake.pid), strict=True))


def checked(
    name: str,
    fake: FakeProvidersServer,
    events: int,
    timed: tuple[float, tuple[tuple[str, float], ...]],
) -> Run:
    """The run's figures, with the fake's count of opens per conversation."""
    calls = [c for c in fake.control.calls("awalchat") if c.status == 200]
    per_conversation = Counter(c.path.rsplit("/", 1)[-1] for c in calls)
    wanted = [str(FIRST + n) for n in range(events)]
    seconds, cpu = timed
    return Run(
        name,
        events,
        seconds,
        cpu=cpu,
        calls=len(calls),
        duplicates=sum(1 for n in per_conversation.values() if n > 1),
        missing=sum(1 for conv in wanted if per_conversation[conv] == 0),
    )


OURS = [sys.executable, "-m", "worker.ops.cli", "work", "--concurrency", "4"]
CELERY = [
    *(sys.executable, "-m", "celery", "-A", "bench.e2e_plain", "worker"),
    *("--pool", "threads", "--concurrency", "4", "--loglevel", "WARNING"),
    *("--without-mingle", "--without-gossip", "--without-heartbeat"),
]


def run_ours(fake: FakeProvidersServer, rules: Path, bodies: list[bytes], name: str) -> Run:
    fake.control.reset()
    fake.control.configure(awalchat={"limit": 10**9})
    with start_redis_server() as server:
        asyncio.run(accept_all(server.url, bodies))
        client = redis.Redis.from_url(server.url)
        with worker(OURS, environment(server.url, fake, rules)) as proc:
            timed = time_until_empty(
                client, lambda: proc.poll() is None, processes(proc, server, fake)
            )
        client.close()
    return checked(name, fake, len(bodies), timed)


def run_celery(fake: FakeProvidersServer, rules: Path, task: str, args: list[list[str]]) -> Run:
    from bench.e2e_plain import make_app

    fake.control.reset()
    fake.control.configure(awalchat={"limit": 10**9})
    with start_redis_server() as server:
        app = make_app(server.url)
        with app.connection_for_write() as connection:
            for arguments in args:
                app.send_task(task, args=arguments, connection=connection)
        client = redis.Redis.from_url(server.url)
        with worker(CELERY, environment(server.url, fake, rules)) as proc:
            timed = time_until_empty(
                client, lambda: proc.poll() is None, processes(proc, server, fake)
            )
        client.close()
    name = "plain task per webhook" if task.endswith("handle") else "Celery no-op task"
    return checked(name, fake, len(args), timed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--quiet", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args(argv)
    bodies = [message(FIRST + n) for n in range(args.events)]
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp, run_fake_providers() as fake:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        quiet_bodies = [status_body(n) for n in range(args.quiet)]
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}: {args.events} events", flush=True)
            ours = run_ours(fake, rules, bodies, OURS_NAME)
            print(f"  {ours}", flush=True)
            plain = run_celery(
                fake, rules, "bench.e2e_plain.handle", [[b.decode()] for b in bodies]
            )
            print(f"  {plain}", flush=True)
            noop = run_celery(fake, rules, "bench.e2e_plain.noop", [[] for _ in bodies])
            print(f"  {noop}", flush=True)
            quiet = run_ours(fake, rules, quiet_bodies, QUIET_NAME)
            print(f"  {quiet}", flush=True)
            rounds.append(Round(ours, plain, noop, quiet))
    report = render(args, rounds)
    print(report)
    write_section(report)


if __name__ == "__main__":
    main()
