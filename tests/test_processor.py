"""The drain of one conversation, with fakes: fakeredis for Redis, httpx.MockTransport for
AwalChat and HelpWave. Deliveries are accepted by the real Inbox, as the receiver does."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import fakeredis
import httpx
import pytest

from worker.actions import ActionExecutor
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.gate import RateGate
from worker.delivery.parking import ParkingLot
from worker.delivery.ratelimit import RateLimiter, parse_rate
from worker.delivery.retry import RetryPolicy
from worker.engine import load_ruleset_from_texts
from worker.engine.model import Event
from worker.events import parse_webhook
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.helpwave import HelpWaveClient
from worker.inbox import Inbox
from worker.processor import ConversationProcessor
from worker.replay import replay_one
from worker.store import ConversationStore

RULES = """
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
    path = request.url.path
    if path.endswith("/customers"):
        return httpx.Response(200, json={"success": True, "customer": {"id": 7}})
    if path.endswith("/tickets"):
        return httpx.Response(201, json={"success": True, "ticket": {"id": "987654321012345678"}})
    route = json.loads(request.content)["route"]
    status = "opened" if route == "openTicket" else "closed"
    return httpx.Response(200, json={"status": True, "data": {"ticket_id": 5, "status": status}})


def status(code: int, **headers: str) -> Handler:
    return lambda request: httpx.Response(code, headers=headers, json={"error": "x"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
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
        raw = json.dumps(
            {
                "event": "message.received",
                "timestamp": "2026-11-27T10:00:00Z",
                "data": {"conversation_id": conversation, "from": "966500000001", "body": body},
            }
        ).encode()
        event = parse_webhook(raw)
        assert isinstance(event, Event)

        async def go() -> str:
            client = fakeredis.FakeAsyncRedis(server=self.server)
            result = await Inbox(client, now=self.clock).accept(raw, event, dry_run=dry_run)
            await client.aclose()
            return result.delivery_id

        return asyncio.run(go())


def build(dry_run: bool = False, rate: str | None = None) -> World:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    provider = Provider()
    clock = Clock()
    limiter = RateLimiter(client)
    if rate is not None:
        limiter.configure("awalchat:shop", parse_rate(rate))

    def http(destination: str) -> httpx.Client:
        gate = RateGate(limiter, lambda _r: destination, clock=clock, sleep=lambda _s: None)
        return gate.install(httpx.Client(transport=httpx.MockTransport(provider), timeout=5))

    store = ConversationStore(client)
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
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
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
    )
    return World(client, server, provider, clock, processor, parking, dlq, store, limiter)


@pytest.fixture
def world() -> World:
    return build()


def test_events_are_decided_once_and_acted_on_in_order(world: World) -> None:
    world.accept(1, "help me")
    world.accept(1, "thanks!")
    report = world.processor.drain("1")
    assert report.processed == 2
    assert world.provider.routes() == [
        "openTicket",
        "/api/v1/customers",
        "/api/v1/tickets",
        "closeTicket",
    ]
    state = world.store.state("1")
    assert state.ticket_open is False
    assert state.helpwave_ticket_id == "987654321012345678"


def test_a_redelivered_drain_repeats_nothing(world: World) -> None:
    world.accept(2, "help")
    world.processor.drain("2")
    calls = len(world.provider.calls)
    world.processor.drain("2")
    world.accept(2, "help")  # a duplicate delivery: the receiver does not queue it again
    world.processor.drain("2")
    assert len(world.provider.calls) == calls


def test_a_409_on_open_means_the_ticket_is_open(world: World) -> None:
    world.provider.answers = [status(409)]
    delivery = world.accept(3, "help")
    world.processor.drain("3")
    record = world.store.load(delivery)
    assert record is not None
    assert record.done["open-on-help#0"]["result"] == "already"
    assert world.store.state("3").ticket_open is True


def test_a_503_parks_the_conversation_and_the_retry_waits_its_turn(world: World) -> None:
    world.provider.answers = [status(503)]
    delivery = world.accept(4, "help")
    world.accept(4, "thanks")
    report = world.processor.drain("4")
    assert report.parked_until is not None
    assert world.parking.due_time("4") == report.parked_until
    assert world.provider.routes() == ["openTicket"]
    world.processor.drain("4")  # too early: no call, parked again
    assert world.provider.routes() == ["openTicket"]
    world.clock.now = report.parked_until
    world.processor.drain("4")
    assert world.provider.routes() == [
        "openTicket",
        "openTicket",
        "/api/v1/customers",
        "/api/v1/tickets",
        "closeTicket",
    ]
    record = world.store.load(delivery)
    assert record is not None
    assert len(record.attempts["open-on-help#0"]) == 1


def test_a_429_pauses_the_destination_for_retry_after(world: World) -> None:
    world.provider.answers = [status(429, **{"Retry-After": "30"})]
    world.accept(5, "help")
    report = world.processor.drain("5")
    assert report.parked_until is not None
    assert report.parked_until >= world.clock.now + 30
    assert world.limiter.paused_until("awalchat:shop") is not None


def test_a_refused_action_is_dead_lettered_and_a_replay_acts_once(world: World) -> None:
    world.provider.answers = [status(404)]
    world.accept(6, "help")
    world.processor.drain("6")
    letters = world.dlq.list()
    assert [(letter.action.kind, letter.attempts[0].status) for letter in letters] == [
        ("open_ticket", 404)
    ]
    assert world.store.state("6").ticket_open is False  # reverted: the open did not happen
    assert replay_one(world.redis, world.dlq, letters[0].id) == [letters[0].id]
    assert replay_one(world.redis, world.dlq, letters[0].id) == []
    world.processor.drain("6")
    assert world.provider.routes().count("openTicket") == 2
    assert world.dlq.count() == 0
    assert world.store.state("6").ticket_open is True


def test_a_lost_answer_to_a_helpwave_create_is_dead_lettered_not_repeated(world: World) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    world.provider.answers = [ok, ok, lost]  # open, customer, then the ticket create
    world.accept(7, "help")
    world.processor.drain("7")
    letters = world.dlq.list()
    assert len(letters) == 1
    assert "may have been applied" in letters[0].reason
    assert world.provider.routes().count("/api/v1/tickets") == 1


def test_dry_run_decides_and_records_but_never_calls() -> None:
    world = build(dry_run=True)
    delivery = world.accept(8, "help")
    world.processor.drain("8")
    assert world.provider.calls == []
    record = world.store.load(delivery)
    assert record is not None
    assert {o["result"] for o in record.done.values()} == {"dry_run"}


def test_an_event_accepted_under_dry_run_is_never_acted_on(world: World) -> None:
    world.accept(9, "help", dry_run=True)
    world.processor.drain("9")
    assert world.provider.calls == []


def test_a_spent_budget_parks_without_counting_an_attempt() -> None:
    world = build(rate="1/60s")
    world.accept(10, "help")
    world.accept(11, "help")
    world.processor.drain("10")
    report = world.processor.drain("11")
    assert report.parked_until is not None
    assert world.provider.routes().count("openTicket") == 1
    record = world.store.load(world.store.head("11") or "")
    assert record is not None
    assert record.attempts == {}
