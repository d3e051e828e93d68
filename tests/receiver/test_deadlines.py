"""Deadlines: many waits of one length, one timer."""

from __future__ import annotations

import asyncio

import pytest

from worker.receiver.deadlines import Deadlines

pytestmark = pytest.mark.anyio

SHORT = 0.05


async def test_a_key_still_there_when_its_time_is_up_expires_once() -> None:
    expired: list[str] = []
    deadlines = Deadlines(SHORT, expired.append)
    deadlines.add("slow")
    assert "slow" in deadlines
    await asyncio.sleep(SHORT * 3)
    assert (expired, len(deadlines), "slow" in deadlines) == (["slow"], 0, False)


async def test_a_key_discarded_in_time_never_expires() -> None:
    expired: list[str] = []
    deadlines = Deadlines(SHORT, expired.append)
    deadlines.add("quick")
    deadlines.discard("quick")
    deadlines.discard("never added")
    await asyncio.sleep(SHORT * 3)
    assert expired == []


async def test_keys_expire_in_the_order_they_were_added_each_not_before_its_time() -> None:
    expired: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    deadlines = Deadlines[str](SHORT * 2, lambda key: expired.append((key, loop.time())))
    started = loop.time()
    deadlines.add("first")
    await asyncio.sleep(SHORT)
    deadlines.add("second")
    deadlines.add("discarded")
    deadlines.discard("discarded")
    await asyncio.sleep(SHORT * 4)
    assert [key for key, _ in expired] == ["first", "second"]
    first, second = (at - started for _, at in expired)
    assert first >= SHORT * 2 - 0.01  # never before its time (give or take a clock tick)
    assert second >= SHORT * 3 - 0.01


async def test_adding_a_key_again_restarts_its_time() -> None:
    expired: list[str] = []
    deadlines = Deadlines(SHORT * 2, expired.append)
    deadlines.add("key")
    await asyncio.sleep(SHORT)
    deadlines.add("key")
    await asyncio.sleep(SHORT * 1.5)
    assert expired == []
    await asyncio.sleep(SHORT * 2)
    assert expired == ["key"]


async def test_the_timer_is_set_again_after_an_idle_spell() -> None:
    expired: list[str] = []
    deadlines = Deadlines(SHORT, expired.append)
    deadlines.add("a")
    await asyncio.sleep(SHORT * 3)
    deadlines.add("b")
    await asyncio.sleep(SHORT * 3)
    assert expired == ["a", "b"]


def test_a_deadline_needs_a_positive_length() -> None:
    with pytest.raises(ValueError, match="positive"):
        Deadlines(0, print)
