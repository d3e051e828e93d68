"""What every helpdesk client shares: one attempt per call, and one status -> error mapping.

    send(http, request, vendor=...)      exactly one attempt; timeout or connection error
                                         -> HelpdeskUnavailableError (request kept, `from exc`)
    raise_for_status(response, ...)      2xx passes; 429 -> RateLimitedError(retry_after);
                                         5xx -> HelpdeskUnavailableError; anything else
                                         (4xx, unexpected 1xx/3xx) -> HelpdeskRejectedError
    rate_limit_info(response)            X-RateLimit-* headers -> RateLimitInfo
    parse_retry_after(value, now=...)    Retry-After (seconds or HTTP-date) -> seconds

Timeouts: every call carries the timeout of the `httpx.Client` it is sent through; the clients
refuse an `httpx.Client` whose timeout is disabled (`require_timeout`), so no call can hang.
Header parsing never raises: a value that is missing, not a number, negative or not finite
reads as None. Error messages name the vendor, method, path and status, never a header.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import httpx

from worker.errors import (
    HelpdeskRejectedError,
    HelpdeskUnavailableError,
    RateLimitedError,
)
from worker.helpdesks.transport import KeepAliveTransport, proxy_configured

_MAX_NUMBER_CHARS = 32  # longer header values are garbage, not numbers
_MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class RateLimitInfo:
    """A vendor's `X-RateLimit-*` headers; None where a header is absent or unreadable.

    `reset` is an absolute Unix time (seconds), as AwalChat documents it.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


class _Cookieless(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep nothing a server sets."""


class HelpdeskHttpClient(httpx.Client):
    """The `httpx.Client` of the helpdesk clients.

    - It keeps no cookies: the helpdesk APIs authenticate every call (signature, API key),
      so a cookie an answer sets is neither kept nor sent back (reading every answer's
      cookies was 5% of a worker's time per call).
    - Through `KeepAliveTransport`, `send(request)` runs the event hooks (the rate gate's)
      and the transport directly, without httpx's auth and redirect layers, which these
      calls never use (no auth configured, redirects not followed, no proxy): about a tenth
      of a call's CPU time. Any other use (`stream=`, `auth=`, `follow_redirects=`, another
      transport) is httpx's own `send`.
    """

    def __init__(self, *, timeout: httpx.Timeout, transport: httpx.BaseTransport | None) -> None:
        super().__init__(timeout=timeout, transport=transport)
        self._cookieless = _Cookieless()
        self._direct = transport if isinstance(transport, KeepAliveTransport) else None

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookieless

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("helpdesk calls carry no cookies")

    def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        if self._direct is None or options:
            return super().send(request, **options)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        hooks = self.event_hooks
        for hook in hooks["request"]:
            hook(request)
        response = self._direct.handle_request(request)  # read whole, `request` set
        try:
            for hook in hooks["response"]:
                hook(response)
        except BaseException:
            response.close()
            raise
        return response


def new_http_client(
    *, timeout_seconds: float, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An `httpx.Client` suited to the helpdesk clients: every call bounded by the timeout,
    no cookies kept, sent through `KeepAliveTransport` unless another transport is given
    or a proxy is configured."""
    if transport is None and not proxy_configured():
        transport = KeepAliveTransport()
    return HelpdeskHttpClient(timeout=httpx.Timeout(timeout_seconds), transport=transport)


def require_timeout(http: httpx.Client) -> None:
    """Raise ValueError when `http` would let a call wait forever (a timeout set to None)."""
    timeout = http.timeout
    if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
        raise ValueError("the httpx.Client given to a helpdesk client must carry a timeout")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_NUMBER_CHARS:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _count(value: str | None) -> int | None:
    number = _number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def rate_limit_info(response: httpx.Response | None) -> RateLimitInfo:
    """Read `X-RateLimit-Limit/-Remaining/-Reset`; never raises (None for garbage or no response).

    Apply it to a result's response or to `HelpdeskError.response` alike.
    """
    if response is None:
        return RateLimitInfo()
    headers = response.headers
    return RateLimitInfo(
        limit=_count(headers.get("X-RateLimit-Limit")),
        remaining=_count(headers.get("X-RateLimit-Remaining")),
        reset=_number(headers.get("X-RateLimit-Reset")),
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date.

    A date in the past gives 0.0; garbage, negative or non-finite values give None.
    """
    seconds = _number(value)
    if seconds is not None or value is None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
        if when.tzinfo is None:  # "-0000": a UTC time of unknown origin
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def describe(request: httpx.Request) -> str:
    """`METHOD /path` for messages: no query string, no header, no body."""
    return f"{request.method} {request.url.path}"


def send(http: httpx.Client, request: httpx.Request, *, vendor: str) -> httpx.Response:
    """Send `request` once and read the answer; transport failures -> HelpdeskUnavailableError."""
    try:
        return http.send(request)
    except httpx.TimeoutException as exc:
        message = f"{vendor} {describe(request)}: timed out ({type(exc).__name__})"
        raise HelpdeskUnavailableError(message, request=request) from exc
    except httpx.RequestError as exc:
        message = f"{vendor} {describe(request)}: no answer ({type(exc).__name__}: {exc})"
        raise HelpdeskUnavailableError(message, request=request) from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[key]) for key in ("error", "message") if isinstance(body.get(key), str)]
    text = " - ".join(parts)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)[:_MAX_DETAIL_CHARS]
    return f": {text}" if text else ""


def raise_for_status(
    response: httpx.Response, *, vendor: str, clock: Callable[[], float] = time.time
) -> None:
    """Return on 2xx, else raise the error the status calls for (see the module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    request = response.request
    message = f"{vendor} {describe(request)} answered {status}{_detail(response)}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=clock())
        raise RateLimitedError(message, request=request, response=response, retry_after=retry_after)
    if status >= 500:
        raise HelpdeskUnavailableError(message, request=request, response=response)
    raise HelpdeskRejectedError(message, request=request, response=response)


def unexpected_body(response: httpx.Response, *, vendor: str, exc: Exception) -> NoReturn:
    """Raise HelpdeskRejectedError for a 2xx whose body cannot be read (retrying would not help)."""
    request = response.request
    message = (
        f"{vendor} {describe(request)} answered {response.status_code} with an unreadable body"
    )
    raise HelpdeskRejectedError(message, request=request, response=response) from exc


def refuse(request: httpx.Request, *, vendor: str, reason: str) -> NoReturn:
    """Raise HelpdeskRejectedError for a call refused before sending (bad arguments)."""
    raise HelpdeskRejectedError(f"{vendor} {describe(request)} not sent: {reason}", request=request)
