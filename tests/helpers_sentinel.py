"""A Redis Sentinel group on loopback for tests: a master, a replica and three sentinels,
each a real redis-server on a free port (never 6379).

with start_sentinel_group() as group:
    group.url              # REDIS_URL: sentinel://127.0.0.1:p1;sentinel://...;...
    group.master_name      # REDIS_SENTINEL_MASTER
    group.kill_master()    # SIGKILL the current master; the sentinels promote the replica
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from tests.helpers_redis import RedisServer, free_port, redis_executable

MASTER_NAME = "tw"


@dataclass
class SentinelGroup:
    servers: list[RedisServer]
    sentinel_ports: list[int]
    master_name: str = MASTER_NAME
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports)

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        try:
            address = cast(
                tuple[str, int], client.sentinel_get_master_addr_by_name(self.master_name)
            )
            return int(address[1])
        finally:
            client.close()

    def kill_master(self) -> None:
        port = self.master_port()
        for server in self.servers:
            if server.port == port:
                server.stop()

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(timeout=10)
        for server in self.servers:
            server.stop()


def _sentinel_config(directory: Path, port: int, master_port: int) -> Path:
    path = directory / f"sentinel-{port}.conf"
    path.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {directory}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
        f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
    )
    return path


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"sentinel group: timed out waiting for {what}")


def _agreeing(port: int) -> Callable[[], bool]:
    client = redis.Redis(port=port, socket_timeout=1)

    def agreeing() -> bool:
        master = cast(dict[str, Any], client.sentinel_master(MASTER_NAME))
        return int(master["num-other-sentinels"]) >= 2 and int(master["num-slaves"]) >= 1

    return agreeing


@contextmanager
def start_sentinel_group() -> Iterator[SentinelGroup]:
    """A master, a replica of it and three sentinels watching them, all started and
    agreeing, on free loopback ports."""
    binary = shutil.which("redis-server") or redis_executable()
    with tempfile.TemporaryDirectory(prefix="tw-sentinel-") as root, ExitStack() as stack:
        directory = Path(root)
        master = RedisServer(free_port(), directory / "master")
        master.directory.mkdir()
        master.start()
        replica = RedisServer(
            free_port(),
            directory / "replica",
            extra=("--replicaof", "127.0.0.1", str(master.port)),
        )
        replica.directory.mkdir()
        replica.start()
        group = SentinelGroup([master, replica], [free_port() for _ in range(3)])
        stack.callback(group.stop)
        for port in group.sentinel_ports:
            config = _sentinel_config(directory, port, master.port)
            group.sentinels.append(
                subprocess.Popen(
                    [binary, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        replica_client = redis.Redis(port=replica.port)
        _wait(
            lambda: replica_client.info("replication")["master_link_status"] == "up",
            "the replica to sync",
        )
        for port in group.sentinel_ports:
            _wait(_agreeing(port), "the sentinels to see each other and the replica")
        yield group
