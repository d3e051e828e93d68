"""The fake providers refuse what the real vendors refuse, so tests against them mean something."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests.fakes.awalchat_fake import AwalChatConfig
from tests.fakes.helpwave_fake import HelpWaveConfig
from tests.fakes.providers import FakeProviders, create_app
from tests.fakes.server import FakeControl, run_fake_providers
from worker.errors import HelpdeskRejectedError, HelpdeskUnavailableError, RateLimitedError
from worker.helpdesks import (
    AwalChatClient,
    HelpWaveClient,
    HelpWaveTicket,
    RateLimitInfo,
    TicketChange,
)
from worker.helpdesks import sign_request as sign

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` behind its TestClient; `httpx` still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

NOW = 1_704_124_800.0
SECRET = "s3cret"
KEY = "hw-key"
EVENTS = "/api/developer/wechat/chat/events"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeProviders:
    return FakeProviders(
        awalchat=AwalChatConfig(
            secret=SECRET, limit=100, window=10.0, unknown_conversations=["404"]
        ),
        helpwave=HelpWaveConfig(api_key=KEY),
        clock=clock,
    )


@pytest.fixture
def http(fake: FakeProviders) -> Iterator[TestClient]:
    with TestClient(create_app(fake)) as client:
        yield client


def awalchat(http: httpx.Client, clock: Clock, **overrides: str) -> AwalChatClient:
    options = {
        "hmac_secret": SECRET,
        "client_id": "fake-client-id",
        "domain": "fake-shop.awalchat.test",
    }
    options.update(overrides)
    return AwalChatClient(
        http, base_url=f"{str(http.base_url).rstrip('/')}/api/developer", clock=clock, **options
    )


def signed_headers(
    body: bytes, *, query: str = "?phone_number_id=1", path: str = "/wechat/chat/events/1"
) -> dict[str, str]:
    return {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Awal-Signature-256": sign(SECRET, "POST", path, query, str(int(NOW)), body),
        "X-Timestamp": str(int(NOW)),
        "X-Domain": "fake-shop.awalchat.test",
        "X-Client-ID": "fake-client-id",
    }


OPEN = b'{"route":"openTicket"}'


def test_a_signed_open_then_close_changes_state_once(http: TestClient, clock: Clock) -> None:
    client = awalchat(http, clock)
    assert client.open_ticket("1", "55").ticket_id == "1"
    assert client.open_ticket("1", "55").already
    assert not client.close_ticket("1", "55").already
    assert client.close_ticket("1", "55").already
    state = FakeControl(http).state()["awalchat"]["tickets"]["1"]
    assert state == {"open": False, "ticket_id": 1, "opens": 1, "closes": 1}


@pytest.mark.parametrize(
    "overrides",
    [{"hmac_secret": "wrong"}, {"domain": "other.example"}, {"client_id": "other"}],
)
def test_wrong_credentials_are_refused_with_401(
    http: TestClient, clock: Clock, overrides: dict[str, str]
) -> None:
    with pytest.raises(HelpdeskRejectedError) as caught:
        awalchat(http, clock, **overrides).open_ticket("1", "55")
    assert caught.value.status_code == 401
    assert caught.value.response is not None
    assert caught.value.response.json()["error"] == "authentication_failed"
    assert FakeControl(http).state()["awalchat"]["tickets"] == {}


def test_signature_must_cover_the_body_query_and_timestamp(http: TestClient, clock: Clock) -> None:
    headers = signed_headers(OPEN)
    ok = http.post(f"{EVENTS}/1?phone_number_id=1", content=OPEN, headers=headers)
    assert ok.status_code == 200
    tampered = [
        ("/1?phone_number_id=1", b'{"route":"closeTicket"}', headers),
        ("/1?phone_number_id=2", OPEN, headers),
        ("/1?phone_number_id=1", OPEN, {**headers, "X-Timestamp": str(int(NOW) + 1)}),
    ]
    for target, body, sent_headers in tampered:
        response = http.post(f"{EVENTS}{target}", content=body, headers=sent_headers)
        assert response.status_code == 401
        assert response.json()["message"] == "Invalid HMAC signature"


def test_stale_timestamp_is_refused(http: TestClient, clock: Clock) -> None:
    client = awalchat(http, clock)
    stale = AwalChatClient(
        http, base_url=f"{str(http.base_url).rstrip('/')}/api/developer", hmac_secret=SECRET,
        client_id="fake-client-id", domain="fake-shop.awalchat.test", clock=lambda: NOW - 301,
    )  # fmt: skip
    with pytest.raises(HelpdeskRejectedError, match="Timestamp outside"):
        stale.open_ticket("1", "55")
    assert not client.open_ticket("1", "55").already


@pytest.mark.parametrize("status", [400, 401])
def test_missing_headers_are_refused(http: TestClient, fake: FakeProviders, status: int) -> None:
    FakeControl(http).configure(awalchat={"missing_headers_status": status})
    headers = signed_headers(OPEN)
    del headers["X-Domain"], headers["X-Awal-Signature-256"]
    response = http.post(f"{EVENTS}/1?phone_number_id=1", content=OPEN, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == "missing_headers"
    assert set(body["details"]["missing"]) == {"X-Domain", "X-Awal-Signature-256"}
    assert "X-RateLimit-Limit" in response.headers


def test_429_past_the_limit_until_the_window_ends(http: TestClient, clock: Clock) -> None:
    FakeControl(http).configure(awalchat={"limit": 3})
    client = awalchat(http, clock)
    changes = [client.open_ticket(str(n), "55") for n in range(3)]
    assert [c.rate_limit.remaining for c in changes] == [2, 1, 0]
    assert {c.rate_limit.reset for c in changes} == {NOW + 10}
    clock.now += 4
    with pytest.raises(RateLimitedError) as caught:
        client.open_ticket("9", "55")
    assert caught.value.retry_after == 6.0
    assert caught.value.response is not None
    assert caught.value.response.json()["error"] == "Rate limit exceeded"
    assert "9" not in FakeControl(http).state()["awalchat"]["tickets"]
    clock.now += 6
    assert client.open_ticket("9", "55") == TicketChange(
        already=False,
        ticket_id="4",
        status="opened",
        rate_limit=RateLimitInfo(3, 2, NOW + 20),
    )


def test_clock_aligned_windows_end_at_multiples_of_the_window(
    http: TestClient, clock: Clock
) -> None:
    FakeControl(http).configure(awalchat={"limit": 2, "window_alignment": "clock"})
    client = awalchat(http, clock)
    clock.now = 1_700_000_003.5  # 3.5 s into a 10 s window of the clock
    first = client.open_ticket("1", "55")
    assert first.rate_limit == RateLimitInfo(2, 1, 1_700_000_010)
    clock.now = 1_700_000_009.9
    assert client.open_ticket("2", "55").rate_limit.remaining == 0
    with pytest.raises(RateLimitedError):
        client.open_ticket("3", "55")
    clock.now = 1_700_000_010.0  # a new window of the clock, whenever the last call was
    assert client.open_ticket("3", "55").rate_limit == RateLimitInfo(2, 1, 1_700_000_020)


def test_invalid_requests_and_unknown_conversations(http: TestClient, clock: Clock) -> None:
    client = awalchat(http, clock)
    for conversation, phone, status in [("404", "55", 404), ("1", "", 400), ("x1", "55", 400)]:
        with pytest.raises(HelpdeskRejectedError) as caught:
            client.open_ticket(conversation, phone)
        assert caught.value.status_code == status
    body = b'{"route":"reopen"}'
    response = http.post(
        f"{EVENTS}/1?phone_number_id=1", content=body, headers=signed_headers(body)
    )
    assert response.status_code == 400


def test_fail_ratio_answers_503_without_effect_and_is_seeded(
    http: TestClient, clock: Clock
) -> None:
    control = FakeControl(http)
    control.configure(awalchat={"fail_ratio": 1.0})
    with pytest.raises(HelpdeskUnavailableError) as caught:
        awalchat(http, clock).open_ticket("1", "55")
    assert caught.value.status_code == 503
    assert control.state()["awalchat"]["tickets"] == {}

    def pattern() -> list[int | None]:
        control.reset()
        control.configure(awalchat={"fail_ratio": 0.5})
        for n in range(12):
            http.post(
                f"{EVENTS}/{n}?phone_number_id=1",
                content=OPEN,
                headers=signed_headers(OPEN, path=f"/wechat/chat/events/{n}"),
            )
        return [call.status for call in control.calls("awalchat")]

    first = pattern()
    assert first == pattern()
    assert {200, 503} == set(first)


def test_auth_modes_skip_and_reject(http: TestClient, clock: Clock) -> None:
    control = FakeControl(http)
    control.configure(awalchat={"auth": "skip"}, helpwave={"auth": "skip"})
    assert (
        http.post(f"{EVENTS}/1?phone_number_id=1", json={"route": "openTicket"}).status_code == 200
    )
    assert http.post("/api/v1/customers", json={"email": "a@b.c"}).status_code == 201
    control.configure(awalchat={"auth": "reject"}, helpwave={"auth": "reject"})
    with pytest.raises(HelpdeskRejectedError):
        awalchat(http, clock).close_ticket("1", "55")
    assert (
        http.post(
            "/api/v1/customers", headers={"x-api-key": KEY}, json={"email": "a@b.c"}
        ).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("knob", "applied"), [("drop_before_act", False), ("drop_after_act", True)]
)
def test_drops_answer_nothing(http: TestClient, clock: Clock, knob: str, applied: bool) -> None:
    control = FakeControl(http)
    control.configure(awalchat={knob: 1.0})
    with pytest.raises(ConnectionAbortedError):  # a real server closes the connection instead
        awalchat(http, clock).open_ticket("1", "55")
    (call,) = control.calls("awalchat")
    assert (call.outcome, call.applied) == ("dropped", applied)


def test_control_api_refuses_unknown_knobs(http: TestClient) -> None:
    assert http.post("/_fake/config", json={"awalchat": {"fail_ration": 1}}).status_code == 400
    assert http.post("/_fake/config", json={"awalchta": {}}).status_code == 400


def test_helpwave_refuses_missing_or_wrong_keys(http: TestClient) -> None:
    body = {"phone_number": "+1"}
    missing = http.post("/api/v1/customers", json=body)
    wrong = http.post("/api/v1/customers", json=body, headers={"x-api-key": "nope"})
    bearer = http.post("/api/v1/customers", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert (missing.status_code, missing.json()) == (401, {"error": "Missing API key"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Unauthorized - Invalid API key"})
    assert bearer.status_code == 201
    calls = FakeControl(http).calls("helpwave")
    assert [c.status for c in calls] == [401, 401, 201]
    assert calls[1].headers["x-api-key"] == "<redacted>"
    assert calls[2].headers["authorization"] == "<redacted>"


def test_helpwave_flow_through_the_real_client(http: TestClient) -> None:
    client = HelpWaveClient(http, base_url=str(http.base_url), api_key=KEY)
    customer = client.find_or_create_customer("+9665", full_name="Ann")
    assert client.find_or_create_customer("+9665") == customer
    ticket_id = client.create_ticket(
        {"customerId": customer, "Channel": "Helpwave", "isOpenedTicket": True}
    )
    assert ticket_id.isdigit()
    assert int(ticket_id) > 2**53
    assert client.get_ticket(ticket_id) == HelpWaveTicket(ticket_id, is_open=True)
    client.add_comment(ticket_id, "hello")
    FakeControl(http).close_helpwave_ticket(ticket_id)
    assert client.get_ticket(ticket_id) == HelpWaveTicket(ticket_id, is_open=False, closed=True)
    assert client.get_ticket("123") is None
    state = FakeControl(http).state()["helpwave"]
    assert state["comments"][ticket_id][0]["isFromShop"] is False
    assert state["tickets"][ticket_id]["unReadChatCount"] == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/tickets", {"customerId": 99, "Channel": "Mail"}, 404),
        ("/api/v1/tickets", {"customerId": 1}, 400),
        ("/api/v1/tickets", {"customerId": "1", "Channel": "Mail"}, 400),
        ("/api/v1/customers", {"first_name": "x"}, 400),
        ("/api/v1/tickets/1/comments", {"text": "hi"}, 404),
    ],
)
def test_helpwave_refuses_invalid_requests(
    http: TestClient, path: str, body: dict[str, Any], status: int
) -> None:
    http.post("/api/v1/customers", json={"email": "a@b.c"}, headers={"x-api-key": KEY})
    response = http.post(path, content=json.dumps(body), headers={"x-api-key": KEY})
    assert response.status_code == status


def test_helpwave_comment_text_must_not_be_blank(http: TestClient) -> None:
    client = HelpWaveClient(http, base_url=str(http.base_url), api_key=KEY)
    ticket = client.create_ticket(
        {"customerId": client.find_or_create_customer("+1"), "Channel": "Mail"}
    )
    response = http.post(
        f"/api/v1/tickets/{ticket}/comments", json={"text": "  "}, headers={"x-api-key": KEY}
    )
    assert (response.status_code, response.json()) == (400, {"error": "text is required"})


def test_real_process_serves_signed_calls_drops_and_delays() -> None:
    with (
        run_fake_providers(awalchat_secret=SECRET, limit=50, window=60) as fake,
        httpx.Client(timeout=2.0) as http,
    ):
        client = AwalChatClient(
            http, base_url=fake.awalchat_base_url, hmac_secret=SECRET,
            client_id=fake.awalchat_client_id, domain=fake.awalchat_domain,
        )  # fmt: skip
        opened = client.open_ticket("7", fake.phone_number_id)
        assert (opened.already, opened.rate_limit.limit, opened.rate_limit.remaining) == (
            False,
            50,
            49,
        )

        fake.control.configure(awalchat={"drop_after_act": 1.0})
        with pytest.raises(HelpdeskUnavailableError) as dropped:
            client.close_ticket("7", fake.phone_number_id)
        assert isinstance(dropped.value.__cause__, httpx.RemoteProtocolError)
        assert dropped.value.response is None

        fake.control.configure(awalchat={"drop_after_act": 0.0, "delay": 0.5})
        with httpx.Client(timeout=0.1) as impatient_http:
            impatient = AwalChatClient(
                impatient_http, base_url=fake.awalchat_base_url, hmac_secret=SECRET,
                client_id=fake.awalchat_client_id, domain=fake.awalchat_domain,
            )  # fmt: skip
            with pytest.raises(HelpdeskUnavailableError) as slow:
                impatient.open_ticket("7", fake.phone_number_id)
        assert isinstance(slow.value.__cause__, httpx.TimeoutException)

        fake.control.configure(awalchat={"delay": 0.0})
        assert client.open_ticket("7", fake.phone_number_id).already  # the slow call did open it
        assert [c.status for c in fake.control.calls("awalchat")] == [200, 200, 200, 409]
        assert [c.outcome for c in fake.control.calls("awalchat")][1] == "dropped"
        ticket = fake.control.state()["awalchat"]["tickets"]["7"]
        assert (ticket["open"], ticket["opens"], ticket["closes"]) == (True, 2, 1)
