"""The drain's world for the processing tests, with fakes: fakeredis for Redis and
httpx.MockTransport for AwalChat and HelpWave behind the real rate gate; deliveries are
accepted by the real Inbox, as the receiver does.

    world = build(rules=TEXT)           # or {file name: text}, taken in name order
    world.provider.answers = [status(503)]
    delivery = world.accept(1, "help")  # a customer's message, accepted
    world.processor.drain("1")
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import fakeredis
import httpx

from tests.samples import message_received
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.gate import Observations, RateGate
from worker.delivery.parking import ParkingLot
from worker.delivery.ratelimit import RateLimiter, parse_rate
from worker.delivery.retry import RetryPolicy
from worker.engine import load_ruleset_from_texts
from worker.engine.envelope import parse_webhook
from worker.engine.model import Event
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.helpwave import HelpWaveClient
from worker.processing.actions import ActionExecutor
from worker.processing.processor import ConversationProcessor
from worker.storage.conversations import ConversationStore
from worker.storage.inbox import Inbox
from worker.storage.keys import DEFAULT_STATE_RETENTION

RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, ticket: closed}
    then:
      - open_ticket
      - helpwave.create_ticket: {Channel: Helpwave, name: "WhatsApp {{ data.from }}"}
  - name: close-on-thanks
    on: message.received
    when: {data.body: {contains: thank}, ticket: open}
    then: [close_ticket]
"""
"""`build`'s rules: "help" opens the ticket and a HelpWave ticket, "thank" closes it."""

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Provider:
    """A scripted provider: answers from `answers` (FIFO) then 200s; records every call."""

    answers: list[Handler] = field(default_factory=list)
    calls: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.answers:
            return self.answers.pop(0)(request)
        return ok(request)

    def routes(self) -> list[str]:
        return [
            json.loads(c.content)["route"] if "chat/events" in c.url.path else c.url.path
            for c in self.calls
        ]


def ok(request: httpx.Request) -> httpx.Response:
    """The helpdesks' success answer to `request`."""
    path = request.url.path
    if path.endswith("/customers"):
        return httpx.Response(200, json={"success": True, "customer": {"id": 7}})
    if path.endswith("/tickets"):
        return httpx.Response(201, json={"success": True, "ticket": {"id": "987654321012345678"}})
    route = json.loads(request.content)["route"]
    status = "opened" if route == "openTicket" else "closed"
    return httpx.Response(200, json={"status": True, "data": {"ticket_id": 5, "status": status}})


def status(code: int, **headers: str) -> Handler:
    """An answer of `code` with `headers`."""
    return lambda request: httpx.Response(code, headers=headers, json={"error": "x"})


class Clock:
    """A clock the test moves by setting `now` (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def accept_as_receiver(
    server: fakeredis.FakeServer, clock: Clock, raw: bytes, *, dry_run: bool = False
) -> str:
    """`raw` accepted by the real Inbox on `server`, as the receiver does: its delivery id."""
    event = parse_webhook(raw)
    assert isinstance(event, Event)

    async def accept() -> str:
        client = fakeredis.FakeAsyncRedis(server=server)
        result = await Inbox(client, now=clock).accept(raw, event, dry_run=dry_run)
        await client.aclose()
        return result.delivery_id

    return asyncio.run(accept())


@dataclass
class World:
    """One Redis, the scripted provider behind both helpdesk clients, and the processor."""

    redis: fakeredis.FakeRedis
    server: fakeredis.FakeServer
    provider: Provider
    clock: Clock
    processor: ConversationProcessor
    parking: ParkingLot
    dlq: DeadLetterQueue
    store: ConversationStore
    limiter: RateLimiter

    def accept(self, conversation: int, body: str, *, dry_run: bool = False) -> str:
        """A customer's message saying `body`, accepted: its delivery id."""
        return self.accept_raw(message_received(conversation, body), dry_run=dry_run)

    def accept_raw(self, raw: bytes, *, dry_run: bool = False) -> str:
        return accept_as_receiver(self.server, self.clock, raw, dry_run=dry_run)


def build(
    dry_run: bool = False,
    rate: str | None = None,
    *,
    retention: int = DEFAULT_STATE_RETENTION,
    run_budget: float = 20.0,
    rules: str | Mapping[str, str] = RULES,
) -> World:
    """A world whose processor decides by `rules`: one file's text, or file name -> text."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    provider = Provider()
    clock = Clock()
    limiter = RateLimiter(client)
    observations = Observations(client)  # as the worker's: lessons go with the next step
    if rate is not None:
        limiter.configure("awalchat:shop", parse_rate(rate))

    def http(destination: str) -> httpx.Client:
        gate = RateGate(
            limiter,
            lambda _r: destination,
            clock=clock,
            sleep=lambda _s: None,
            observations=observations,
        )
        return gate.install(httpx.Client(transport=httpx.MockTransport(provider), timeout=5))

    store = ConversationStore(client, retention=retention, clock=clock)
    parking = ParkingLot(client)
    dlq = DeadLetterQueue(client)
    executor = ActionExecutor(
        awalchat=AwalChatClient(
            http("awalchat:shop"),
            base_url="http://awalchat.test/api/developer",
            hmac_secret="s",
            client_id="c",
            domain="shop",
            clock=clock,
        ),
        helpwave=HelpWaveClient(http("helpwave:hw"), base_url="http://helpwave.test", api_key="k"),
        default_phone_number_id="100",
    )
    ruleset = load_ruleset_from_texts({"rules.yaml": rules} if isinstance(rules, str) else rules)
    processor = ConversationProcessor(
        store=store,
        rules=lambda: ruleset,
        executor=executor,
        retry=RetryPolicy(),
        dead_letters=dlq,
        park=parking.park,
        dry_run=dry_run,
        clock=clock,
        rng=random.Random(1),
        run_budget=run_budget,
        observations=observations,
    )
    return World(client, server, provider, clock, processor, parking, dlq, store, limiter)
