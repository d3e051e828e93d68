"""The service commands: `up`, `serve` and `work` (interface.md, "Command line").

Each checks what it will run before it starts (`worker.startup.preflight`): refused rule
files with no published version to run instead, or a missing credential, stop it with a
one-line message naming the problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final

from worker.settings import Settings
from worker.startup import preflight, rule_source
from worker.storage.clients import sync_redis

SERVICES: Final = frozenset({"up", "serve", "work", "console"})
AddCommand = Callable[..., argparse.ArgumentParser]


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.supervisor import effective_settings, run_up

    effective = effective_settings(settings)

    def check(redis_url: str) -> None:
        # Once Redis runs (embedded or not): broken rule files refuse to start only when
        # the deployment has no published version to run instead.
        preflight(effective.model_copy(update={"redis_url": redis_url}))

    concurrency = args.concurrency or settings.worker_concurrency
    return run_up(
        settings,
        host=args.host,
        port=args.port,
        concurrency=concurrency,
        console_port=args.console_port,
        preflight=check,
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from worker.delivery.periodic import Periodic
    from worker.live_rules import REFRESH_INTERVAL
    from worker.logs import configure_logging
    from worker.receiver.app import build_receiver
    from worker.receiver.serving import serve

    configure_logging()
    # Rule files refused with no published version to run instead, or a missing credential,
    # stop here, named.
    preflight(settings)
    # Short bounds: a hung Redis must not hold up the receiver's start (nor its /readyz).
    rules = rule_source(settings, sync_redis(settings.redis_target(), timeout=0.5, retries=0))
    Periodic("rules", REFRESH_INTERVAL, rules.refresh).start()

    def details() -> dict[str, object]:
        # A refused change is reported, not fatal: the last good version keeps serving.
        return {"rules": {"version": rules.version, "refused_change": rules.error}}

    app = build_receiver(settings, details=details)
    serve(app, host=args.host, port=args.port, read_timeout=settings.receiver_read_timeout_seconds)
    return 0


def _work(args: argparse.Namespace, settings: Settings) -> int:
    from worker.logs import configure_logging

    configure_logging(background=True)
    if args.concurrency:
        settings = settings.model_copy(update={"worker_concurrency": args.concurrency})
    preflight(settings)
    from worker.processing.celery_config import create_celery

    app = create_celery(settings)  # refused rule files or a missing credential stop here
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            f"--concurrency={settings.worker_concurrency}",
            "--pool=threads",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
    )
    return 0


def add_commands(add: AddCommand) -> None:
    """Register up, serve and work on the main parser."""
    up = add("up", _up, "run receiver, worker and (embedded) Redis together")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--concurrency", type=int, help="worker threads (default WORKER_CONCURRENCY)")
    up.add_argument("--console-port", type=int, default=8001, help="the console's port")

    serve = add("serve", _serve, "run the webhook receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    work = add("work", _work, "run a Celery worker")
    work.add_argument("--concurrency", type=int, help="threads (default WORKER_CONCURRENCY)")
