"""HelpWaveClient: x-api-key auth, string ticket ids, open state per spec, errors by status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpdesks.support import Handler, Recorder, recorded_http
from worker.errors import HelpdeskRejectedError, HelpdeskUnavailableError, RateLimitedError
from worker.helpdesks import HelpWaveClient, HelpWaveTicket

KEY = "hw-secret-key"
HOST = "https://shop.helpwave.example"


def make_client(
    answer: Handler, *, base_url: str = HOST
) -> tuple[HelpWaveClient, Recorder, httpx.Client]:
    recorder, http = recorded_http(answer)
    return HelpWaveClient(http, base_url=base_url, api_key=KEY), recorder, http


def answer(status: int, body: Any = None, content: bytes | None = None) -> Handler:
    return lambda _: (
        httpx.Response(status, json=body)
        if content is None
        else httpx.Response(status, content=content)
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (201, {"success": True, "customer": {"id": 123, "phone_number": "+9665"}}),
        (200, {"success": True, "existing": True, "customer": {"id": 123, "email": None}}),
    ],
)
def test_find_or_create_customer_returns_the_id(status: int, body: dict[str, Any]) -> None:
    client, recorder, http = make_client(answer(status, body))
    with http:
        assert client.find_or_create_customer("+9665", full_name="Ann", email=None) == 123
    (request,) = recorder.requests
    assert (request.method, str(request.url)) == ("POST", f"{HOST}/api/v1/customers")
    assert request.headers["x-api-key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    assert recorder.body() == {"phone_number": "+9665", "full_name": "Ann"}


def test_base_url_with_api_v1_is_tolerated() -> None:
    client, recorder, http = make_client(
        answer(200, {"customer": {"id": 1}}), base_url=f"{HOST}/api/v1/"
    )
    with http:
        client.find_or_create_customer("", email="a@b.example")
    assert str(recorder.requests[0].url) == f"{HOST}/api/v1/customers"
    assert recorder.body() == {"email": "a@b.example"}


def test_customer_needs_a_phone_or_an_email() -> None:
    client, recorder, http = make_client(answer(200, {"customer": {"id": 1}}))
    with http, pytest.raises(HelpdeskRejectedError, match="phone number or an email"):
        client.find_or_create_customer("")
    assert recorder.requests == []


@pytest.mark.parametrize("ticket_id", ["987654321012345678", 987654321012345678])
def test_create_ticket_returns_the_id_as_a_string(ticket_id: object) -> None:
    body = {"success": True, "ticket": {"id": ticket_id, "customerID": 123, "Channel": "Helpwave"}}
    client, recorder, http = make_client(answer(201, body))
    fields = {"customerId": 123, "Channel": "Helpwave", "isOpenedTicket": True, "tags": ["vip"]}
    with http:
        assert client.create_ticket(fields) == "987654321012345678"
    assert str(recorder.requests[0].url) == f"{HOST}/api/v1/tickets"
    assert recorder.body() == fields


@pytest.mark.parametrize(
    "fields",
    [
        {"Channel": "Mail"},
        {"customerId": "7", "Channel": "Mail"},
        {"customerId": True, "Channel": "Mail"},
        {"customerId": 7},
        {"customerId": 7, "Channel": ""},
    ],
)
def test_create_ticket_refuses_missing_fields_without_sending(fields: dict[str, Any]) -> None:
    client, recorder, http = make_client(answer(201, {}))
    with http, pytest.raises(HelpdeskRejectedError) as caught:
        client.create_ticket(fields)
    assert caught.value.response is None
    assert recorder.requests == []


@pytest.mark.parametrize(
    "content",
    [b"", b"{}", b'{"ticket": {}}', b'{"ticket": {"id": 1.5}}', b'{"ticket": {"id": ""}}'],
)
def test_create_ticket_with_an_unreadable_success_body_is_rejected(content: bytes) -> None:
    client, _, http = make_client(answer(201, content=content))
    with http, pytest.raises(HelpdeskRejectedError, match="unreadable body") as caught:
        client.create_ticket({"customerId": 1, "Channel": "Mail"})
    assert caught.value.status_code == 201


@pytest.mark.parametrize(
    ("human", "is_open", "closed"),
    [
        (
            {
                "id": 5,
                "HumanTicketStatus": "OPEN",
                "openedAt": "2024-01-01T00:00:00Z",
                "closedAt": None,
            },
            True,
            False,
        ),
        ({"id": 5, "HumanTicketStatus": "OPEN", "closedAt": "2024-01-02T00:00:00Z"}, False, True),
        ({"id": 5, "HumanTicketStatus": "CLOSED", "closedAt": None}, False, True),
        ({"id": 5}, False, True),
        (None, False, False),  # no HumanTicket (created without isOpenedTicket): not closed
    ],
)
def test_get_ticket_reads_the_open_state(
    human: dict[str, Any] | None, is_open: bool, closed: bool
) -> None:
    body = {
        "success": True,
        "ticket": {"id": "987654321012345678", "Channel": "Mail", "HumanTicket": human},
    }
    client, recorder, http = make_client(answer(200, body))
    with http:
        assert client.get_ticket("987654321012345678") == HelpWaveTicket(
            "987654321012345678", is_open, closed
        )
    request = recorder.requests[0]
    assert (request.method, str(request.url)) == (
        "GET",
        f"{HOST}/api/v1/tickets/987654321012345678",
    )
    assert request.headers["x-api-key"] == KEY
    assert request.content == b""


def test_get_ticket_answers_none_on_404() -> None:
    client, _, http = make_client(answer(404, {"error": "Ticket not found"}))
    with http:
        assert client.get_ticket("1") is None


def test_get_ticket_with_numeric_id_gives_a_string() -> None:
    client, _, http = make_client(answer(200, {"ticket": {"id": 77}}))
    with http:
        assert client.get_ticket("77") == HelpWaveTicket("77", False)


def test_add_comment_sends_a_customer_message_and_ignores_the_body() -> None:
    client, recorder, http = make_client(answer(201, content=b"whatever"))
    with http:
        client.add_comment("987654321012345678", "Hello", Channel="Helpwave")
    request = recorder.requests[0]
    assert str(request.url) == f"{HOST}/api/v1/tickets/987654321012345678/comments"
    assert recorder.body() == {"text": "Hello", "isFromShop": False, "Channel": "Helpwave"}


@pytest.mark.parametrize(("ticket_id", "text"), [("1", "   "), ("", "hi")])
def test_add_comment_refuses_empty_text_or_id(ticket_id: str, text: str) -> None:
    client, recorder, http = make_client(answer(201, {}))
    with http, pytest.raises(HelpdeskRejectedError):
        client.add_comment(ticket_id, text)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, HelpdeskRejectedError),
        (404, HelpdeskRejectedError),
        (400, HelpdeskRejectedError),
        (500, HelpdeskUnavailableError),
        (503, HelpdeskUnavailableError),
        (429, RateLimitedError),
    ],
)
def test_errors_map_by_status_and_never_show_the_key(status: int, error: type[Exception]) -> None:
    client, recorder, http = make_client(
        answer(status, {"error": "Unauthorized - Invalid API key"})
    )
    with http, pytest.raises(error) as caught:
        client.create_ticket({"customerId": 1, "Channel": "Mail"})
    assert type(caught.value) is error
    assert KEY not in str(caught.value)
    assert KEY not in repr(client)
    assert len(recorder.requests) == 1


def test_timeout_is_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, _, http = make_client(slow)
    with http, pytest.raises(HelpdeskUnavailableError) as caught:
        client.add_comment("1", "hi")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
