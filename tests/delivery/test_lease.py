"""Leases: a held conversation lock is renewed while the work goes on, and lost loudly."""

from __future__ import annotations

import logging
from collections.abc import Callable

import fakeredis
import pytest

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
    return by_hand(LeaseKeeper(store, ttl=ttl, max_hold=60, clock=clock)), store, client, clock


def by_hand(leases: LeaseKeeper) -> LeaseKeeper:
    """A keeper whose renewals are the test's alone: its thread, once started, stops at once
    (a renewal from the thread raced the test's own and made it flaky)."""
    leases.stop()
    return leases


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


def test_a_lease_whose_lock_is_gone_is_lost_and_left_to_its_holder_to_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leases, store, client, _ = keeper()
    token = store.acquire("2", 6000)
    assert token is not None
    with leases.hold("2", token) as lease, caplog.at_level(logging.WARNING):
        client.set("tw:lock:2", "someone else")
        leases.renew()
        assert lease.lost
        assert caplog.text == ""  # the holder says so if it stops (its last step may have
        # released the lock just before it let go of the lease: then nothing was lost)
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


def test_a_lock_the_holders_own_step_let_go_is_not_renewed_nor_called_lost() -> None:
    leases, store, client, _ = keeper()
    token = store.acquire("4", 6000)
    assert token is not None
    with leases.hold("4", token) as lease:
        client.delete("tw:lock:4")  # the step that finished the work released it
        lease.let_go()
        leases.renew()
        assert not lease.lost
        assert not client.exists("tw:lock:4")  # not taken again by a renewal
    leases.stop()


class EndsDuringRenewal:
    """A store whose lock was let go, and the hold ended, while a renewal was on its way."""

    def __init__(self) -> None:
        self.end: Callable[[], object] = lambda: None

    def extend(self, conversation: str, token: str, ttl_ms: int) -> bool:
        self.end()
        return False


def test_a_renewal_racing_the_end_of_the_work_reports_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = EndsDuringRenewal()
    leases = by_hand(LeaseKeeper(store, ttl=6.0))
    held = leases.hold("5", "t")
    lease = held.__enter__()
    store.end = lambda: held.__exit__(None, None, None)
    with caplog.at_level(logging.WARNING):
        leases.renew()
    assert not lease.lost
    assert "lock lost" not in caplog.text
    leases.stop()
