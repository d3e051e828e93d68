"""The webhook receiver: verify, parse, enqueue, answer (interface.md, "HTTP").

`create_app(settings, inbox)` builds the Starlette app around an injected inbox (tests pass a
fake or an `Inbox` over fakeredis); `build_receiver(settings)` wires the real Redis client;
`receiver_from_env()` is the uvicorn factory:

    uvicorn --factory worker.web:receiver_from_env

The receiver never answers 2xx for an event it has not queued and never queues an event whose
signature failed. Refusals are JSON `{"error": code, "message": reason}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.engine.model import Event
from worker.errors import ConfigError, PayloadError, QueueUnavailableError
from worker.events import Handshake, parse_webhook
from worker.inbox import AcceptResult, Inbox, delivery_id_for, redis_client
from worker.logs import configure_logging
from worker.metrics import ReceiverMetrics
from worker.settings import Settings
from worker.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureVerifier

MAX_BODY_BYTES = 1024 * 1024
READINESS_TIMEOUT_SECONDS = 1.5

_ERROR_CODES = {
    400: "bad_payload",
    401: "bad_signature",
    413: "payload_too_large",
    503: "queue_unavailable",
}

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else the reason it is not (e.g. "rules not loaded")."""


class InboxProtocol(Protocol):
    """What the receiver needs from the queue side (`worker.inbox.Inbox`)."""

    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult: ...

    async def ping(self) -> None: ...


def create_app(
    settings: Settings,
    inbox: InboxProtocol,
    *,
    readiness: Readiness | None = None,
    metrics: ReceiverMetrics | None = None,
    now: Callable[[], float] = time.time,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The receiver app. Raise ConfigError when no webhook secret is configured.

    `readiness` adds a check to `/readyz` beyond Redis answering; `metrics` defaults to a
    fresh registry per app; `now` is the signature clock (Unix seconds).
    """
    secrets = [secret.get_secret_value() for secret in settings.awalchat_webhook_secrets]
    if not secrets:
        raise ConfigError("AWALCHAT_WEBHOOK_SECRETS is not set: the receiver verifies every event")
    receiver = _Receiver(
        verifier=SignatureVerifier(secrets, now=now),
        inbox=inbox,
        metrics=metrics if metrics is not None else ReceiverMetrics(),
        readiness=readiness,
        dry_run=settings.dry_run,
    )
    routes = [
        Route("/webhooks/awalchat", receiver.webhook, methods=["POST"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/readyz", receiver.readyz, methods=["GET"]),
        Route("/metrics", receiver.metrics_text, methods=["GET"]),
        # GET /decisions goes here: recent decision records, only when settings.admin_token
        # is set, behind `Authorization: Bearer $ADMIN_TOKEN` (compare with hmac.compare_digest).
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def build_receiver(settings: Settings, *, readiness: Readiness | None = None) -> Starlette:
    """The production receiver: a bounded Redis client from `REDIS_URL` and an Inbox over it.

    Raise ConfigError naming `AWALCHAT_WEBHOOK_SECRETS` or `REDIS_URL` when unset. The client
    is closed when the app shuts down.
    """
    if not settings.awalchat_webhook_secrets:
        raise ConfigError("AWALCHAT_WEBHOOK_SECRETS is not set: the receiver verifies every event")
    client = redis_client(settings.require_redis_url())

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    return create_app(settings, Inbox(client), readiness=readiness, lifespan=lifespan)


def receiver_from_env() -> Starlette:
    """uvicorn factory: settings from the environment, JSON logs, the production receiver."""
    app = build_receiver(Settings())
    configure_logging()
    return app


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": _ERROR_CODES[status], "message": reason}, status_code=status)


class _Receiver:
    """The route handlers and what they share."""

    def __init__(
        self,
        *,
        verifier: SignatureVerifier,
        inbox: InboxProtocol,
        metrics: ReceiverMetrics,
        readiness: Readiness | None,
        dry_run: bool,
    ) -> None:
        self._verifier = verifier
        self._inbox = inbox
        self._metrics = metrics
        self._readiness = readiness
        self._dry_run = dry_run

    async def webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await self._webhook(request)
        finally:
            self._metrics.latency.observe(time.perf_counter() - started)

    async def _webhook(self, request: Request) -> Response:
        try:
            raw = await _read_body(request)
            message = self._verified(request, raw)
        except PayloadError as exc:
            self._metrics.count(None, _ERROR_CODES[exc.status])
            log.info("webhook refused", extra={"status": exc.status, "reason": exc.reason})
            return _error(exc.status, exc.reason)
        if isinstance(message, Handshake):
            self._metrics.count(None, "handshake")
            return JSONResponse({"challenge": message.challenge})
        return await self._accept(raw, message)

    def _verified(self, request: Request, raw: bytes) -> Handshake | Event:
        """The parsed body once its signature holds; a handshake needs none."""
        try:
            self._verifier.verify(
                raw, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
            )
        except PayloadError as failure:
            if b'"verification"' in raw:
                try:
                    handshake = parse_webhook(raw)
                except PayloadError:
                    handshake = None
                if isinstance(handshake, Handshake):
                    return handshake
            self._metrics.signature_failures.labels(failure.reason.replace(" ", "_")).inc()
            raise
        return parse_webhook(raw)

    async def _accept(self, raw: bytes, event: Event) -> Response:
        context = {"event": event.name, "conversation_id": event.conversation_id}
        try:
            result = await self._inbox.accept(raw, event, dry_run=self._dry_run)
        except QueueUnavailableError as exc:
            self._metrics.count(event.name, "queue_unavailable")
            log.warning(
                "webhook not queued: %s",
                exc,
                extra={**context, "delivery_id": delivery_id_for(raw)},
            )
            return _error(503, "the queue cannot be reached; retry later")
        context["delivery_id"] = result.delivery_id
        if result.duplicate:
            self._metrics.count(event.name, "duplicate")
            log.info("webhook already seen", extra=context)
            return JSONResponse({"status": "duplicate", "delivery_id": result.delivery_id})
        self._metrics.count(event.name, "queued")
        log.info("webhook queued", extra=context)
        return JSONResponse(
            {"status": "queued", "delivery_id": result.delivery_id}, status_code=202
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        reason = await self._not_ready_reason()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def _not_ready_reason(self) -> str | None:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
                await self._inbox.ping()
                return None if self._readiness is None else await self._readiness()
        except QueueUnavailableError as exc:
            return f"redis: {exc}"
        except TimeoutError:
            return "readiness check timed out"

    async def metrics_text(self, request: Request) -> Response:
        body, content_type = self._metrics.render()
        return Response(body, headers={"Content-Type": content_type})


async def _read_body(request: Request) -> bytes:
    """The body, refusing (413) as soon as it is known to pass MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise PayloadError(400, "malformed Content-Length")
        if len(declared) > 10 or int(declared) > MAX_BODY_BYTES:
            raise PayloadError(413, f"body over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadError(413, f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
