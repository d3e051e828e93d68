"""The shared rate budget at the HTTP edge: every request waits for it, every answer teaches it.

`RateGate` plugs into an `httpx.Client` as event hooks, so every call a helpdesk client
makes (open, close, customer, ticket, comment, GET) goes through the one budget of its
destination, whatever action made it:

- before a request: reserve a slot; a short wait is slept, a longer one raises
  ThrottledError(until) so the caller parks its work instead of holding a worker;
- after a response: the X-RateLimit-* headers, a 429 and its Retry-After update the budget
  for every worker at once.

With `Observations` (the worker's gates share one), an ordinary answer's lesson is held
by the thread that got it and sent with that thread's next round trip instead of one of its
own: the step that records the action's outcome (`ActionRunner` queues it there), or the
reservation of its next call. A 429 and `remaining == 0` are taught at once: the others
must stop now. Held lessons are only ever a moment late: the runner sends them when it
has no step to join.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import redis

from worker.delivery.ratelimit import Lesson, RateLimiter
from worker.errors import ThrottledError
from worker.helpdesks.http import parse_retry_after, rate_limit_info


class Observations:
    """Lessons from ordinary answers, held per thread until its next round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._local = threading.local()

    def _held(self) -> list[Lesson]:
        held: list[Lesson] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = []
        return held

    def hold(self, lesson: Lesson) -> None:
        self._held().append(lesson)

    def pending(self) -> bool:
        return bool(self._held())

    def queue_on(self, pipe: redis.client.Pipeline) -> None:
        """Queue this thread's held lessons on `pipe` (the caller sends it): one script call
        per budget, its lessons in the order they were learnt."""
        held = self._held()
        budgets: dict[tuple[int, str], list[Lesson]] = {}
        for lesson in held:
            budgets.setdefault((id(lesson.limiter), lesson.destination), []).append(lesson)
        for lessons in budgets.values():
            lessons[0].limiter.teach(lessons, pipe)
        held.clear()

    def send(self) -> None:
        """Send this thread's held lessons now (one round trip; none when nothing is held)."""
        if self.pending():
            pipe = self._client.pipeline(transaction=False)
            self.queue_on(pipe)
            pipe.execute()


class RateGate:
    """httpx event hooks charging every request to `destination_of(request)`'s budget."""

    def __init__(
        self,
        limiter: RateLimiter,
        destination_of: Callable[[httpx.Request], str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_inline_wait: float = 2.0,
        on_wait: Callable[[str, float], None] | None = None,
        on_throttled: Callable[[str], None] | None = None,
        on_rate_limited: Callable[[str], None] | None = None,
        observations: Observations | None = None,
    ) -> None:
        self._observations = observations
        self._limiter = limiter
        self._destination_of = destination_of
        self._clock = clock
        self._sleep = sleep
        self._max_inline_wait = max_inline_wait
        self._on_wait = on_wait
        self._on_throttled = on_throttled
        self._on_rate_limited = on_rate_limited

    def on_request(self, request: httpx.Request) -> None:
        """Take a slot of the destination's budget, sleeping briefly or raising ThrottledError."""
        destination = self._destination_of(request)
        waited = 0.0
        while True:
            now = self._clock()
            wait = self._limiter.reserve(destination, now, first=self._held_lessons())
            if wait <= 0:
                break
            if waited + wait > self._max_inline_wait:
                if self._on_wait is not None and waited:
                    self._on_wait(destination, waited)
                if self._on_throttled is not None:
                    self._on_throttled(destination)
                raise ThrottledError(destination, now + wait)
            self._sleep(wait)
            waited += wait
        if waited and self._on_wait is not None:
            self._on_wait(destination, waited)

    def _held_lessons(self) -> Callable[[redis.client.Pipeline], None] | None:
        """What queues this thread's held lessons on the reservation's round trip (None
        when it holds none)."""
        if self._observations is None or not self._observations.pending():
            return None
        return self._observations.queue_on

    def on_response(self, response: httpx.Response) -> None:
        """Teach the budget what the provider's answer says about it."""
        now = self._clock()
        info = rate_limit_info(response)
        retry_after = None
        destination = self._destination_of(response.request)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
            if self._on_rate_limited is not None:
                self._on_rate_limited(destination)

        lesson = self._limiter.lesson(
            destination,
            status=response.status_code,
            limit=info.limit,
            remaining=info.remaining,
            reset=info.reset,
            retry_after=retry_after,
            now=now,
        )
        urgent = response.status_code == 429 or info.remaining == 0
        if self._observations is None or urgent:
            self._limiter.teach([lesson])
        else:
            self._observations.hold(lesson)

    def install(self, http: httpx.Client) -> httpx.Client:
        """Add the hooks to `http` and return it."""
        hooks = http.event_hooks
        hooks["request"] = [*hooks.get("request", []), self.on_request]
        hooks["response"] = [*hooks.get("response", []), self.on_response]
        http.event_hooks = hooks
        return http
