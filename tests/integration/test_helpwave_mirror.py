"""The shipped HelpWave mirror (rules/) on real parts: redis-server, `ticket-worker serve`,
`ticket-worker work` and the fake providers. An agent closing the HelpWave ticket makes the
next customer message open a new one, which gets that message and the later ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

CONVERSATION = 501


def message(body: str, *, message_id: str) -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {
                "message_id": message_id,
                "conversation_id": CONVERSATION,
                "from": "966500000001",
                "to": "966500000099",
                "type": "text",
                "body": body,
            },
        },
        separators=(",", ":"),
    ).encode()


@pytest.fixture
def deployment(
    redis_server: RedisServer, fake_providers: FakeProvidersServer
) -> Iterator[Deployment]:
    with Deployment(redis_server.url, env=fake_providers.env()) as dep:  # the shipped rules/
        yield dep


def helpwave(fake: FakeProvidersServer) -> dict[str, Any]:
    state: dict[str, Any] = fake.control.state()["helpwave"]
    return state


def comments(fake: FakeProvidersServer) -> dict[str, list[str]]:
    """Ticket id -> the texts of its comments, for every ticket HelpWave has."""
    state = helpwave(fake)
    return {tid: [c["text"] for c in state["comments"][tid]] for tid in state["tickets"]}


def test_a_ticket_an_agent_closed_is_replaced_by_the_next_customer_message(
    deployment: Deployment, fake_providers: FakeProvidersServer
) -> None:
    assert deployment.post(message("help, my order is broken", message_id="wamid.m1")).is_success
    deployment.wait_for(lambda: len(comments(fake_providers)) == 1, what="the first ticket")
    deployment.wait_for(
        lambda: list(comments(fake_providers).values()) == [["help, my order is broken"]],
        what="the first message on it",
    )
    (first,) = comments(fake_providers)
    assert helpwave(fake_providers)["tickets"][first]["HumanTicket"]["HumanTicketStatus"] == "OPEN"

    fake_providers.control.close_helpwave_ticket(first)  # an agent closes it in HelpWave

    assert deployment.post(message("it is broken again", message_id="wamid.m2")).is_success
    deployment.wait_for(lambda: len(comments(fake_providers)) == 2, what="a second ticket")
    assert deployment.post(message("hello?", message_id="wamid.m3")).is_success
    (second,) = set(comments(fake_providers)) - {first}
    deployment.wait_for(
        lambda: comments(fake_providers)[second] == ["it is broken again", "hello?"],
        what="the later messages on the second ticket",
    )
    time.sleep(1.0)  # anything extra would show up now

    assert comments(fake_providers) == {
        first: ["help, my order is broken"],
        second: ["it is broken again", "hello?"],
    }
    calls = [(c.method, c.path) for c in fake_providers.control.calls("helpwave")]
    assert calls.count(("POST", "/api/v1/tickets")) == 2  # one create per intended ticket
    assert calls == [
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
        ("POST", f"/api/v1/tickets/{first}/comments"),
        ("GET", f"/api/v1/tickets/{first}"),
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/tickets"),
        ("POST", f"/api/v1/tickets/{second}/comments"),
        ("GET", f"/api/v1/tickets/{second}"),
        ("POST", f"/api/v1/tickets/{second}/comments"),
    ]
    opens = [json.loads(c.body)["route"] for c in fake_providers.control.calls("awalchat")]
    assert opens == ["openTicket"]  # the AwalChat ticket stayed open throughout
