"""The naive baseline of `bench.delivery`: Celery's own per-worker `rate_limit`.

    celery -A bench.delivery_naive worker --pool threads --concurrency 1

One task, `open_ticket(conversation)`, limited by Celery to `NAIVE_RATE_LIMIT` (default
4/s: 20 per 5 s, the provider's whole budget). Celery enforces `rate_limit` in each worker
process separately, so N workers send up to N times the budget; a 429 is retried with
`self.retry(countdown=...)` for the provider's `Retry-After`. Reads the same settings as
the service (`REDIS_URL` is the broker, `AWALCHAT_*` the client).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from celery import Celery, Task

from bench.baselines import CELERY_SETTINGS, plain_awalchat_client
from worker.errors import HelpdeskUnavailableError, RateLimitedError
from worker.helpdesks.awalchat import AwalChatClient
from worker.settings import Settings

# Per worker process (Celery cannot share it): bench.delivery runs it at the whole budget
# and at the budget divided by the workers, as Celery's documentation advises.
RATE_LIMIT = os.environ.get("NAIVE_RATE_LIMIT", "4/s")
TASK = "bench.delivery_naive.open_ticket"

settings = Settings()
app = Celery("delivery_naive", broker=settings.redis_url or "redis://127.0.0.1:6379/0")
app.conf.update(CELERY_SETTINGS)


@functools.cache
def client() -> AwalChatClient:
    """One AwalChat client per worker process (plain httpx, no shared budget)."""
    return plain_awalchat_client(settings)


@app.task(name=TASK, bind=True, rate_limit=RATE_LIMIT, max_retries=None, ignore_result=True)
def open_ticket(self: Task[Any, Any], conversation: str) -> None:
    """Open the conversation's ticket; a 409 (already open) counts as done."""
    try:
        client().open_ticket(conversation, settings.awalchat_phone_number_id or "1")
    except RateLimitedError as exc:
        raise self.retry(countdown=exc.retry_after or 1.0) from exc
    except HelpdeskUnavailableError as exc:
        raise self.retry(countdown=1.0) from exc
