"""`GET /decisions`: the recent decision records, behind `Authorization: Bearer $ADMIN_TOKEN`.

Without ADMIN_TOKEN the route does not exist (404). Query parameters: `conversation` (one
conversation's records) and `limit` (1 to 500, default 50).
"""

from __future__ import annotations

import hmac

import redis.asyncio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker.settings import Settings
from worker.storage.decision_log import recent_decisions

MAX_LIMIT = 500


def decisions_routes(settings: Settings, client: redis.asyncio.Redis) -> list[BaseRoute]:
    """The admin routes for `settings` (none when ADMIN_TOKEN is unset)."""
    if settings.admin_token is None:
        return []
    expected = f"Bearer {settings.admin_token.get_secret_value()}".encode()

    async def decisions(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):
            return JSONResponse(
                {"error": "unauthorized", "message": "Authorization: Bearer <ADMIN_TOKEN> needed"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        raw_limit = request.query_params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return JSONResponse(
                {"error": "bad_request", "message": f"limit must be 1 to {MAX_LIMIT}"},
                status_code=400,
            )
        conversation = request.query_params.get("conversation") or None
        try:
            records = await recent_decisions(
                client, conversation=conversation, limit=int(raw_limit)
            )
        except redis.RedisError:
            return JSONResponse(
                {"error": "unavailable", "message": "redis unavailable"}, status_code=503
            )
        return JSONResponse({"decisions": records})

    return [Route("/decisions", decisions, methods=["GET"])]
