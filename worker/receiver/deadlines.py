"""Many deadlines of one length, watched by one event-loop timer.

The receiver bounds how long each request may take to arrive (its head, then its body). A
timer per request (`asyncio.timeout`, `loop.call_later`) cost 4-12 µs under uvloop, as much as
parsing the body; here starting and ending a wait is a dict insert and delete:

    deadlines = Deadlines(10.0, on_expired=close_connection)
    deadlines.add(connection)        # the wait starts
    deadlines.discard(connection)    # it ended in time: nothing happens
    # still there 10 s after add: on_expired(connection) is called (once), and it is removed

Every key gets the same length of time, so the keys expire in the order they were added: the
timer is set for the oldest key only, and moved on when it fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_SLACK = 0.001  # loops may fire a timer up to a clock tick early: that counts as due


class Deadlines(Generic[K]):
    """Calls `on_expired(key)` for each key still added `seconds` after it was added.

    Use from the event loop's thread only (the timer is set on the running loop);
    `on_expired` must not raise.
    """

    def __init__(self, seconds: float, on_expired: Callable[[K], object]) -> None:
        if seconds <= 0:
            raise ValueError("a deadline needs a positive number of seconds")
        self.seconds = seconds
        self._on_expired = on_expired
        self._due: dict[K, float] = {}  # insertion order is due order
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        """True while `key`'s deadline runs."""
        return key in self._due

    def add(self, key: K) -> None:
        """Start `key`'s deadline now (again, if it was already running)."""
        loop = asyncio.get_running_loop()
        self._due.pop(key, None)
        self._due[key] = loop.time() + self.seconds
        if self._timer is None:
            self._timer = loop.call_at(self._due[key], self._expire)

    def discard(self, key: K) -> None:
        """End `key`'s deadline, if it is running."""
        self._due.pop(key, None)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _SLACK
        expired = []
        for key, due in self._due.items():
            if due > now:
                self._timer = loop.call_at(due, self._expire)
                break
            expired.append(key)
        for key in expired:
            del self._due[key]
        for key in expired:
            self._on_expired(key)
