"""The receiver's route handlers: the raw ASGI webhook route (the one hot path) and the
health, readiness and metrics endpoints. `worker.receiver.app.create_app` mounts them.

The webhook route reads the ASGI messages itself, stops reading at 1 MiB + 1 byte, verifies
the signature before parsing, and answers pre-encoded JSON. What an attacker can make it
spend is bounded (interface.md, "Hostile cost"):

- a body must arrive within `READ_TIMEOUT_SECONDS` of the request's head, else 408 (and the
  connection is closed): a sender trickling bytes holds nothing for long, and waiting for it
  never holds up another request;
- an unsigned body is parsed only when it may be a handshake: at most `MAX_HANDSHAKE_BYTES`
  with `"verification"` in it. Any other unsigned body costs one HMAC per secret, then 401;
- parsing (`worker.engine.envelope`) is linear in the body's length.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from worker.engine.envelope import Handshake, parse_webhook
from worker.engine.model import Event
from worker.errors import PayloadError, QueueUnavailableError
from worker.metrics import ReceiverMetrics
from worker.receiver.deadlines import Deadlines
from worker.receiver.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureVerifier
from worker.storage.inbox import AcceptResult, delivery_id_for

MAX_BODY_BYTES = 1024 * 1024
MAX_HANDSHAKE_BYTES = 4 * 1024
"""An unsigned body longer than this is refused (401) unread: a handshake is a few dozen bytes."""
READ_TIMEOUT_SECONDS = 10.0
"""A request's body must arrive within this many seconds of its head, else 408."""
READINESS_TIMEOUT_SECONDS = 1.5

