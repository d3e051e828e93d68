"""Conversation locks that live as long as the work: renewed while a drain holds them.

A drain takes `tw:lock:{conv}` with a TTL (`CONVERSATION_LOCK_SECONDS`, 60 s by default) and
holds it through a `Lease`. One `LeaseKeeper` thread per process renews every lease it holds
every third of the TTL, so however long one event's calls take (several actions, each up to
the HTTP timeout plus rate-limit waits), no second worker can take the conversation while
this one works; if the process dies, the lock expires one TTL later and another worker takes
over.

A lease whose renewal fails (the lock expired or Redis lost it) is marked `lost`: the drain
checks before each action, stops, and says so in the log. The keeper itself logs nothing:
a renewal can race the holder's last step, which released the lock just before the holder
let go of the lease, and that loss stops nothing. A lease held longer than `max_hold` is no longer
renewed and is logged: a drain is bounded far below that (it stops starting actions after
its run budget), so only a stuck thread gets there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from worker.delivery.periodic import Periodic

log = logging.getLogger(__name__)


class LockStore(Protocol):
    """What the keeper needs of the store (`worker.storage.conversations.ConversationStore`)."""

    def extend(self, conversation: str, token: str, ttl_ms: int) -> bool: ...


class Lease:
    """One held lock: `lost` turns True when a renewal finds the lock gone."""

    def __init__(self, conversation: str, token: str, since: float) -> None:
        self.conversation = conversation
        self.token = token
        self.since = since
        self.lost = False
        self.released = False

    def let_go(self) -> None:
        """The holder's own step released the lock (the work is done): stop renewing it."""
        self.released = True


class LeaseKeeper:
    """Renews the locks this process holds (see the module docstring).

    The thread starts with the first lease and runs until `stop()`.
    """

    def __init__(
        self,
        store: LockStore,
        *,
        ttl: float,
        max_hold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_ms = int(ttl * 1000)
        self._max_hold = max_hold if max_hold is not None else 10 * ttl
        self._clock = clock
        self._leases: dict[int, Lease] = {}
        self._guard = threading.Lock()
        self._periodic = Periodic("lease-keeper", ttl / 3, self.renew)
        self._started = False

    @property
    def ttl_ms(self) -> int:
        return self._ttl_ms

    @contextmanager
    def hold(self, conversation: str, token: str) -> Iterator[Lease]:
        """Keep renewing the lock `token` holds on `conversation` until the block ends."""
        lease = self.start(conversation, token)
        try:
            yield lease
        finally:
            self.end(lease)

    def start(self, conversation: str, token: str) -> Lease:
        """Start renewing the lock `token` holds on `conversation`, until `end(lease)` (for
        a holder of several locks that let go one at a time; else `hold`)."""
        lease = Lease(conversation, token, self._clock())
        with self._guard:
            self._leases[id(lease)] = lease
            if not self._started:
                self._started = True
                self._periodic.start()
        return lease

    def end(self, lease: Lease) -> None:
        """Stop renewing `lease` (its work is over)."""
        with self._guard:
            self._leases.pop(id(lease), None)

    def renew(self) -> None:
        """Renew every lease held (the thread's job; callable directly in tests)."""
        with self._guard:
            leases = list(self._leases.values())
        now = self._clock()
        for lease in leases:
            if lease.lost or lease.released:
                continue
            if now - lease.since > self._max_hold:
                log.error(
                    "conversation held too long; its lock is no longer renewed",
                    extra={"conversation": lease.conversation, "held_seconds": now - lease.since},
                )
                lease.lost = True
            elif not self._store.extend(lease.conversation, lease.token, self._ttl_ms):
                with self._guard:
                    ended = id(lease) not in self._leases
                if not (ended or lease.released):  # else its work let the lock go: not lost
                    lease.lost = True  # the holder stops and logs it (see the docstring)

    def stop(self) -> None:
        self._periodic.stop()
