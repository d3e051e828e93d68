"""The HelpWave mirror (rules/10-helpwave-mirror.yaml) through the drain: one ticket per
conversation while it is open, a new one after an agent closes it.

Edge tier: fakeredis, the real Inbox, processor and executor, and the fake HelpWave
(tests/fakes) served in process through Starlette's TestClient, closed as an agent would.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests.fakes.helpwave_fake import HelpWaveConfig
from tests.fakes.providers import FakeProviders, create_app
from tests.fakes.server import FakeControl
from tests.processing.support import Clock, accept_as_receiver
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.retry import RetryPolicy
from worker.engine import load_ruleset
from worker.helpdesks.helpwave import HelpWaveClient
from worker.processing.actions import ActionExecutor
from worker.processing.processor import ConversationProcessor
from worker.storage.conversations import ConversationStore
from worker.storage.keys import state as state_key
from worker.storage.records import DeliveryRecord

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` behind its TestClient; `httpx` still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

MIRROR = Path(__file__).resolve().parents[2] / "rules" / "10-helpwave-mirror.yaml"
KEY = "hw-key"
CREATE = "helpwave-ticket-on-customer-message#0"
COMMENT = "helpwave-mirror-customer-message#0"


@dataclass
class Mirror:
    """One conversation's drain against the fake HelpWave."""

    redis: fakeredis.FakeRedis
    server: fakeredis.FakeServer
    fake: FakeProviders
    control: FakeControl
    store: ConversationStore
    dlq: DeadLetterQueue
    processor: ConversationProcessor
    clock: Clock
    sent: int = 0

    def customer_writes(self, body: str, conversation: int = 1) -> DeliveryRecord:
        """A customer message accepted as the receiver does, then drained; its record."""
        self.sent += 1
        self.clock.now += 1
        raw = json.dumps(
            {
                "event": "message.received",
                "timestamp": "2026-11-27T10:00:00Z",
                "data": {
                    "message_id": f"wamid.{self.sent}",
                    "conversation_id": conversation,
                    "from": "966500000001",
                    "type": "text",
                    "body": body,
                },
            }
        ).encode()
        delivery = accept_as_receiver(self.server, self.clock, raw)
        self.processor.drain(str(conversation))
        record = self.store.load(delivery)
        assert record is not None
        return record

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every HelpWave call so far, cleared by `forget_calls`."""
        return [(c.method, c.path) for c in self.control.calls("helpwave")]

    def forget_calls(self) -> None:
        self.fake.hub.calls.clear()

    def tickets(self) -> dict[str, list[str]]:
        """Ticket id -> the texts of its comments, in the order HelpWave got them."""
        comments = self.fake.helpwave.comments
        return {tid: [c["text"] for c in comments[tid]] for tid in self.fake.helpwave.tickets}


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    clock = Clock()
    fake = FakeProviders(helpwave=HelpWaveConfig(api_key=KEY), clock=clock)
    with TestClient(create_app(fake)) as http:
        store = ConversationStore(client)
        dlq = DeadLetterQueue(client)
        executor = ActionExecutor(
            awalchat=None,
            helpwave=HelpWaveClient(http, base_url=str(http.base_url), api_key=KEY),
            default_phone_number_id=None,
        )
        ruleset = load_ruleset(MIRROR)
        processor = ConversationProcessor(
            store=store,
            rules=lambda: ruleset,
            executor=executor,
            retry=RetryPolicy(),
            dead_letters=dlq,
            park=lambda _conversation, _until: None,
            dry_run=False,
            clock=clock,
            rng=random.Random(1),
        )
        yield Mirror(client, server, fake, FakeControl(http), store, dlq, processor, clock)


def test_the_first_message_creates_the_ticket_and_mirrors_itself(mirror: Mirror) -> None:
    record = mirror.customer_writes("help, my order is broken")

    ((ticket, comments),) = mirror.tickets().items()
    assert comments == ["help, my order is broken"]
    assert mirror.calls() == [
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
        ("POST", f"/api/v1/tickets/{ticket}/comments"),
    ]
    assert record.done[CREATE]["result"] == "done"
    assert mirror.store.state("1").helpwave_ticket_id == ticket


def test_an_open_ticket_is_looked_up_and_reused(mirror: Mirror) -> None:
    mirror.customer_writes("help")
    (ticket,) = mirror.tickets()
    mirror.forget_calls()

    record = mirror.customer_writes("are you there?")

    assert mirror.calls() == [
        ("GET", f"/api/v1/tickets/{ticket}"),
        ("POST", f"/api/v1/tickets/{ticket}/comments"),
    ]
    assert record.done[CREATE] == {"result": "already", "ticket_id": ticket}
    assert mirror.tickets() == {ticket: ["help", "are you there?"]}


def test_a_ticket_an_agent_closed_is_replaced_and_comments_follow_the_new_one(
    mirror: Mirror,
) -> None:
    mirror.customer_writes("help")
    (first,) = mirror.tickets()
    mirror.control.close_helpwave_ticket(first)
    mirror.forget_calls()

    record = mirror.customer_writes("it broke again")
    mirror.customer_writes("hello?")

    (second,) = set(mirror.tickets()) - {first}
    assert mirror.tickets() == {first: ["help"], second: ["it broke again", "hello?"]}
    assert mirror.calls() == [
        ("GET", f"/api/v1/tickets/{first}"),
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
        ("POST", f"/api/v1/tickets/{second}/comments"),
        ("GET", f"/api/v1/tickets/{second}"),
        ("POST", f"/api/v1/tickets/{second}/comments"),
    ]
    assert record.done[CREATE]["result"] == "done"
    assert record.done[CREATE]["ticket_id"] == second
    assert record.done[CREATE]["replaced"] == first
    assert record.done[COMMENT] == {"result": "done", "ticket_id": second}
    assert mirror.store.state("1").helpwave_ticket_id == second


def test_a_ticket_helpwave_no_longer_has_is_replaced(mirror: Mirror) -> None:
    # A state stored by an older version, naming a ticket HelpWave answers 404 for.
    old = {"ticket_open": False, "helpwave_ticket_id": "123", "helpwave_ticket_open": True}
    mirror.redis.set(state_key("1"), json.dumps(old))

    record = mirror.customer_writes("help")

    ((ticket, comments),) = mirror.tickets().items()
    assert comments == ["help"]
    assert mirror.calls()[:3] == [
        ("GET", "/api/v1/tickets/123"),
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
    ]
    assert record.done[CREATE]["replaced"] == "123"
    assert mirror.store.state("1").helpwave_ticket_id == ticket


def test_a_dead_lettered_create_does_not_block_the_next_one(mirror: Mirror) -> None:
    mirror.control.configure(helpwave={"auth": "reject"})  # 401 to every call
    refused = mirror.customer_writes("help")

    assert refused.done[CREATE]["result"] == "failed"
    assert refused.done[COMMENT]["result"] == "skipped"  # no ticket to comment on
    assert [letter.action.kind for letter in mirror.dlq.list()] == ["helpwave.create_ticket"]
    assert mirror.tickets() == {}

    mirror.control.configure(helpwave={"auth": "verify"})
    mirror.forget_calls()
    record = mirror.customer_writes("hello?")

    ((ticket, comments),) = mirror.tickets().items()
    assert comments == ["hello?"]
    assert ("POST", "/api/v1/tickets") in mirror.calls()
    assert record.done[CREATE]["result"] == "done"
    assert mirror.store.state("1").helpwave_ticket_id == ticket
