"""The Celery baseline of `bench.timers`: one task per timed action, scheduled with
`apply_async(countdown=...)` / `eta=...`, as Celery's documentation shows.

    celery -A bench.timers_celery worker --pool threads --concurrency 4

The task makes the same AwalChat `close_ticket` call as our worker, with the same client.
Worker settings as ours: late acks, prefetch 1, JSON. Reads the service's settings
(`REDIS_URL` is the broker, `AWALCHAT_*` the client).
"""

from __future__ import annotations

import functools

from celery import Celery

from bench.baselines import CELERY_SETTINGS, plain_awalchat_client
from worker.helpdesks.awalchat import AwalChatClient
from worker.settings import Settings

TASK = "bench.timers_celery.close"


def make_app(broker: str) -> Celery:
    """The baseline's Celery app on `broker`."""
    app = Celery("timers_celery", broker=broker)
    app.conf.update(
        **CELERY_SETTINGS,
        broker_transport_options={"visibility_timeout": 7200},
    )
    app.task(name=TASK, ignore_result=True)(close)
    return app


@functools.cache
def settings() -> Settings:
    return Settings()


@functools.cache
def client() -> AwalChatClient:
    """One AwalChat client per worker process, as ours."""
    return plain_awalchat_client(settings())


def close(conversation: str) -> None:
    """Close the conversation's ticket (409: already closed, done)."""
    client().close_ticket(conversation, settings().awalchat_phone_number_id or "1")


def __getattr__(name: str) -> Celery:
    # `celery -A bench.timers_celery`: the app, built when Celery asks for it
    if name != "app":
        raise AttributeError(name)
    app = make_app(settings().redis_url or "redis://127.0.0.1:6379/0")
    globals()["app"] = app
    return app
