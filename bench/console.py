"""Console list pages with 100,000 decisions and 10,000 dead letters: answer times over HTTP.

A real redis-server is filled directly (stream entries and delivery-free letters, as the
worker writes them), then `ticket-worker console` serves them under uvicorn and httpx asks
for each page: the decisions list (first page, a deep cursor page, a search by rule), the
dead letters (first page, a filter). Goal: under 200 ms each (median of 20).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.report import write_section
from tests.helpers_redis import free_port, start_redis_server
from worker.delivery.dlq import Attempt, DeadAction, DeadLetter, DeadLetterQueue
from worker.storage import keys

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin-token"
DECISIONS, LETTERS, RUNS = 100_000, 10_000, 20


def fill(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(DECISIONS):
        rules = "open-on-customer-message" if n % 10 == 0 else "helpwave-mirror-customer-message"
        fields = {"d": f"{n:032x}", "c": str(n % 5000), "e": "message.received", "r": rules}
        pipe.xadd(keys.DECISIONS, fields, maxlen=keys.DECISION_LOG_LIMIT, approximate=True)  # type: ignore[arg-type]
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    queue = DeadLetterQueue(client)
    now = time.time()
    for n in range(LETTERS):
        queue.add(
            DeadLetter(
                created_at=now - LETTERS + n,
                delivery_id=f"{n:032x}",
                conversation=str(n),
                action=DeadAction("open_ticket", {"conversation_id": str(n)}, "open", 0),
                idempotency_key=f"k{n}",
                reason="refused: 422" if n % 3 else "out of attempts: 503",
                attempts=[Attempt(now, 503, "service unavailable")] * 3,
                id=f"{n:012x}",
            )
        )


def timed(http: httpx.Client, path: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        answer = http.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times)


def main() -> None:
    with start_redis_server() as server:
        client = redis.Redis.from_url(server.url)
        fill(client)
        memory = client.memory_usage(keys.DECISIONS, samples=0) or 0
        port = free_port()
        env = {**os.environ, "REDIS_URL": server.url, "ADMIN_TOKEN": TOKEN}
        env["RULES_PATH"] = str(ROOT / "rules")
        env["DRY_RUN"] = "true"
        log = tempfile.TemporaryFile()  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.ops.cli", "console", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            http = httpx.Client(base_url=url, timeout=10)
            for _ in range(100):
                try:
                    http.get("/signin")
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            http.post("/signin", data={"password": TOKEN}, headers={"Origin": url})
            old = client.xrange(keys.DECISIONS, count=10_000, min="-", max="+")
            assert old
            deep = old[-1][0].decode()  # type: ignore[union-attr]
            pages = {
                "decisions, first page": "/decisions",
                "decisions, a deep cursor page (90,000 back)": f"/decisions?before={deep}",
                "decisions, search by rule (5,000 read)": "/decisions?rule=open-on-customer-message",  # noqa: E501
                "dead letters, first page": "/dead-letters",
                "dead letters, filtered by reason": "/dead-letters?reason=out+of+attempts",
            }
            results = {name: timed(http, path) for name, path in pages.items()}
        finally:
            proc.terminate()
            proc.wait(15)
    lines = [
        "## Console",
        "",
        f"`python -m bench.console`: {DECISIONS:,} decisions in the stream and {LETTERS:,} "
        f"dead letters in a real redis-server; the console under uvicorn, asked over HTTP "
        f"(httpx, signed in), median of {RUNS}. Goal: under 200 ms.",
        "",
        "| page | median ms |",
        "|---|---|",
        *(f"| {name} | {ms:.1f} |" for name, ms in results.items()),
        "",
        f"The decision log stream at {DECISIONS:,} entries: {memory / 1e6:.1f} MB "
        f"(`MEMORY USAGE`), {memory / DECISIONS:.0f} bytes an entry.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    write_section(report)


if __name__ == "__main__":
    main()
