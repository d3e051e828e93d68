"""The webhook receiver: verify, parse, enqueue, answer (interface.md, "HTTP").

`create_app(settings, inbox)` builds the Starlette app around an injected inbox (tests pass a
fake or an `Inbox` over fakeredis); `build_receiver(settings)` wires the real Redis client;
`receiver_from_env()` is the uvicorn factory:

    uvicorn --factory worker.receiver.app:receiver_from_env

The receiver never answers 2xx for an event it has not queued and never queues an event whose
signature failed. Refusals are JSON `{"error": code, "message": reason}`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from worker.errors import ConfigError
from worker.logs import configure_logging
from worker.metrics import ReceiverMetrics
from worker.receiver.decisions_api import decisions_routes
from worker.receiver.handlers import READ_TIMEOUT_SECONDS, InboxProtocol, Readiness, Receiver
from worker.receiver.signature import SignatureVerifier
from worker.settings import Settings
from worker.storage.clients import async_redis
from worker.storage.inbox import Inbox


def create_app(
    settings: Settings,
    inbox: InboxProtocol,
    *,
    readiness: Readiness | None = None,
    metrics: ReceiverMetrics | None = None,
    now: Callable[[], float] = time.time,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    details: Callable[[], Mapping[str, object]] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    read_timeout: float = READ_TIMEOUT_SECONDS,
) -> Starlette:
    """The receiver app. Raise ConfigError when no webhook secret is configured.

    `readiness` adds a check to `/readyz` beyond Redis answering, `details` adds facts to its
    answer (the rules version); `metrics` defaults to a fresh registry per app; `now` is the
    signature clock (Unix seconds); `extra_routes` are mounted as given (GET /decisions);
    a webhook body not complete within `read_timeout` seconds of its head gets 408.
    """
    secrets = [secret.get_secret_value() for secret in settings.awalchat_webhook_secrets]
    if not secrets:
        raise ConfigError("AWALCHAT_WEBHOOK_SECRETS is not set: the receiver verifies every event")
    receiver = Receiver(
        verifier=SignatureVerifier(secrets, now=now),
        inbox=inbox,
        metrics=metrics if metrics is not None else ReceiverMetrics(),
        readiness=readiness,
        details=details,
        dry_run=settings.dry_run,
        read_timeout=read_timeout,
    )
    routes: list[BaseRoute] = [
        Route("/webhooks/awalchat", receiver, methods=["POST"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/readyz", receiver.readyz, methods=["GET"]),
        Route("/metrics", receiver.metrics_text, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def build_receiver(
    settings: Settings,
    *,
    readiness: Readiness | None = None,
    details: Callable[[], Mapping[str, object]] | None = None,
) -> Starlette:
    """The production receiver: a bounded Redis client from `REDIS_URL` and an Inbox over it.

    Raise ConfigError naming `AWALCHAT_WEBHOOK_SECRETS` or `REDIS_URL` when unset. The client
    is closed when the app shuts down.
    """
    if not settings.awalchat_webhook_secrets:
        raise ConfigError("AWALCHAT_WEBHOOK_SECRETS is not set: the receiver verifies every event")
    target = settings.redis_target()
    client = async_redis(target)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    return create_app(
        settings,
        # With Sentinel, a 202 waits for a replica: a failover cannot lose what was accepted.
        Inbox(client, retention=settings.state_retention, replicas=1 if target.is_sentinel else 0),
        readiness=readiness,
        details=details,
        lifespan=lifespan,
        extra_routes=decisions_routes(settings, client),
        read_timeout=settings.receiver_read_timeout_seconds,
    )


def receiver_from_env() -> Starlette:
    """uvicorn factory: settings from the environment, JSON logs, the production receiver."""
    app = build_receiver(Settings())
    configure_logging()
    return app
