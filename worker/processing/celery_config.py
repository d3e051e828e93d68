"""The Celery application: `create_celery(settings)` builds the app, its worker process's
objects and the drain task bound to them.

Settings that lose nothing when a worker dies mid-task:
- late acks and reject-on-worker-lost: a task is acknowledged only once it has finished;
- prefetch 1: a worker holds no more than it runs;
- a short visibility timeout (60 s) with a restore sweep every 5 s: work held by a worker
  killed with SIGKILL is back on the queue within about 65 s. No task waits longer than
  that: a drain runs for at most 20 s and one action, and longer waits are parked in
  Redis, never scheduled with a countdown or ETA;
- JSON only; the threads pool (the worker's objects are built once, in this process).
"""

from __future__ import annotations

from typing import Any, Final

from celery import Celery, signals

from worker.processing.tasks import register_drain
from worker.processing.worker_process import WorkerProcess
from worker.settings import Settings
from worker.storage.keys import CELERY_QUEUE

VISIBILITY_TIMEOUT: Final = 60


def create_celery(settings: Settings, process: WorkerProcess | None = None) -> Celery:
    """A Celery app on `settings.redis_url` whose drain task runs on `process` (built from
    `settings` when not given: it connects to Redis and loads the rules, so a bad rule file
    or a missing credential stops here, named)."""
    process = process if process is not None else WorkerProcess(settings)
    target = settings.redis_target()
    app = Celery("ticket_worker", broker=target.url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=CELERY_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "health_check_interval": 10,
            **target.broker_options(),
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
    register_drain(app, process.processor, process.redis.ping)
    _connect_lifecycle(app, process)
    return app


def _connect_lifecycle(app: Celery, process: WorkerProcess) -> None:
    """The worker's start and stop signals, for this app's worker only."""

    def ours(sender: Any) -> bool:
        return getattr(sender, "app", None) is app

    def start(sender: Any = None, **_: object) -> None:
        if ours(sender):
            process.start_background()

    def hand_back(sender: Any = None, **_: object) -> None:
        # Warm shutdown begins: running drains park what they have not started and return.
        if ours(sender):
            process.stop_background()

    def close(sender: Any = None, **_: object) -> None:
        # The pool has stopped: no task uses the HTTP clients or Redis any more.
        if ours(sender):
            process.close()

    uid = f"ticket-worker-{id(app)}"
    signals.worker_ready.connect(start, weak=False, dispatch_uid=f"{uid}-ready")
    signals.worker_shutting_down.connect(hand_back, weak=False, dispatch_uid=f"{uid}-stopping")
    signals.worker_shutdown.connect(close, weak=False, dispatch_uid=f"{uid}-shutdown")
