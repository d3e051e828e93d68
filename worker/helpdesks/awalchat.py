"""AwalChat developer API: open and close a conversation's ticket (shared/specs/awalchat.md).

    POST {base_url}/wechat/chat/events/{id}?phone_number_id=...   {"route":"openTicket"}

Every request is signed over `METHOD + PATH + QUERY + TIMESTAMP + BODY` (`sign_request`), with
PATH and QUERY read back from the request as built, so the signed bytes are the bytes sent.
Each method call is exactly one attempt with a fresh timestamp and signature; retries belong
to the caller (a retry is a new call, hence signed again). Timeouts come from the
`httpx.Client`, which must carry one.

Outcomes: 2xx -> TicketChange(already=False); 409 -> TicketChange(already=True), the wanted
state already holds (for open and close alike); otherwise the error of `http.raise_for_status`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from worker.errors import HelpdeskRejectedError
from worker.helpdesks.http import (
    RateLimitInfo,
    describe,
    raise_for_status,
    rate_limit_info,
    require_timeout,
    send,
)

VENDOR = "AwalChat"

Route = Literal["openTicket", "closeTicket"]


def sign_request(
    secret: str, method: str, path: str, query: str, timestamp: str, body: bytes
) -> str:
    """`sha256=<lowercase hex>` HMAC-SHA256 of METHOD + PATH + QUERY + TIMESTAMP + BODY.

    `path` is relative to the base URL (no `/api/developer`), `query` is exactly as sent with
    its leading `?` (or "" when there is none), `body` the exact bytes sent. The key is the
    secret's UTF-8 bytes.
    """
    message = f"{method.upper()}{path}{query}{timestamp}".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class TicketChange:
    """The result of open_ticket/close_ticket.

    `already` is True when AwalChat answered 409: the ticket was already in the wanted state
    and nothing changed. `ticket_id` (as a string) and `status` are read from a success body
    when it carries them. `rate_limit` holds the answer's rate-limit headers.
    """

    already: bool
    ticket_id: str | None = None
    status: str | None = None
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)


class _TicketData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: StrictInt | StrictStr | None = None
    status: StrictStr | None = None


class _SuccessBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: bool | None = None
    data: _TicketData | None = None


class AwalChatClient:
    """Signed calls to one AwalChat workspace through an injected `httpx.Client`.

    `base_url` may carry a path prefix (`https://api.awalchat.com/api/developer`) or none
    (`http://127.0.0.1:8081`); the signed PATH is always the part after it. `clock` gives the
    Unix time used for `X-Timestamp` (injectable for tests).
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        hmac_secret: str,
        client_id: str,
        domain: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        require_timeout(http)
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._prefix = httpx.URL(self._base_url).raw_path.split(b"?", 1)[0].rstrip(b"/")
        self._secret = hmac_secret
        self._client_id = client_id
        self._domain = domain
        self._clock = clock

    def __repr__(self) -> str:
        return f"AwalChatClient(base_url={self._base_url!r}, domain={self._domain!r})"

    def open_ticket(self, conversation_id: str, phone_number_id: str) -> TicketChange:
        """Open the conversation's ticket; `already=True` when it was open (409)."""
        return self._change(conversation_id, phone_number_id, "openTicket")

    def close_ticket(self, conversation_id: str, phone_number_id: str) -> TicketChange:
        """Close the conversation's ticket; `already=True` when it was closed (409)."""
        return self._change(conversation_id, phone_number_id, "closeTicket")

    def _change(self, conversation_id: str, phone_number_id: str, route: Route) -> TicketChange:
        body = json.dumps({"route": route}, separators=(",", ":")).encode()
        url = (
            f"{self._base_url}/wechat/chat/events/{quote(str(conversation_id), safe='')}"
            f"?phone_number_id={quote(str(phone_number_id), safe='')}"
        )
        request = self._signed(self._http.build_request("POST", url, content=body))
        response = send(self._http, request, vendor=VENDOR)
        limits = rate_limit_info(response)
        if response.status_code == 409:
            return TicketChange(already=True, rate_limit=limits)
        raise_for_status(response, vendor=VENDOR, clock=self._clock)
        try:
            parsed = _SuccessBody.model_validate_json(response.content)
        except ValidationError:
            return TicketChange(already=False, rate_limit=limits)  # 2xx: it was done
        if parsed.status is False:
            message = f"{VENDOR} {describe(request)} answered {response.status_code} status=false"
            raise HelpdeskRejectedError(message, request=request, response=response)
        data = parsed.data or _TicketData()
        ticket_id = None if data.ticket_id is None else str(data.ticket_id)
        return TicketChange(
            already=False, ticket_id=ticket_id, status=data.status, rate_limit=limits
        )

    def _signed(self, request: httpx.Request) -> httpx.Request:
        """Add the auth headers, signing the path, query and body exactly as they will be sent."""
        path, _, query = request.url.raw_path.partition(b"?")
        if self._prefix and path.startswith(self._prefix + b"/"):
            path = path[len(self._prefix) :]
        timestamp = str(int(self._clock()))
        signature = sign_request(
            self._secret,
            request.method,
            path.decode("ascii"),
            f"?{query.decode('ascii')}" if query else "",
            timestamp,
            request.content,
        )
        request.headers["Accept"] = "application/json"
        request.headers["Content-Type"] = "application/json"
        request.headers["X-Awal-Signature-256"] = signature
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Domain"] = self._domain
        request.headers["X-Client-ID"] = self._client_id
        return request