_ERROR_CODES = {
    400: "bad_payload",
    401: "bad_signature",
    408: "request_timeout",
    413: "payload_too_large",
    503: "queue_unavailable",
}

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else the reason it is not (e.g. "rules not loaded")."""


class InboxProtocol(Protocol):
    """What the receiver needs from the queue side (`worker.storage.inbox.Inbox`)."""

    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult: ...

    async def ping(self) -> None: ...


def _json(document: dict[str, str]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, reason: str) -> tuple[int, bytes]:
    return status, _json({"error": _ERROR_CODES[status], "message": reason})


_SIGNATURE_HEADER = SIGNATURE_HEADER.encode("ascii")
_TIMESTAMP_HEADER = TIMESTAMP_HEADER.encode("ascii")
_QUEUED_HEAD = b'{"status":"queued","delivery_id":"'
_DUPLICATE_HEAD = b'{"status":"duplicate","delivery_id":"'
_JSON_TYPE = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class Receiver:
    """The route handlers and what they share.

    The receiver itself is the ASGI app of `POST /webhooks/awalchat`: that route reads the
    ASGI messages and answers pre-encoded JSON without Starlette's Request and Response
    objects (it is the one hot path); the other routes are plain Starlette endpoints.
    """

    def __init__(
        self,
        *,
        verifier: SignatureVerifier,
        inbox: InboxProtocol,
        metrics: ReceiverMetrics,
        readiness: Readiness | None,
        details: Callable[[], Mapping[str, object]] | None,
        dry_run: bool,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self._verifier = verifier
        self._inbox = inbox
        self._metrics = metrics
        self._readiness = readiness
        self._details = details
        self._dry_run = dry_run
        self._reads = Deadlines[asyncio.Task[Any]](read_timeout, self._interrupt)
        self._interrupted: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        answer = await self._webhook(scope, receive)
        self._metrics.latency.observe(time.perf_counter() - started)
        if answer is None:  # the client went away before its body arrived
            return
        status, body = answer
        headers = [(b"content-length", str(len(body)).encode("ascii")), _JSON_TYPE]
        if status == 408:  # the rest of the body is not worth waiting for
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _webhook(self, scope: Scope, receive: Receive) -> tuple[int, bytes] | None:
        signature = timestamp = length = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE_HEADER:
                signature = value if signature is None else signature
            elif name == _TIMESTAMP_HEADER:
                timestamp = value if timestamp is None else timestamp
            elif name == b"content-length":
                length = value if length is None else length
        try:
            raw = await self._read_body_in_time(receive, length)
            if raw is None:
                return None
            message = self._verified(raw, _text(signature), _text(timestamp))
        except PayloadError as exc:
            self._metrics.count(None, _ERROR_CODES[exc.status])
            log.info("webhook refused", extra={"status": exc.status, "reason": exc.reason})
            return _error(exc.status, exc.reason)
        if isinstance(message, Handshake):
            self._metrics.count(None, "handshake")
            return 200, _json({"challenge": message.challenge})
        return await self._accept(raw, message)

    async def _read_body_in_time(self, receive: Receive, declared: bytes | None) -> bytes | None:
        """`_read_body`, or PayloadError(408) when it takes longer than the read timeout."""
        task = asyncio.current_task()
        assert task is not None
        self._reads.add(task)
        try:
            return await _read_body(receive, declared)
        except asyncio.CancelledError as exc:
            if task not in self._interrupted or task.uncancel() > 0:
                raise  # cancelled by someone else (shutting down)
            raise PayloadError(408, f"body not complete within {self._reads.seconds:g} s") from exc
        finally:
            self._reads.discard(task)
            self._interrupted.discard(task)

    def _interrupt(self, task: asyncio.Task[Any]) -> None:
        self._interrupted.add(task)
        task.cancel()

    def _verified(
        self, raw: bytes, signature: str | None, timestamp: str | None
    ) -> Handshake | Event:
        """The parsed body once its signature holds; a small handshake needs none."""
        try:
            self._verifier.verify(raw, signature, timestamp)
        except PayloadError as failure:
            if len(raw) <= MAX_HANDSHAKE_BYTES and b'"verification"' in raw:
                try:
                    handshake = parse_webhook(raw)
                except PayloadError:
                    handshake = None
                if isinstance(handshake, Handshake):
                    return handshake
            self._metrics.signature_failures.labels(failure.reason.replace(" ", "_")).inc()
            raise
        return parse_webhook(raw)

    async def _accept(self, raw: bytes, event: Event) -> tuple[int, bytes]:
        try:
            result = await self._inbox.accept(raw, event, dry_run=self._dry_run)
        except QueueUnavailableError as exc:
            self._metrics.count(event.name, "queue_unavailable")
            log.warning(
                "webhook not queued: %s",
                exc,
                extra={
                    "event": event.name,
                    "conversation_id": event.conversation_id,
                    "delivery_id": delivery_id_for(raw),
                },
            )
            return _error(503, "the queue cannot be reached; retry later")
        delivery_id = result.delivery_id
        context = {
            "event": event.name,
            "conversation_id": event.conversation_id,
            "delivery_id": delivery_id,
        }
        tail = delivery_id.encode("ascii") + b'"}'
        if result.duplicate:
            self._metrics.count(event.name, "duplicate")
            log.info("webhook already seen", extra=context)
            return 200, _DUPLICATE_HEAD + tail
        self._metrics.count(event.name, "queued")
        # DEBUG: one line per accepted delivery cost ~15% of the receiver's throughput, and
        # the worker logs its decision on each delivery id anyway.
        log.debug("webhook queued", extra=context)
        return 202, _QUEUED_HEAD + tail

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        reason = await self._not_ready_reason()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        extra = {} if self._details is None else dict(self._details())
        return JSONResponse({"status": "ready", **extra})

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


def _text(header: bytes | None) -> str | None:
    return None if header is None else header.decode("latin-1")


async def _read_body(receive: Receive, declared: bytes | None) -> bytes | None:
    """The body, refusing (413) as soon as it is known to pass MAX_BODY_BYTES; None when the
    client disconnects first."""
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise PayloadError(400, "malformed Content-Length")
        if len(declared) > 10 or int(declared) > MAX_BODY_BYTES:
            raise PayloadError(413, f"body over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadError(413, f"body over {MAX_BODY_BYTES} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
