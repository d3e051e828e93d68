"""The Celery application: `create_celery(settings)`, and `app` for `celery -A worker.celery_app`.

Settings that lose nothing when a worker dies mid-task:
- late acks and reject-on-worker-lost: a task is acknowledged only once it has finished;
- prefetch 1: a worker holds no more than it runs;
- a short visibility timeout (60 s) with a restore sweep every 5 s: work held by a worker
  killed with SIGKILL is back on the queue within about 65 s. No task waits longer than
  that: a drain runs for at most 20 s, and longer waits are parked in Redis, never
  scheduled with a countdown or ETA;
- JSON only.
"""

from __future__ import annotations

from typing import Final

from celery import Celery, signals

from worker import runtime
from worker.settings import Settings

VISIBILITY_TIMEOUT: Final = 60
QUEUE: Final = "celery"


def create_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.redis_url` (which must be set to run a worker)."""
    url = settings.redis_url or "redis://127.0.0.1:6379/0"
    app = Celery("ticket_worker", broker=url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "health_check_interval": 10,
        },
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        broker_pool_limit=settings.worker_concurrency + 2,
    )
    runtime.configure(settings)
    return app


@signals.worker_ready.connect
def _start_background(**_: object) -> None:
    runtime.current().start_background()


@signals.worker_shutting_down.connect
def _hand_back(**_: object) -> None:
    # Warm shutdown begins: running drains park what they have not started and return.
    runtime.current().stop_background()


@signals.worker_shutdown.connect
def _close(**_: object) -> None:
    # The pool has stopped: no task uses the HTTP clients or Redis any more.
    runtime.current().close()


app = create_celery(Settings())
