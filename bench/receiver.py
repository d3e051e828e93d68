"""Receiver benchmark: our receiver against a bare verify-parse-LPUSH Starlette app, same run.

    .venv/bin/python -m bench.receiver [--duration 10] [--connections 32,64]

Starts its own redis-server and one uvicorn process per app (loopback only); `wrk` posts
distinct signed 1 KiB bodies (our receiver dedupes identical ones). Measures the maximum
rate of each app, then p50/p99 latency at half of our maximum with a paced wrk
(`delay()` per connection). Writes the `## Receiver` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.report import write_section
from tests.helpers_redis import free_port, start_redis_server
from worker.receiver.signature import sign

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
BODY_BYTES = 1024
SIGNED_BODIES = 120_000
LATENCY_CONNECTIONS = 16
OUR_APP = "worker.receiver.app:receiver_from_env"
OUR_PROTOCOL = "worker.receiver.serving:DEFAULT_HTTP_PROTOCOL"  # what `ticket-worker serve` runs
BARE_APP = "bench.receiver_bare:bare_from_env"


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx answers

    def line(self) -> str:
        return (
            f"{self.requests_per_second:8.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  ({self.requests} requests, {self.errors} errors)"
        )


def body_template() -> str:
    """A ~1 KiB envelope with two `%d` slots: conversation id and sequence number."""
    head = '{"event":"message.received","timestamp":"2024-01-20T10:30:00Z","data":'
    head += '{"conversation_id":%d,"message_id":"wamid.%d","type":"text","body":"'
    return head + "x" * (BODY_BYTES - len(head) - 12) + '"}}'


def write_inputs(directory: Path) -> None:
    template = body_template()
    (directory / "template.txt").write_bytes(template.encode())
    lines = (sign(SECRET, (template % (seq % 1000, seq)).encode()) for seq in range(SIGNED_BODIES))
    (directory / "signatures.txt").write_text("\n".join(lines) + "\n")


@contextmanager
def uvicorn(app: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run `app` (a factory) under uvicorn, one process, no access log; yield its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    if app == OUR_APP:
        command += ["--http", OUR_PROTOCOL]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=output, stderr=output
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base, process)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=15)


def wait_until_up(base: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def run_wrk(
    base: str, inputs: Path, *, connections: int, duration: int, delay_ms: float = 0.0
) -> WrkResult:
    env = {
        **os.environ,
        "BENCH_TEMPLATE_FILE": str(inputs / "template.txt"),
        "BENCH_SIGNATURES_FILE": str(inputs / "signatures.txt"),
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
    }
    script = Path(__file__).with_name("receiver_wrk.lua")
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency"]
    command += ["--timeout", "5s", "-s", str(script), base]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> WrkResult:
    def percentile(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {label}th percentile in wrk output:\n{output}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise ValueError(f"unreadable wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors is not None:
        errors += sum(int(n) for n in socket_errors.groups())
    return WrkResult(
        float(rate.group(1)), percentile("50"), percentile("99"), int(total.group(1)), errors
    )


def paced(base: str, inputs: Path, target: float, duration: int, store: redis.Redis) -> WrkResult:
    """wrk held near `target` req/s: each connection waits so that it sends at target/C."""
    delay = LATENCY_CONNECTIONS / target * 1000.0
    result = WrkResult(0, 0, 0, 0, 0)
    for _ in range(3):
        store.flushall()
        result = run_wrk(
            base, inputs, connections=LATENCY_CONNECTIONS, duration=duration, delay_ms=delay
        )
        if abs(result.requests_per_second - target) <= 0.1 * target:
            break
        delay *= result.requests_per_second / target
    return result


def measure(
    app: str, env: dict[str, str], inputs: Path, store: redis.Redis, args: argparse.Namespace
) -> tuple[WrkResult, int]:
    """The best closed-loop run over the connection counts, and how many it queued."""
    best: WrkResult | None = None
    queued = 0
    with uvicorn(app, env, inputs / f"{app.split(':')[0]}.log") as base:
        run_wrk(base, inputs, connections=8, duration=2)  # warm up
        for connections in args.connections:
            store.flushall()
            result = run_wrk(base, inputs, connections=connections, duration=args.duration)
            print(f"  {app} c={connections}: {result.line()}", flush=True)
            if best is None or result.requests_per_second > best.requests_per_second:
                best = result
                queued = int(store.llen("celery")) + int(store.llen("bare"))
    assert best is not None
    return best, queued


def latency_at(
    app: str, env: dict[str, str], inputs: Path, store: redis.Redis, target: float, duration: int
) -> WrkResult:
    with uvicorn(app, env, inputs / f"{app.split(':')[0]}-paced.log") as base:
        run_wrk(base, inputs, connections=8, duration=2)
        result = paced(base, inputs, target, duration, store)
    print(f"  {app} at ~{target:.0f} req/s: {result.line()}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[32, 64],
        help="comma-separated wrk connection counts for the max-rate runs",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp, start_redis_server() as server:
        inputs = Path(tmp)
        write_inputs(inputs)
        store = redis.Redis.from_url(server.url)
        ours_env = {"REDIS_URL": server.url, "AWALCHAT_WEBHOOK_SECRETS": SECRET, "DRY_RUN": "true"}
        bare_env = {"BENCH_REDIS_URL": server.url, "BENCH_SECRET": SECRET}

        print("max rate", flush=True)
        ours, ours_queued = measure(OUR_APP, ours_env, inputs, store, args)
        bare, _ = measure(BARE_APP, bare_env, inputs, store, args)
        half = ours.requests_per_second / 2
        print("latency at half of our max rate", flush=True)
        ours_paced = latency_at(OUR_APP, ours_env, inputs, store, half, args.duration)
        bare_paced = latency_at(BARE_APP, bare_env, inputs, store, half, args.duration)
        store.close()

    ratio = ours.requests_per_second / bare.requests_per_second
    report = render(ours, ours_queued, bare, ours_paced, bare_paced, ratio, args)
    write_section(report)
    print(report)


def render(
    ours: WrkResult,
    ours_queued: int,
    bare: WrkResult,
    ours_paced: WrkResult,
    bare_paced: WrkResult,
    ratio: float,
    args: argparse.Namespace,
) -> str:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    half = ours.requests_per_second / 2
    counts = ",".join(map(str, args.connections))
    errors_bare = bare.errors + bare_paced.errors
    verdict_ratio = "met" if ratio >= 0.8 else "NOT met"
    verdict_p99 = "met" if ours_paced.p99_ms < 20 else "NOT met"
    return f"""## Receiver

