"""Fake HelpWave v1 API that checks what shared/specs/helpwave.md says.

    POST /api/v1/customers                   find or create (by email or phone; ids are ints)
    POST /api/v1/tickets                     customerId (int) and Channel required; 404 when
                                             the customer does not exist; 64-bit string ids
    GET  /api/v1/tickets/{id}                HumanTicket OPEN when created isOpenedTicket
    GET  /api/v1/tickets/{id}/comments
    POST /api/v1/tickets/{id}/comments       text required (non-empty after trim)

Auth: `x-api-key` or `Authorization: Bearer`; 401 `Missing API key` / `Unauthorized - Invalid
API key`. Faults as in `common.Faults`; a 503 from fail_ratio changes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import CallRecord, Faults, Hub, parse_json_object

DEFAULT_API_KEY = "fake-helpwave-key"
CUSTOMER_FIELDS = (
    "email", "phone_number", "first_name", "last_name", "full_name",
    "whatsapp_id", "shopify_id", "wordpress_id", "fb_user_id", "ig_user_id",
)  # fmt: skip

Answer = tuple[int, dict[str, Any]]
Action = Callable[[Request, dict[str, Any] | None, CallRecord], Answer]


class HelpWaveConfig(Faults):
    """Settable at runtime through POST /_fake/config {"helpwave": {...}}."""

    api_key: str = DEFAULT_API_KEY
    create_status: int = Field(default=201, ge=200, le=201)  # creates answer 200 or 201


class HelpWaveFake:
    """Customers, tickets and comments in memory; `config` may be replaced at any time."""

    def __init__(self, hub: Hub, config: HelpWaveConfig) -> None:
        self.hub = hub
        self.initial = config
        self.config = config
        self.customers: dict[int, dict[str, Any]] = {}
        self.tickets: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}

    def reset(self) -> None:
        self.config = self.initial
        self.customers.clear()
        self.tickets.clear()
        self.comments.clear()

    def configure(self, changes: dict[str, Any]) -> None:
        self.config = HelpWaveConfig.model_validate({**self.config.model_dump(), **changes})

    def snapshot(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(exclude={"api_key"}),
            "customers": list(self.customers.values()),
            "tickets": self.tickets,
            "comments": self.comments,
        }

    def close_ticket(self, ticket_id: str) -> bool:
        """Close a ticket's HumanTicket as an agent would in HelpWave's UI."""
        human = self.tickets.get(ticket_id, {}).get("HumanTicket")
        if human is None:
            return False
        human.update(HumanTicketStatus="CLOSED", closedAt=self._now())
        return True

    def routes(self) -> list[Route]:
        def route(path: str, action: Action, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(request, action)

            return Route(f"/api/v1{path}", endpoint, methods=[method])

        return [
            route("/customers", self._customers, "POST"),
            route("/tickets", self._create_ticket, "POST"),
            route("/tickets/{ticket_id}", self._get_ticket, "GET"),
            route("/tickets/{ticket_id}/comments", self._list_comments, "GET"),
            route("/tickets/{ticket_id}/comments", self._add_comment, "POST"),
        ]

    async def _handle(self, request: Request, action: Action) -> Response:
        config = self.config

        async def decide(call: CallRecord, body: bytes) -> Response:
            status, answer = self._decide(config, request, call, body, action)
            return JSONResponse(answer, status)

        return await self.hub.run("helpwave", config, request, decide)

    def _decide(
        self,
        config: HelpWaveConfig,
        request: Request,
        call: CallRecord,
        body: bytes,
        action: Action,
    ) -> Answer:
        authorization = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or authorization.removeprefix("Bearer ").strip()
        if config.auth == "reject" or (
            config.auth == "verify" and key and not hmac.compare_digest(key, config.api_key)
        ):
            return 401, {"error": "Unauthorized - Invalid API key"}
        if config.auth == "verify" and not key:
            return 401, {"error": "Missing API key"}
        if self.hub.unavailable(config):
            return 503, {"error": "Service temporarily unavailable"}
        payload = parse_json_object(body)
        if request.method == "POST" and payload is None:
            return 400, {"error": "Body must be a JSON object"}
        return action(request, payload, call)

    def _now(self) -> str:
        return datetime.fromtimestamp(self.hub.clock(), UTC).isoformat().replace("+00:00", "Z")

    def _new_id(self) -> str:
        while (new := str(self.hub.rng.randrange(10**17, 2**63))) in self.tickets:
            pass
        return new

    def _customers(self, request: Request, body: dict[str, Any] | None, call: CallRecord) -> Answer:
        assert body is not None
        email, phone = body.get("email") or None, body.get("phone_number") or None
        if email is None and phone is None:
            return 400, {"error": "email or phone_number is required"}
        for customer in self.customers.values():
            if (email and customer.get("email") == email) or (
                phone and customer.get("phone_number") == phone
            ):
                return 200, {"success": True, "existing": True, "customer": customer}
        customer = {"id": len(self.customers) + 1, "email": None, "phone_number": None}
        customer.update({name: body[name] for name in CUSTOMER_FIELDS if name in body})
        self.customers[customer["id"]] = customer
        call.applied = True
        return self.config.create_status, {"success": True, "customer": customer}

    def _create_ticket(
        self, request: Request, body: dict[str, Any] | None, call: CallRecord
    ) -> Answer:
        assert body is not None
        customer_id = body.get("customerId")
        if not isinstance(customer_id, int) or isinstance(customer_id, bool):
            return 400, {"error": "customerId (integer) is required"}
        channel = body.get("Channel")
        if not isinstance(channel, str) or not channel:
            return 400, {"error": "Channel is required"}
        if customer_id not in self.customers:
            return 404, {"error": "Customer not found"}
        now = self._now()
        ticket_id = self._new_id()
        human = None
        if body.get("isOpenedTicket") in (True, "true"):
            human = {"id": len(self.tickets) + 1, "HumanTicketStatus": "OPEN", "openedAt": now}
            human["closedAt"] = None
        ticket = {
            "date": now, "lastMessage": None, "lastMessageTime": now, "unReadChatCount": 0,
            **{key: value for key, value in body.items() if key != "customerId"},
            "id": ticket_id, "customerID": customer_id, "HumanTicket": human,
        }  # fmt: skip
        ticket.pop("isOpenedTicket", None)
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        call.applied = True
        return self.config.create_status, {"success": True, "ticket": ticket}

    def _get_ticket(
        self, request: Request, body: dict[str, Any] | None, call: CallRecord
    ) -> Answer:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return 404, {"error": "Ticket not found"}
        customer = self.customers.get(ticket["customerID"])
        return 200, {"success": True, "ticket": {**ticket, "Customer": customer, "User": None}}

    def _list_comments(
        self, request: Request, body: dict[str, Any] | None, call: CallRecord
    ) -> Answer:
        comments = self.comments.get(request.path_params["ticket_id"])
        if comments is None:
            return 404, {"error": "Ticket not found"}
        return 200, {"success": True, "comments": comments, "totalCount": len(comments)}

    def _add_comment(
        self, request: Request, body: dict[str, Any] | None, call: CallRecord
    ) -> Answer:
        assert body is not None
        ticket_id = request.path_params["ticket_id"]
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, {"error": "text is required"}
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return 404, {"error": "Ticket not found"}
        from_shop = body.get("isFromShop", True)
        comment: dict[str, Any] = {
            "id": self._new_id(), "text": text, "time": body.get("time") or self._now(),
            "Channel": body.get("Channel") or ticket.get("Channel"),
            "isFromShop": from_shop not in (False, "false"),
            **{key: body[key] for key in ("subject", "fromEmail", "toEmails") if key in body},
        }  # fmt: skip
        self.comments[ticket_id].append(comment)
        ticket.update(lastMessage=text, lastMessageTime=comment["time"])
        if not comment["isFromShop"]:
            ticket["unReadChatCount"] = 1
        call.applied = True
        return self.config.create_status, {"success": True, "comment": comment}
