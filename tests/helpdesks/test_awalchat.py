"""AwalChatClient: signed exactly as the spec says, one attempt per call, errors by status."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.helpdesks.support import Handler, Recorder, recorded_http
from worker.errors import HelpdeskRejectedError, HelpdeskUnavailableError, RateLimitedError
from worker.helpdesks import AwalChatClient, RateLimitInfo, TicketChange, sign_request
from worker.helpdesks.http import rate_limit_info

SECRET = "your-hmac-secret"
BASE = "https://api.awalchat.example/api/developer"
NOW = 1_704_124_800

OPENED = {
    "status": True,
    "message": "Ticket opened successfully",
    "data": {"ticket_id": 123, "conversation_id": 42, "status": "opened"},
}


def test_spec_test_vector() -> None:
    body = b'{"phone":"96650000000","body":"Hello"}'
    signature = sign_request(
        SECRET, "POST", "/w/message/text", "?phone_number_id=123", "1704124800", body
    )
    assert signature == "sha256=3d3a28eb340079ad838c68984ed0977f001b0f54e5cd6aee42bdbc9561e7170d"


@pytest.fixture
def clock() -> Callable[[], float]:
    ticks = itertools.count(NOW)
    return lambda: float(next(ticks))


def make_client(
    answer: Handler, *, base_url: str = BASE, clock: Callable[[], float] = lambda: NOW
) -> tuple[AwalChatClient, Recorder, httpx.Client]:
    recorder, http = recorded_http(answer)
    client = AwalChatClient(
        http,
        base_url=base_url,
        hmac_secret=SECRET,
        client_id="cid-1",
        domain="shop.example",
        clock=clock,
    )
    return client, recorder, http


@pytest.fixture
def ok() -> Iterator[tuple[AwalChatClient, Recorder]]:
    client, recorder, http = make_client(lambda _: httpx.Response(200, json=OPENED))
    with http:
        yield client, recorder


def test_open_ticket_sends_the_spec_request(ok: tuple[AwalChatClient, Recorder]) -> None:
    client, recorder = ok
    assert client.open_ticket("42", "123456") == TicketChange(
        already=False, ticket_id="123", status="opened"
    )
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/wechat/chat/events/42?phone_number_id=123456"
    assert request.content == b'{"route":"openTicket"}'
    expected = sign_request(
        SECRET,
        "POST",
        "/wechat/chat/events/42",
        "?phone_number_id=123456",
        str(NOW),
        request.content,
    )
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Awal-Signature-256"] == expected
    assert request.headers["X-Timestamp"] == str(NOW)
    assert request.headers["X-Domain"] == "shop.example"
    assert request.headers["X-Client-ID"] == "cid-1"


def test_close_ticket_sends_close_route(ok: tuple[AwalChatClient, Recorder]) -> None:
    client, recorder = ok
    client.close_ticket("42", "123456")
    assert recorder.requests[0].content == b'{"route":"closeTicket"}'


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8081/",
        f"{BASE}/",
        "http://h.example/a/b/api/developer",
    ],
)
def test_signed_path_is_relative_to_the_base_url(base_url: str) -> None:
    client, recorder, http = make_client(
        lambda _: httpx.Response(200, json=OPENED), base_url=base_url
    )
    with http:
        client.open_ticket("7", "1")
    headers = recorder.requests[0].headers
    expected = sign_request(
        SECRET,
        "POST",
        "/wechat/chat/events/7",
        "?phone_number_id=1",
        str(NOW),
        b'{"route":"openTicket"}',
    )
    assert headers["X-Awal-Signature-256"] == expected


def test_signature_covers_the_exact_bytes_sent(ok: tuple[AwalChatClient, Recorder]) -> None:
    client, recorder = ok
    client.open_ticket("9/../1", "a b&c=d/\u00e9+")
    (request,) = recorder.requests
    path, _, query = request.url.raw_path.decode().partition("?")
    assert path == "/api/developer/wechat/chat/events/9%2F..%2F1"
    assert query == "phone_number_id=a%20b%26c%3Dd%2F%C3%A9%2B"
    expected = sign_request(
        SECRET, "POST", path.removeprefix("/api/developer"), f"?{query}", str(NOW), request.content
    )
    assert request.headers["X-Awal-Signature-256"] == expected


def test_each_call_is_signed_again_with_a_fresh_timestamp(clock: Callable[[], float]) -> None:
    client, recorder, http = make_client(lambda _: httpx.Response(503), clock=clock)
    with http:
        for _ in range(2):
            with pytest.raises(HelpdeskUnavailableError):
                client.open_ticket("42", "1")
    first, second = recorder.requests
    assert (first.headers["X-Timestamp"], second.headers["X-Timestamp"]) == (str(NOW), str(NOW + 1))
    assert first.headers["X-Awal-Signature-256"] != second.headers["X-Awal-Signature-256"]
    for request in (first, second):
        expected = sign_request(
            SECRET,
            "POST",
            "/wechat/chat/events/42",
            "?phone_number_id=1",
            request.headers["X-Timestamp"],
            request.content,
        )
        assert request.headers["X-Awal-Signature-256"] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            json.dumps(OPENED).encode(),
            TicketChange(already=False, ticket_id="123", status="opened"),
        ),
        (b'{"status": true, "message": "Ticket closed successfully"}', TicketChange(already=False)),
        (
            b'{"status": true, "data": {"ticket_id": "9007199254740993", "status": "closed"}}',
            TicketChange(already=False, ticket_id="9007199254740993", status="closed"),
        ),
        (b"not json", TicketChange(already=False)),
        (b"", TicketChange(already=False)),
    ],
)
def test_both_success_shapes_are_accepted(body: bytes, expected: TicketChange) -> None:
    client, _, http = make_client(lambda _: httpx.Response(200, content=body))
    with http:
        assert client.close_ticket("42", "1") == expected


def test_success_body_saying_status_false_is_rejected() -> None:
    client, _, http = make_client(lambda _: httpx.Response(200, json={"status": False}))
    with http, pytest.raises(HelpdeskRejectedError):
        client.open_ticket("42", "1")


@pytest.mark.parametrize("method", ["open_ticket", "close_ticket"])
def test_409_means_the_wanted_state_already_holds(method: str) -> None:
    headers = {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Reset": "1704124860",
    }
    client, _, http = make_client(
        lambda _: httpx.Response(409, headers=headers, json={"error": "conflict"})
    )
    with http:
        change = getattr(client, method)("42", "1")
    assert change == TicketChange(already=True, rate_limit=RateLimitInfo(60, 59, 1704124860.0))


def test_rate_limit_headers_come_with_every_result() -> None:
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1704124830",
    }
    client, _, http = make_client(lambda _: httpx.Response(200, headers=headers, json=OPENED))
    with http:
        assert client.open_ticket("42", "1").rate_limit == RateLimitInfo(100, 0, 1704124830.0)


def test_garbage_headers_do_not_crash() -> None:
    headers = [
        (b"X-RateLimit-Limit", b"\xff"),
        (b"X-RateLimit-Reset", b"tomorrow"),
        (b"Retry-After", b"\x00"),
    ]
    client, _, http = make_client(lambda _: httpx.Response(200, headers=headers, json=OPENED))
    with http:
        assert client.open_ticket("42", "1").rate_limit == RateLimitInfo()
    client, _, http = make_client(lambda _: httpx.Response(429, headers=headers))
    with http, pytest.raises(RateLimitedError) as caught:
        client.open_ticket("42", "1")
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("30", 30.0), ("Mon, 01 Jan 2024 16:00:12 GMT", 12.0), (None, None)],
)
def test_429_raises_rate_limited_with_retry_after(
    retry_after: str | None, expected: float | None
) -> None:
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1704124830",
    }
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = {"error": "Rate limit exceeded", "message": "slow down"}
    client, recorder, http = make_client(lambda _: httpx.Response(429, headers=headers, json=body))
    with http, pytest.raises(RateLimitedError) as caught:
        client.open_ticket("42", "1")
    assert caught.value.retry_after == expected
    assert caught.value.status_code == 429
    assert rate_limit_info(caught.value.response) == RateLimitInfo(100, 0, 1704124830.0)
    assert len(recorder.requests) == 1  # no retry inside the client


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(status: int) -> None:
    client, recorder, http = make_client(lambda _: httpx.Response(status))
    with http, pytest.raises(HelpdeskUnavailableError) as caught:
        client.open_ticket("42", "1")
    assert type(caught.value) is HelpdeskUnavailableError
    assert caught.value.status_code == status
    assert caught.value.request is recorder.requests[0]
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("dropped"),
    ],
)
def test_timeouts_and_connection_errors_are_unavailable(failure: httpx.TransportError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    client, recorder, http = make_client(fail)
    with http, pytest.raises(HelpdeskUnavailableError) as caught:
        client.open_ticket("42", "1")
    assert caught.value.response is None
    assert caught.value.__cause__ is failure
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_is_rejected(status: int) -> None:
    body = {
        "error": "authentication_failed",
        "message": "Invalid HMAC signature",
        "request_id": "req_1",
    }
    client, _, http = make_client(lambda _: httpx.Response(status, json=body))
    with http, pytest.raises(HelpdeskRejectedError) as caught:
        client.close_ticket("42", "1")
    assert caught.value.status_code == status
    message = str(caught.value)
    assert message.startswith(
        f"AwalChat POST /api/developer/wechat/chat/events/42 answered {status}"
    )
    assert message.endswith(": authentication_failed - Invalid HMAC signature")
    assert SECRET not in message


def test_repr_hides_the_secret(ok: tuple[AwalChatClient, Recorder]) -> None:
    assert SECRET not in repr(ok[0])
