"""The overview page: mode, rules in force, queues, rate budgets and live workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from worker.console.app import Console, page
from worker.console.session import Session
from worker.storage import keys


@dataclass(frozen=True)
class RateBudget:
    """One destination's shared budget (`tw:rl:{destination}`, worker.delivery.ratelimit)."""

    destination: str
    remaining: str
    limit: str
    window_end: float | None
    paused_until: float | None
    recent_429s: int
    last_429: float | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _scan(client: redis.Redis, prefix: str, limit: int = 200) -> list[str]:
    """Keys under `prefix` (a handful: destinations, live workers), at most `limit`."""
    found = [_text(k) for k in client.scan_iter(match=prefix + "*", count=200)]
    return sorted(found)[:limit]


def rate_budgets(client: redis.Redis) -> list[RateBudget]:
    """Every destination's budget as the workers share it."""
    budgets = []
    for key in _scan(client, keys.RATE_PREFIX):
        f = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        paused = _number(f.get("paused_until"))
        budgets.append(
            RateBudget(
                destination=key.removeprefix(keys.RATE_PREFIX),
                remaining=f.get("left", "unknown"),
                limit=f.get("limit", "unknown"),
                window_end=_number(f.get("ends")) or _number(f.get("reset")),
                paused_until=paused if paused else None,
                recent_429s=int(f.get("n429", "0")),
                last_429=_number(f.get("last429")),
            )
        )
    return budgets


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Workers whose heartbeat key (30 s expiry) is there: host, pid, last beat."""
    names = _scan(client, keys.WORKER_PREFIX)
    beats = client.mget(names) if names else []
    workers = []
    for name, beat in zip(names, beats, strict=True):
        host, _, pid = name.removeprefix(keys.WORKER_PREFIX).rpartition(":")
        workers.append({"host": host, "pid": pid, "beat": _number(_text(beat) if beat else "")})
    return workers


def counts(client: redis.Redis) -> dict[str, int]:
    """Queue depth, parked conversations, pending waits, dead letters, decisions logged."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.CELERY_QUEUE)
    pipe.zcard(keys.PARKED)
    pipe.zcard(keys.TIMERS)
    pipe.hlen(keys.DLQ)
    pipe.zcard(keys.PARKED_LANES)
    queue, parked, timers, letters, lanes = pipe.execute()
    # parked work: conversations (a spent run budget) and lanes (rate budget, retries)
    parked += lanes
    return {"queue": queue, "parked": parked, "timers": timers, "dead_letters": letters}


def routes(console: Console) -> list[BaseRoute]:
    def overview(request: Request, session: Session) -> Response:
        client = console.redis
        return console.render(
            request,
            "overview.html",
            session,
            version=console.rules.version,
            refused=console.rules.error,
            counts=counts(client),
            budgets=rate_budgets(client),
            workers=live_workers(client),
        )

    return [Route("/", page(console, overview), methods=["GET"])]
