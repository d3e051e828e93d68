"""The benchmark's baseline: a bare Starlette app that checks the HMAC, parses the body with
our strict parser (`worker.engine.envelope.parse_webhook`: the same checks, the same cost,
so the ratio compares the designs, not the parsers) and LPUSHes the body.

uvicorn --factory bench.receiver_bare:bare_from_env   (BENCH_REDIS_URL, BENCH_SECRET)
"""

from __future__ import annotations

import hashlib
import hmac
import os

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.engine.envelope import parse_webhook
from worker.errors import PayloadError


def bare_from_env() -> Starlette:
    """The least a receiver can do: verify, parse strictly, push, answer."""
    client = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    key = os.environ["BENCH_SECRET"].encode("utf-8")

    async def webhook(request: Request) -> Response:
        body = await request.body()
        given = request.headers.get("x-awal-signature-256", "")
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode("latin-1"), expected.encode("ascii")):
            return JSONResponse({"error": "bad_signature"}, status_code=401)
        try:
            parse_webhook(body)
        except PayloadError as exc:
            return JSONResponse({"error": "bad_payload"}, status_code=exc.status)
        await client.lpush("bare", body)
        return JSONResponse({"status": "queued"}, status_code=202)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhooks/awalchat", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
