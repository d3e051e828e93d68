"""Call slots a worker process takes from a shared budget ahead of its calls.

Each call's slot used to cost a round trip to the budget's script (`RateLimiter.reserve`).
While a window has plenty left (the provider's own counter, mirrored in the budget, at
least `PLENTY`), a process asks for `BATCH` slots in that one round trip and its threads
use the spare ones without asking: a backlog against a large budget pays one round trip
per `BATCH` calls.

A spare slot is spent within `HOLD` seconds of being taken and before the window the
budget holds it in ends, or it is dropped: never carried into the next window (where the
provider would count it again), never hoarded by an idle process. A dropped slot, or the
spares of a process that dies, are only calls the window did not make. Near the end of a
window's budget (fewer than `PLENTY` left), and whenever no limit has been learned (a
configured pace, the probe of a new window), every call asks for its own slot as before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final

BATCH: Final = 8
PLENTY: Final = 64
HOLD: Final = 0.1


@dataclass
class _Spare:
    count: int
    until: float


class SpareSlots:
    """One process's spare slots per destination (shared by its threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: dict[str, _Spare] = {}
        self._want: dict[str, int] = {}

    def take(self, destination: str, now: float) -> bool:
        """Use a spare slot of `destination`: True when one was left and still valid."""
        with self._lock:
            spare = self._spare.get(destination)
            if spare is None or spare.count <= 0 or now >= spare.until:
                return False
            spare.count -= 1
            return True

    def want(self, destination: str) -> int:
        """How many slots to ask for in the next round trip."""
        return self._want.get(destination, 1)

    def keep(
        self,
        destination: str,
        spare: int,
        *,
        now: float,
        left: int | None,
        window_ends: float | None,
        guard: float,
    ) -> None:
        """After a round trip that took `spare` slots beyond the one used now: keep them
        until `HOLD` or the window's end, whichever is first; ask for a batch next time
        when the window still had plenty `left`."""
        with self._lock:
            until = now + HOLD
            if window_ends is not None:
                until = min(until, window_ends - guard)
            if spare > 0 and window_ends is not None and until > now:
                self._spare[destination] = _Spare(spare, until)
            else:
                self._spare.pop(destination, None)
            plenty = left is not None and window_ends is not None and left >= PLENTY
            self._want[destination] = BATCH if plenty else 1
