"""The rate gate's lessons: an ordinary answer's is held by its thread and sent with that
thread's next round trip; a 429 or an empty counter is taught at once."""

from __future__ import annotations

import threading

import fakeredis
import httpx
import pytest

from worker.delivery.gate import Observations, RateGate
from worker.delivery.ratelimit import RateLimiter

DEST = "awalchat:shop"
NOW = 1_800_000_000.0


def answer(code: int, remaining: int) -> httpx.Response:
    headers = {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(NOW) + 60),
    }
    if code == 429:
        headers["Retry-After"] = "30"
    return httpx.Response(code, headers=headers)


class World:
    def __init__(self) -> None:
        self.redis = fakeredis.FakeRedis()
        self.limiter = RateLimiter(self.redis)
        self.observations = Observations(self.redis)
        self.answers: list[httpx.Response] = []
        gate = RateGate(
            self.limiter, lambda _r: DEST, clock=lambda: NOW, observations=self.observations
        )
        transport = httpx.MockTransport(lambda _request: self.answers.pop(0))
        self.http = gate.install(httpx.Client(transport=transport))

    def call(self, code: int, remaining: int) -> None:
        self.answers.append(answer(code, remaining))
        self.http.post("http://awalchat.test/x")

    def budget(self) -> dict[bytes, bytes]:
        return self.redis.hgetall(self.limiter.key(DEST))  # type: ignore[return-value]


@pytest.fixture
def world() -> World:
    return World()


def test_an_ordinary_answer_is_taught_with_the_threads_next_reservation(world: World) -> None:
    world.call(200, remaining=41)
    assert b"limit" not in world.budget()  # held
    assert world.observations.pending()
    world.call(200, remaining=40)  # its reservation carried the first lesson
    assert world.budget()[b"limit"] == b"50"
    assert world.observations.pending()  # the second one's, held in turn


def test_held_lessons_go_with_the_callers_pipeline(world: World) -> None:
    world.call(200, remaining=41)
    pipe = world.redis.pipeline(transaction=False)
    world.observations.queue_on(pipe)
    assert not world.observations.pending()
    assert b"limit" not in world.budget()
    pipe.execute()
    assert world.budget()[b"limit"] == b"50"


@pytest.mark.parametrize(("code", "remaining"), [(429, 3), (200, 0)])
def test_a_429_or_an_empty_counter_is_taught_at_once(
    world: World, code: int, remaining: int
) -> None:
    world.call(code, remaining)
    assert not world.observations.pending()
    assert float(world.budget()[b"paused_until"]) > NOW


def test_lessons_are_held_per_thread(world: World) -> None:
    world.call(200, remaining=41)
    other = threading.Thread(target=world.observations.send)
    other.start()
    other.join()
    assert world.observations.pending()  # another thread's send sent nothing of this one's
    world.observations.send()
    assert not world.observations.pending()
    assert world.budget()[b"limit"] == b"50"