`.venv/bin/python -m bench.receiver` ({time.strftime("%Y-%m-%d")}, {os.cpu_count()} cores,
Python {sys.version.split()[0]}, uvicorn 1 process, {loop} + {http}, `--no-access-log`,
JSON logs at INFO to a file). `wrk -t1`, {args.duration} s runs, every request a distinct
signed {BODY_BYTES} B body (body-only HMAC, no `X-Timestamp`), one local redis-server.
Baseline: a bare Starlette app in the same run that checks the HMAC, parses the body with our
strict parser (`parse_webhook`, so the ratio compares the designs, not the parsers) and
LPUSHes the body (`bench/receiver_bare.py`), one command per request. Ours: verify, strict
parse, one Lua script per delivery (dedupe, store, per-conversation RPUSH, Celery message
LPUSH), metrics; refusals and duplicates log at INFO, accepted deliveries at DEBUG (not
written).

| | max req/s (best of c={counts}) | at ~{half:.0f} req/s: achieved | p50 | p99 |
|---|---|---|---|---|
{row("ours", ours, ours_paced)}
{row("bare", bare, bare_paced)}

- Throughput ratio ours / bare: **{ratio:.2f}** (goal >= 0.8: {verdict_ratio}).
- p99 at half of our max rate: **{ours_paced.p99_ms:.2f} ms** (goal < 20 ms: {verdict_p99}).
- Errors (non-2xx or socket): ours {ours.errors + ours_paced.errors}, bare {errors_bare}.
  Our best max-rate run queued {ours_queued} Celery messages for {ours.requests} requests.
- Latency runs are wrk closed-loop with a per-connection `delay()` tuned to the target rate
  ({LATENCY_CONNECTIONS} connections); wrk does not correct for coordinated omission.
- Run to run, the bare app's maximum varies by about +-15% on this 2-core machine (server,
  redis-server and wrk share it); compare ratios from one run only.

What closed the gap (py-spy on the uvicorn process, A/B runs, 2026-11-27; before: 0.61 with
asyncio + h11, 0.45 once uvloop + httptools sped up the bare app more than ours):
- The accept scripts of all requests that reach the inbox in one event-loop turn leave as one
  pipeline (`Inbox`): one client round trip and one pass through redis-py's command machinery
  per batch instead of per request; a batch never waits for company. This is most of the
  gain: redis-py's per-command machinery was about a third of our time per request, and the
  bare app still pays it on every LPUSH, so under load ours can match or pass the baseline.
- `POST /webhooks/awalchat` is a raw ASGI app inside the Starlette router: headers read from
  the scope, the body from `receive()` (1 MiB cap kept), answers pre-encoded JSON.
- Accepted deliveries log at DEBUG (was ~15% of throughput at INFO); refusals, duplicates and
  503s still log at INFO/WARNING.
- Strict parsing without Pydantic on the hot path (one prebuilt JSON decoder, the same
  depth, duplicate-key, surrogate, big-int and NaN checks): ~9 -> ~7 us; Celery task ids from
  `random` instead of a syscall each; metric label children cached.
- uvloop + httptools are project dependencies (`ticket-worker serve` picks them up through
  uvicorn's `auto` loop and parser).
Left: redis-py's pipeline machinery and the client packing ~2.3 KiB per delivery are now our
largest own cost; uvicorn's two socket writes per response are shared with the baseline.
"""


def row(name: str, peak: WrkResult, paced: WrkResult) -> str:
    return (
        f"| {name} | {peak.requests_per_second:.0f} | {paced.requests_per_second:.0f} "
        f"| {paced.p50_ms:.2f} ms | {paced.p99_ms:.2f} ms |"
    )


if __name__ == "__main__":
    main()
