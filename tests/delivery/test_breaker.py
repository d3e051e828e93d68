"""The runaway breaker: per-conversation caps in a sliding window, shared through Redis."""

from __future__ import annotations

from datetime import timedelta

import fakeredis
import pytest

from worker.delivery.breaker import RunawayBreaker, runaway_reason
from worker.engine.ruleset import Cap, Limits

LIMITS = Limits(
    tickets_per_conversation=Cap(3, timedelta(minutes=10)),
    comments_per_conversation=Cap(2, timedelta(seconds=30)),
)
NOW = 1_800_000_000.0


@pytest.fixture
def breaker() -> RunawayBreaker:
    return RunawayBreaker(fakeredis.FakeRedis())


def test_ticket_actions_past_the_cap_are_refused_with_the_reason(breaker: RunawayBreaker) -> None:
    kinds = ["open_ticket", "close_ticket", "helpwave.create_ticket", "open_ticket"]
    results = [breaker.admit("1", k, f"d{i}:r#0", LIMITS, NOW + i) for i, k in enumerate(kinds)]
    assert results == [None, None, None, "runaway: more than 3 ticket actions in 10m"]


def test_the_window_slides(breaker: RunawayBreaker) -> None:
    for i in range(2):
        assert breaker.admit("1", "helpwave.add_comment", f"d{i}:r#0", LIMITS, NOW + i) is None
    assert breaker.admit("1", "helpwave.add_comment", "d2:r#0", LIMITS, NOW + 5) is not None
    assert breaker.admit("1", "helpwave.add_comment", "d3:r#0", LIMITS, NOW + 31) is None


def test_an_action_admitted_before_is_not_counted_twice(breaker: RunawayBreaker) -> None:
    for _ in range(5):  # waited for the rate budget, retried, ...
        assert breaker.admit("1", "helpwave.add_comment", "d0:r#0", LIMITS, NOW) is None
    assert breaker.admit("1", "helpwave.add_comment", "d1:r#0", LIMITS, NOW) is None


def test_caps_are_per_conversation_and_kind(breaker: RunawayBreaker) -> None:
    for i in range(3):
        assert breaker.admit("1", "open_ticket", f"d{i}:r#0", LIMITS, NOW) is None
    assert breaker.admit("2", "open_ticket", "e0:r#0", LIMITS, NOW) is None
    assert breaker.admit("1", "helpwave.add_comment", "d9:r#0", LIMITS, NOW) is None


def test_reasons_name_the_default_caps() -> None:
    assert runaway_reason("tickets", Limits().tickets_per_conversation) == (
        "runaway: more than 6 ticket actions in 10m"
    )
    assert runaway_reason("comments", Limits().comments_per_conversation) == (
        "runaway: more than 60 comments in 10m"
    )
