"""A daemon thread that runs a job every `interval` seconds until stopped.

With `next_delay`, the thread sleeps `min(interval, next_delay())` instead: a job that knows
when it is next needed (the parked-work releaser) runs then, not at the next tick.
The job's exceptions are logged and the thread goes on: background work must outlive a
Redis outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Run `job` every `interval` seconds in a daemon thread named `name`."""

    def __init__(
        self,
        name: str,
        interval: float,
        job: Callable[[], object],
        *,
        next_delay: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self._interval = interval
        self._job = job
        self._next_delay = next_delay
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds for it."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            delay = self._interval
            try:
                self._job()
                if self._next_delay is not None:
                    delay = min(delay, max(0.0, self._next_delay()))
            except Exception:  # the thread must outlive a Redis outage or a bad message
                log.warning("%s failed; retrying", self.name, exc_info=True)
            self._stopping.wait(delay)
