"""HelpWave v1 customers and tickets API (shared/specs/helpwave.md).

    POST /api/v1/customers                  find_or_create_customer -> customer id (int)
    POST /api/v1/tickets                    create_ticket -> ticket id (str, 64-bit)
    GET  /api/v1/tickets/{id}               get_ticket -> HelpWaveTicket (open, closed) | None (404)
    POST /api/v1/tickets/{id}/comments      add_comment -> None (any 2xx)

Authentication is the `x-api-key` header; the key never appears in a message. Each method
call is exactly one attempt (creates are not idempotent: the caller remembers what it
created). Errors follow `http.raise_for_status`; arguments refused before sending and 2xx
answers whose body cannot be read raise HelpdeskRejectedError (retrying cannot help, and a
retried create could duplicate). Timeouts come from the `httpx.Client`, which must carry one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from worker.helpdesks.http import raise_for_status, refuse, require_timeout, send, unexpected_body

VENDOR = "HelpWave"


@dataclass(frozen=True)
class HelpWaveTicket:
    """A HelpWave ticket: open when its HumanTicket is `OPEN` with no `closedAt`; closed when
    it has a HumanTicket that is not open (an agent closed it). A ticket created without
    `isOpenedTicket` has no HumanTicket: neither open nor closed."""

    id: str
    is_open: bool
    closed: bool = False


class _Customer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt


class _CustomerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    customer: _Customer
    existing: bool = False


class _HumanTicket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str | None = Field(default=None, alias="HumanTicketStatus")
    closed_at: Any = Field(default=None, alias="closedAt")


class _Ticket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictStr | StrictInt | None = None
    human_ticket: _HumanTicket | None = Field(default=None, alias="HumanTicket")


class _TicketBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ticket: _Ticket


class HelpWaveClient:
    """Calls to one HelpWave account through an injected `httpx.Client`.

    `base_url` is the account's host, without `/api/v1` (a trailing `/api/v1` is tolerated).
    """

    def __init__(self, http: httpx.Client, *, base_url: str, api_key: str) -> None:
        require_timeout(http)
        base = base_url.rstrip("/")
        self._http = http
        self._api = base if base.endswith("/api/v1") else f"{base}/api/v1"
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"HelpWaveClient(api={self._api!r})"

    def find_or_create_customer(self, phone_number: str, **optional: str | None) -> int:
        """The id of the customer with this phone (or `email=`), created when none exists.

        `optional` takes the spec's fields (`email`, `first_name`, `last_name`, `full_name`,
        `whatsapp_id`, ...); None values are left out. Safe to repeat: an existing customer
        comes back (`existing: true`) with the same id.
        """
        fields = {key: value for key, value in optional.items() if value is not None}
        if phone_number:
            fields["phone_number"] = phone_number
        request = self._request("POST", "/customers", fields)
        if not fields.get("phone_number") and not fields.get("email"):
            refuse(request, vendor=VENDOR, reason="a phone number or an email is required")
        response = self._send(request)
        try:
            return _CustomerBody.model_validate_json(response.content).customer.id
        except ValidationError as exc:
            unexpected_body(response, vendor=VENDOR, exc=exc)

    def create_ticket(self, fields: Mapping[str, Any]) -> str:
        """Create a ticket and return its id as a string (even if the server sent a number).

        `fields` are the spec's body: `customerId` (int) and `Channel` (non-empty str) are
        required, e.g. `{"customerId": 7, "Channel": "Helpwave", "isOpenedTicket": True}`.
        Not idempotent: a repeated call makes a second ticket.
        """
        request = self._request("POST", "/tickets", dict(fields))
        customer_id = fields.get("customerId")
        if not isinstance(customer_id, int) or isinstance(customer_id, bool):
            refuse(request, vendor=VENDOR, reason="customerId must be an integer")
        channel = fields.get("Channel")
        if not isinstance(channel, str) or not channel:
            refuse(request, vendor=VENDOR, reason="Channel is required")
        response = self._send(request)
        try:
            ticket_id = _TicketBody.model_validate_json(response.content).ticket.id
        except ValidationError as exc:
            unexpected_body(response, vendor=VENDOR, exc=exc)
        if ticket_id is None or ticket_id == "":
            unexpected_body(response, vendor=VENDOR, exc=ValueError("ticket without an id"))
        return str(ticket_id)

    def get_ticket(self, ticket_id: str) -> HelpWaveTicket | None:
        """The ticket and whether it is open or closed, or None when HelpWave answers 404."""
        request = self._request("GET", f"/tickets/{quote(ticket_id, safe='')}", None)
        if not ticket_id:
            refuse(request, vendor=VENDOR, reason="ticketId is required")
        response = send(self._http, request, vendor=VENDOR)
        if response.status_code == 404:
            return None
        raise_for_status(response, vendor=VENDOR)
        try:
            ticket = _TicketBody.model_validate_json(response.content).ticket
        except ValidationError as exc:
            unexpected_body(response, vendor=VENDOR, exc=exc)
        human = ticket.human_ticket
        is_open = human is not None and human.status == "OPEN" and human.closed_at is None
        return HelpWaveTicket(
            id=ticket_id if ticket.id is None else str(ticket.id),
            is_open=is_open,
            closed=human is not None and not is_open,
        )

    def add_comment(
        self, ticket_id: str, text: str, *, is_from_shop: bool = False, **optional: Any
    ) -> None:
        """Add a comment; `is_from_shop=False` (the default here) marks a customer's message.

        `optional` takes the spec's fields (`time`, `subject`, `fromEmail`, `toEmails`,
        `Channel`). Success is any 2xx; the body is not read.
        """
        body = {"text": text, "isFromShop": is_from_shop, **optional}
        request = self._request("POST", f"/tickets/{quote(ticket_id, safe='')}/comments", body)
        if not ticket_id:
            refuse(request, vendor=VENDOR, reason="ticketId is required")
        if not text.strip():
            refuse(request, vendor=VENDOR, reason="text is empty")
        self._send(request)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Request:
        headers = {"Accept": "application/json", "x-api-key": self._api_key}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        return self._http.build_request(
            method, f"{self._api}{path}", content=content, headers=headers
        )

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = send(self._http, request, vendor=VENDOR)
        raise_for_status(response, vendor=VENDOR)
        return response
