"""A message built by `celery_message` (and the wake message `Inbox.accept` queues) runs in a
real Celery worker process: the format is exactly what kombu's Redis transport expects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers_redis import RedisServer, start_redis_server
from worker.engine.model import Event
from worker.storage.clients import async_redis as redis_client
from worker.storage.inbox import Inbox
from worker.storage.wire import DRAIN_READY_TASK, DRAIN_TASK, celery_message

pytestmark = pytest.mark.integration

TEST_APP = """
import os

import redis
from celery import Celery

app = Celery("probe", broker=os.environ["PROBE_BROKER"])
app.conf.worker_hijack_root_logger = False


@app.task(name="{task}")
def drain(conv):
    redis.Redis.from_url(os.environ["PROBE_BROKER"]).rpush("probe:ran", conv)


@app.task(name="{ready_task}")
def drain_ready():
    client = redis.Redis.from_url(os.environ["PROBE_BROKER"])
    client.rpush("probe:ran", b"ready:" + client.lpop("tw:ready"))
"""


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with start_redis_server() as running:
        yield running


def _start_worker(app_dir: Path, broker: str) -> subprocess.Popen[bytes]:
    (app_dir / "probe_app.py").write_text(
        textwrap.dedent(TEST_APP.format(task=DRAIN_TASK, ready_task=DRAIN_READY_TASK))
    )
    env = {**os.environ, "PROBE_BROKER": broker, "PYTHONPATH": str(app_dir)}
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "probe_app", "worker", "--pool", "solo"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"),
        ],
        cwd=app_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(client: redis.Redis, count: int, timeout: float = 30.0) -> list[bytes | str]:
    deadline = time.monotonic() + timeout
    ran = client.lrange("probe:ran", 0, -1)
    while len(ran) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        ran = client.lrange("probe:ran", 0, -1)
    return ran


async def _accept(url: str) -> str:
    client = redis_client(url)
    try:
        event = Event(name="message.received", payload={}, conversation_id="42")
        result = await Inbox(client).accept(b'{"event":"message.received"}', event, dry_run=False)
        return result.delivery_id
    finally:
        await client.aclose()


def test_real_celery_worker_runs_the_queued_drain_task(server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        client.lpush("celery", celery_message(DRAIN_TASK, ["direct"]))
        asyncio.run(_accept(server.url))
        worker = _start_worker(tmp_path, server.url)
        try:
            ran = _wait_for(client, 2)
        finally:
            worker.terminate()
            _, stderr = worker.communicate(timeout=30)
        assert sorted(ran) == [b"direct", b"ready:42"], stderr.decode(errors="replace")[-2000:]
        assert client.llen("celery") == 0
    finally:
        client.close()
