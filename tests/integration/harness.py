"""Run the real service for integration tests: `ticket-worker serve` and `ticket-worker work`
as subprocesses against a real redis-server and the fake providers.

    with Deployment(redis_url, env=fake.env(), rules=path, workers=1) as dep:
        dep.post(body)                  # signed with the deployment's webhook secret
        dep.post(body, signed=False)    # no signature headers
        dep.wait_for(lambda: ...)       # poll until true (fails with the process logs)
        dep.kill_worker(0)              # SIGKILL one worker process
        deciding_rules(client, dep, ids)  # wait until decided: the rules that decided them

    with running_up(folder) as up:      # `ticket-worker up` as a new user runs it
        httpx.get(f"http://127.0.0.1:{up.port}/readyz")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import redis

from tests.helpers_redis import free_port
from worker.ops.supervisor import stop_processes
from worker.receiver.signature import sign
from worker.storage.records import read_decision

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec-integration"


class Deployment:
    """A receiver and N workers (0: none) as real processes; logs kept for failure messages.

    Entering waits until `/readyz` answers 200, or only `/healthz` with `wait_until_ready`
    False (a deployment started against a Redis that is down).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        env: Mapping[str, str] | None = None,
        rules: Path | None = None,
        workers: int = 1,
        concurrency: int = 2,
        wait_until_ready: bool = True,
    ) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWALCHAT_", "HELPWAVE_"))},
            "REDIS_URL": redis_url,
            "AWALCHAT_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "RULES_PATH": str(rules or REPO_ROOT / "rules"),
            "PYTHONPATH": str(REPO_ROOT),
            "DRY_RUN": "false",
            "WORKER_METRICS_PORT": "0",
            **(env or {}),
        }
        self._workers = workers
        self._concurrency = concurrency
        self._wait_until_ready = wait_until_ready
        self._logs: list[tuple[str, IO[bytes]]] = []
        self.receiver: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self.consoles: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self._logs.append((name, log))
        return subprocess.Popen(
            [sys.executable, "-m", "worker.ops.cli", *args],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_worker(self) -> int:
        """Start one more worker process; return its index."""
        index = len(self.workers)
        self.workers.append(
            self._spawn(f"worker{index}", "work", "--concurrency", str(self._concurrency))
        )
        return index

    def start_console(self) -> str:
        """Start `ticket-worker console` (ADMIN_TOKEN/VIEWER_TOKEN in `env`) on a free port;
        return its base URL once it answers."""
        port = free_port()
        self.consoles.append(self._spawn("console", "console", "--port", str(port)))
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/signin", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait_for(answers, timeout=30, what="the console")
        return url

    def __enter__(self) -> Deployment:
        self.receiver = self._spawn("receiver", "serve", "--port", str(self.port))
        for _ in range(self._workers):
            self.start_worker()
        path = "/readyz" if self._wait_until_ready else "/healthz"
        try:
            self.wait_for(lambda: self._answers_200(path), timeout=30, what=f"receiver {path}")
        except BaseException:
            self.__exit__(None, None, None)  # `with` calls __exit__ only once entered
            raise
        return self

    def _answers_200(self, path: str) -> bool:
        try:
            return self.http.get(path).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.http.close()
        for _, log in self._logs:
            log.close()

    def stop(self) -> None:
        """SIGTERM every process and wait (they must exit within 10 s)."""
        running = [self.receiver, *self.workers, *self.consoles]
        stop_processes([p for p in running if p is not None], timeout=15)

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker process, mid-whatever it was doing."""
        proc = self.workers[index]
        assert proc is not None
        proc.kill()
        proc.wait()
        self.workers[index] = None

    def post(
        self, body: bytes, *, secret: str = WEBHOOK_SECRET, signed: bool = True
    ) -> httpx.Response:
        """POST a webhook signed (with X-Timestamp) by `secret`, or not signed at all."""
        return self.http.post(
            "/webhooks/awalchat",
            content=body,
            headers=self.headers(body, secret=secret, signed=signed),
        )

    def headers(
        self, body: bytes, *, secret: str = WEBHOOK_SECRET, signed: bool = True
    ) -> dict[str, str]:
        """The headers `post` sends with `body`."""
        headers = {"Content-Type": "application/json"}
        if signed:
            timestamp = str(int(time.time()))
            headers["X-Timestamp"] = timestamp
            headers["X-Awal-Signature-256"] = sign(secret, body, timestamp)
        return headers

    def logs(self) -> str:
        parts = []
        for name, log in self._logs:
            log.seek(0)
            parts.append(f"----- {name} -----\n{log.read().decode(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float = 30, what: str = "condition"
    ) -> None:
        """Poll `predicate` until true; fail with the process logs after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for proc in [self.receiver, *self.workers]:
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"a process exited early\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


def decided_by(client: redis.Redis, delivery_id: str) -> str | None:
    """The rule that matched the delivery's stored decision ("" for none; None: not decided)."""
    raw = client.hget(f"tw:delivery:{delivery_id}", "decision")
    if raw is None:
        return None
    matched = read_decision(json.loads(raw)).matched_rules
    return matched[0] if matched else ""


def deciding_rules(client: redis.Redis, dep: Deployment, ids: list[str]) -> set[str]:
    """Wait until every delivery of `ids` is decided; the rules that decided them."""
    dep.wait_for(lambda: all(decided_by(client, d) is not None for d in ids), what="decided")
    return {decided_by(client, d) or "" for d in ids}


@dataclass
class UpProcess:
    """A running `ticket-worker up`: its receiver's port, its environment and its log."""

    port: int
    env: dict[str, str]
    log: Path


@contextmanager
def running_up(folder: Path) -> Iterator[UpProcess]:
    """`ticket-worker up` run in `folder` as a new user runs it (no AWALCHAT_, HELPWAVE_,
    REDIS_, DRY_RUN or RULES_ variables), entered once its worker is ready; on leaving,
    Ctrl-C (SIGINT) must stop it with exit code 0."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWALCHAT_", "HELPWAVE_", "REDIS_", "DRY_RUN", "RULES_"))
    }
    env.update(PYTHONPATH=str(REPO_ROOT), WORKER_METRICS_PORT="0")
    port = free_port()
    log = folder / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "worker.ops.cli", "up", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 30
            while b"celery@" not in log.read_bytes() or b" ready." not in log.read_bytes():
                assert up.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield UpProcess(port, env, log)
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(timeout=20) == 0, log.read_text()
