"""Leases: a held conversation lock is renewed while the work goes on, and lost loudly."""

from __future__ import annotations

import fakeredis

from worker.delivery.lease import LeaseKeeper
from worker.storage.conversations import ConversationStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def keeper(ttl: float = 6.0) -> tuple[LeaseKeeper, ConversationStore, fakeredis.FakeRedis, Clock]:
    client = fakeredis.FakeRedis()
    store = ConversationStore(client)
    clock = Clock()
    return LeaseKeeper(store, ttl=ttl, max_hold=60, clock=clock), store, client, clock


def test_a_held_lock_is_renewed_to_the_whole_ttl() -> None:
    leases, store, client, _ = keeper()
    token = store.acquire("1", 6000)
    assert token is not None
    with leases.hold("1", token) as lease:
        client.pexpire("tw:lock:1", 100)  # nearly expired
        leases.renew()
        assert client.pttl("tw:lock:1") > 5000
        assert not lease.lost
    leases.stop()


def test_a_lease_whose_lock_is_gone_is_lost() -> None:
    leases, store, client, _ = keeper()
    token = store.acquire("2", 6000)
    assert token is not None
    with leases.hold("2", token) as lease:
        client.set("tw:lock:2", "someone else")
        leases.renew()
        assert lease.lost
        assert client.get("tw:lock:2") == b"someone else"
    leases.stop()


def test_a_lease_held_past_max_hold_is_no_longer_renewed() -> None:
    leases, store, client, clock = keeper()
    token = store.acquire("3", 6000)
    assert token is not None
    with leases.hold("3", token) as lease:
        clock.now += 61
        client.pexpire("tw:lock:3", 100)
        leases.renew()
        assert lease.lost
        assert client.pttl("tw:lock:3") <= 100
    leases.stop()


def test_a_released_lease_is_forgotten() -> None:
    leases, store, client, _ = keeper()
    token = store.acquire("4", 6000)
    assert token is not None
    with leases.hold("4", token):
        pass
    store.release("4", token)
    leases.renew()
    assert client.exists("tw:lock:4") == 0
    leases.stop()
