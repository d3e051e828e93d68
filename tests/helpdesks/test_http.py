"""The shared helpers: header parsing never raises, statuses map onto the error tree."""

from __future__ import annotations

import httpx
import pytest

from worker.errors import HelpdeskRejectedError, HelpdeskUnavailableError, RateLimitedError
from worker.helpdesks.http import (
    RateLimitInfo,
    new_http_client,
    parse_retry_after,
    raise_for_status,
    rate_limit_info,
    require_timeout,
)

NOW = 1_704_124_800.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Mon, 01 Jan 2024 16:00:30 GMT", 30.0),  # HTTP-date 30 s after NOW
        ("Mon, 01 Jan 2024 15:00:00 GMT", 0.0),  # a date in the past: go now
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e400", None),
        ("9" * 5000, None),
        ("Mon, 99 Foo 2024 25:61:61 GMT", None),
        ("\u00e9\u00e9", None),
    ],
)
def test_retry_after_reads_seconds_or_a_date_and_ignores_garbage(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "7",
                "X-RateLimit-Reset": "1704124860",
            },
            RateLimitInfo(limit=100, remaining=7, reset=1704124860.0),
        ),
        ({}, RateLimitInfo()),
        (
            {
                "X-RateLimit-Limit": "lots",
                "X-RateLimit-Remaining": "-1",
                "X-RateLimit-Reset": "nan",
            },
            RateLimitInfo(),
        ),
        ({"X-RateLimit-Limit": "2.5", "X-RateLimit-Remaining": "3.0"}, RateLimitInfo(remaining=3)),
        ({"X-RateLimit-Limit": "100, 100", "X-RateLimit-Reset": "9" * 400}, RateLimitInfo()),
    ],
)
def test_rate_limit_info_tolerates_garbage(
    headers: dict[str, str], expected: RateLimitInfo
) -> None:
    assert rate_limit_info(httpx.Response(200, headers=headers)) == expected


def test_rate_limit_info_of_no_response_is_empty() -> None:
    assert rate_limit_info(None) == RateLimitInfo()


def test_rate_limit_info_survives_non_ascii_header_bytes() -> None:
    response = httpx.Response(200, headers=[(b"X-RateLimit-Limit", b"\xff\xfe")])
    assert rate_limit_info(response) == RateLimitInfo()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, HelpdeskUnavailableError),
        (503, HelpdeskUnavailableError),
        (429, RateLimitedError),
        (400, HelpdeskRejectedError),
        (401, HelpdeskRejectedError),
        (404, HelpdeskRejectedError),
        (302, HelpdeskRejectedError),
    ],
)
def test_statuses_map_onto_the_error_tree(status: int, error: type[Exception]) -> None:
    request = httpx.Request("POST", "https://h.example/api/v1/tickets?secret=q")
    response = httpx.Response(status, json={"error": "nope\n"}, request=request)
    with pytest.raises(error) as caught:
        raise_for_status(response, vendor="V")
    assert type(caught.value) is error
    assert str(caught.value) == f"V POST /api/v1/tickets answered {status}: nope?"


def test_2xx_passes() -> None:
    request = httpx.Request("GET", "https://h.example/x")
    raise_for_status(httpx.Response(204, request=request), vendor="V")


def test_a_client_without_timeout_is_refused() -> None:
    with httpx.Client(timeout=None) as http, pytest.raises(ValueError, match="timeout"):
        require_timeout(http)
    with new_http_client(timeout_seconds=3.0) as http:
        require_timeout(http)
        assert http.timeout.read == 3.0
