"""Fake AwalChat ticket endpoint that checks what shared/specs/awalchat.md says.

    POST /api/developer/wechat/chat/events/{id}?phone_number_id=...  {"route": "openTicket"}

Order of checks: auth headers (400 `missing_headers`, or the configured status) -> timestamp
window and HMAC over METHOD+PATH+QUERY+TIMESTAMP+BODY (401 `authentication_failed`) ->
X-Domain / X-Client-ID (401) -> fixed-window budget per X-Domain (429 + Retry-After) ->
fail_ratio (503, no effect) -> request (400 / 404) -> effect (200, or 409 when the ticket is
already in the wanted state). Every answer carries X-RateLimit-Limit/-Remaining/-Reset
(Reset an absolute Unix time). The signature check is written independently of the client.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import CallRecord, Faults, Hub, json_error, parse_json_object

PREFIX = "/api/developer"
DEFAULT_SECRET = "fake-awalchat-secret"
DEFAULT_DOMAIN = "fake-shop.awalchat.test"
DEFAULT_CLIENT_ID = "fake-client-id"
AUTH_HEADERS = ("X-Awal-Signature-256", "X-Timestamp", "X-Domain", "X-Client-ID")


class AwalChatConfig(Faults):
    """Settable at runtime through POST /_fake/config {"awalchat": {...}}."""

    secret: str = DEFAULT_SECRET
    domain: str | None = DEFAULT_DOMAIN  # None accepts any X-Domain
    client_id: str | None = DEFAULT_CLIENT_ID  # None accepts any X-Client-ID
    limit: int = Field(default=1000, ge=1)  # calls per window per X-Domain
    window: float = Field(default=60.0, gt=0)  # seconds
    # "first_call": a window starts at its first call; "clock": windows are fixed to the
    # clock (multiples of `window` since the epoch). Reset is the end rounded up to a second.
    window_alignment: Literal["first_call", "clock"] = "first_call"
    unknown_conversations: list[str] = Field(default_factory=list)  # answered 404
    missing_headers_status: int = Field(default=400, ge=400, le=401)
    timestamp_tolerance: float | None = Field(default=300.0, gt=0)  # None: any timestamp


@dataclass
class TicketState:
    open: bool = False
    ticket_id: int | None = None
    opens: int = 0
    closes: int = 0


def _error(status: int, code: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message, "request_id": "req_fake"}
    if details:
        body["details"] = details
    return body


class AwalChatFake:
    """Ticket state, rate windows and the route; `config` may be replaced at any time."""

    def __init__(self, hub: Hub, config: AwalChatConfig) -> None:
        self.hub = hub
        self.initial = config
        self.config = config
        self.tickets: dict[str, TicketState] = {}
        self.windows: dict[str, tuple[float, int]] = {}  # domain -> (window end, calls)
        self._next_ticket = 1

    def reset(self) -> None:
        self.config = self.initial
        self.tickets.clear()
        self.windows.clear()
        self._next_ticket = 1

    def configure(self, changes: dict[str, Any]) -> None:
        self.config = AwalChatConfig.model_validate({**self.config.model_dump(), **changes})
        if {"limit", "window", "window_alignment"} & changes.keys():
            self.windows.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(exclude={"secret"}),
            "tickets": {conv: asdict(state) for conv, state in self.tickets.items()},
        }

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/wechat/chat/events/{{conversation_id}}", self.events, methods=["POST"])
        ]

    async def events(self, request: Request) -> Response:
        config = self.config
        return await self.hub.run(
            "awalchat",
            config,
            request,
            lambda call, body: self._decide(config, request, call, body),
        )

    def _window(self, domain: str, *, take: bool) -> tuple[bool, dict[str, str]]:
        now = self.hub.clock()
        end, count = self.windows.get(domain, (0.0, 0))
        if now >= end:
            window = self.config.window
            if self.config.window_alignment == "clock":
                end = (math.floor(now / window) + 1) * window
            else:
                end = now + window
            count = 0
        allowed = count < self.config.limit
        if allowed and take:
            count += 1
            self.windows[domain] = (end, count)
        headers = {
            "X-RateLimit-Limit": str(self.config.limit),
            "X-RateLimit-Remaining": str(max(0, self.config.limit - count)),
            "X-RateLimit-Reset": str(math.ceil(end)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(end - now)))
        return allowed, headers

    async def _decide(
        self, config: AwalChatConfig, request: Request, call: CallRecord, body: bytes
    ) -> Response:
        domain = request.headers.get("X-Domain", "")
        refusal = self._refuse_auth(config, request, body)
        if refusal is not None:
            return JSONResponse(refusal[1], refusal[0], headers=self._window(domain, take=False)[1])
        allowed, limits = self._window(domain, take=True)
        if not allowed:
            body_429 = {"error": "Rate limit exceeded", "message": "Too many requests"}
            return json_error(429, body_429, limits)
        if self.hub.unavailable(config):
            return json_error(503, _error(503, "service_unavailable", "Try again later"), limits)
        status, answer = self._act(config, request, call, body)
        return JSONResponse(answer, status, headers=limits)

    def _refuse_auth(
        self, config: AwalChatConfig, request: Request, body: bytes
    ) -> tuple[int, dict[str, Any]] | None:
        if config.auth == "skip":
            return None
        if config.auth == "reject":
            return 401, _error(401, "authentication_failed", "Invalid credentials")
        headers = request.headers
        missing = [name for name in AUTH_HEADERS if not headers.get(name)]
        if headers.get("Accept") is None:
            missing.append("Accept")
        if body and headers.get("Content-Type") is None:
            missing.append("Content-Type")
        if missing:
            message = "Missing required headers"
            return config.missing_headers_status, _error(
                400, "missing_headers", message, missing=missing
            )
        if not headers.get("Content-Type", "application/json").startswith("application/json"):
            return 400, _error(400, "invalid_request", "Content-Type must be application/json")
        timestamp = headers["X-Timestamp"]
        if not (timestamp.isascii() and timestamp.isdigit()):
            return 401, _error(401, "authentication_failed", "Invalid timestamp")
        tolerance = config.timestamp_tolerance
        if tolerance is not None and abs(self.hub.clock() - int(timestamp)) > tolerance:
            return 401, _error(401, "authentication_failed", "Timestamp outside the allowed window")
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.removeprefix(PREFIX.encode())
        query: bytes = request.scope.get("query_string", b"")
        message_bytes = (
            request.method.encode()
            + path
            + (b"?" + query if query else b"")
            + timestamp.encode()
            + body
        )
        digest = hmac.new(config.secret.encode(), message_bytes, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers["X-Awal-Signature-256"], f"sha256={digest}"):
            return 401, _error(401, "authentication_failed", "Invalid HMAC signature")
        if config.domain is not None and headers["X-Domain"] != config.domain:
            return 401, _error(401, "authentication_failed", "Unknown domain")
        if config.client_id is not None and headers["X-Client-ID"] != config.client_id:
            return 401, _error(401, "authentication_failed", "Unknown client id")
        return None

    def _act(
        self, config: AwalChatConfig, request: Request, call: CallRecord, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        conversation = request.path_params["conversation_id"]
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        payload = parse_json_object(body)
        route = payload.get("route") if payload else None
        if not conversation.isascii() or not conversation.isdigit():
            return 400, _error(400, "invalid_data", "id must be an integer")
        if not query.get("phone_number_id", [""])[0]:
            return 400, _error(400, "invalid_data", "phone_number_id is required")
        if route not in ("openTicket", "closeTicket"):
            return 400, _error(400, "invalid_data", "route must be openTicket or closeTicket")
        if conversation in config.unknown_conversations:
            return 404, _error(404, "not_found", "Conversation not found")
        state = self.tickets.setdefault(conversation, TicketState())
        now = datetime.fromtimestamp(self.hub.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if route == "openTicket":
            if state.open:
                return 409, _error(409, "conflict", "Ticket already open")
            state.open, state.ticket_id, state.opens = True, self._next_ticket, state.opens + 1
            self._next_ticket += 1
            change = {"status": "opened", "opened_at": now}
            message = "Ticket opened successfully"
        else:
            if not state.open:
                return 409, _error(409, "conflict", "Ticket already closed")
            state.open, state.closes = False, state.closes + 1
            change = {"status": "closed", "closed_at": now}
            message = "Ticket closed successfully"
        call.applied = True
        data: dict[str, Any] = {
            "ticket_id": state.ticket_id,
            "conversation_id": int(conversation),
            **change,
        }
        return 200, {"status": True, "message": message, "data": data}
