"""The baselines of `bench.e2e`: a plain task-per-webhook Celery design, and a no-op task.

    celery -A bench.e2e_plain worker --pool threads --concurrency 4

`handle(raw)`: one task per webhook, as a tutorial builds it: parse the body, load the
conversation's state, decide with the same engine and ruleset (`RULES_PATH`), make the
calls with the same helpdesk client and executor as ours, save the state. No lock, no
decision log, no per-conversation order: what it leaves out is what ours guarantees.
`noop()`: Celery's own cost per task with the same settings.

Worker settings as ours: late acks, prefetch 1, JSON, threads pool. Reads the service's
settings (`REDIS_URL` is the broker and the state store, `AWALCHAT_*` the client).
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery import Celery

from bench.baselines import CELERY_SETTINGS, plain_awalchat_client
from worker.engine import Ruleset
from worker.engine.envelope import parse_webhook
from worker.engine.evaluate import evaluate
from worker.engine.loader import load_ruleset
from worker.engine.model import ConversationState, Event
from worker.processing.actions import ActionExecutor
from worker.settings import Settings

HANDLE = "bench.e2e_plain.handle"
NOOP = "bench.e2e_plain.noop"
STATE_TTL = 30 * 86400


def make_app(broker: str) -> Celery:
    """The baselines' Celery app on `broker`, configured as ours."""
    app = Celery("e2e_plain", broker=broker)
    app.conf.update(
        **CELERY_SETTINGS,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
    )
    app.task(name=HANDLE, ignore_result=True)(handle)
    app.task(name=NOOP, ignore_result=True)(noop)
    return app


@functools.cache
def settings() -> Settings:
    return Settings()


@functools.cache
def store() -> redis.Redis:
    return redis.Redis.from_url(settings().redis_url or "redis://127.0.0.1:6379/0")


@functools.cache
def ruleset() -> Ruleset:
    return load_ruleset(Path(settings().rules_path))


@functools.cache
def executor() -> ActionExecutor:
    s = settings()
    return ActionExecutor(
        awalchat=plain_awalchat_client(s),
        helpwave=None,
        default_phone_number_id=s.awalchat_phone_number_id,
    )


def handle(raw: str) -> None:
    """Decide one webhook and carry out its actions (no order, no exactly-once)."""
    event = parse_webhook(raw.encode())
    assert isinstance(event, Event)
    key = f"plain:state:{event.conversation_id}"
    stored = store().get(key)
    state = ConversationState.from_json(json.loads(stored)) if stored else ConversationState()
    decision = evaluate(ruleset(), event, state, now=datetime.fromtimestamp(time.time(), UTC))
    for action in decision.actions:
        if action.skip_reason is None:
            state = executor().execute(action, event, state).state
    store().set(key, json.dumps(state.to_json()), ex=STATE_TTL)


def noop() -> None:
    """Nothing: Celery's own cost per task."""


def __getattr__(name: str) -> Celery:
    # `celery -A bench.e2e_plain`: the app, built when Celery asks for it
    if name != "app":
        raise AttributeError(name)
    return make_app(settings().redis_url or "redis://127.0.0.1:6379/0")
