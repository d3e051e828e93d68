"""The `ticket-worker` command (interface.md, "Command line").

Every command reads Settings once and passes them down. Errors from the error tree end the
command with a one-line message (a rule file's problems one per line) and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from worker import admin, rulestools
from worker.errors import RulesError, TicketWorkerError
from worker.settings import Settings

SERVICES = frozenset({"up", "serve", "work"})
Handler = Callable[[argparse.Namespace, Settings], int]


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runtime import preflight
    from worker.supervisor import effective_settings, run_up

    effective = effective_settings(settings)

    def check(redis_url: str) -> None:
        # Once Redis runs (embedded or not): broken rule files refuse to start only when
        # the deployment has no published version to run instead.
        preflight(effective.model_copy(update={"redis_url": redis_url}))

    concurrency = args.concurrency or settings.worker_concurrency
    return run_up(
        settings, host=args.host, port=args.port, concurrency=concurrency, preflight=check
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from worker.delivery.periodic import Periodic
    from worker.logs import configure_logging
    from worker.runtime import RULES_INTERVAL, preflight, rule_source, sync_redis
    from worker.serving import serve
    from worker.web import build_receiver

    configure_logging()
    # Rule files refused with no published version to run instead, or a missing credential,
    # stop here, named.
    preflight(settings)
    # Short bounds: a hung Redis must not hold up the receiver's start (nor its /readyz).
    rules = rule_source(settings, sync_redis(settings.require_redis_url(), timeout=0.5, retries=0))
    Periodic("rules", RULES_INTERVAL, rules.refresh).start()

    def details() -> dict[str, object]:
        # A refused change is reported, not fatal: the last good version keeps serving.
        return {"rules": {"version": rules.version, "refused_change": rules.error}}

    app = build_receiver(settings, details=details)
    serve(app, host=args.host, port=args.port, read_timeout=settings.receiver_read_timeout_seconds)
    return 0


def _work(args: argparse.Namespace, settings: Settings) -> int:
    from worker.logs import configure_logging

    configure_logging()
    if args.concurrency:
        settings = settings.model_copy(update={"worker_concurrency": args.concurrency})
    from worker import runtime

    runtime.preflight(settings)
    from worker.celery_app import create_celery

    app = create_celery(settings)
    runtime.current()  # build now: refused rule files or a missing credential stop here
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="ticket-worker",
        description="Signed AwalChat webhooks in, YAML rules decide, helpdesk tickets out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    up = add("up", _up, "run receiver, worker and (embedded) Redis together")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--concurrency", type=int, help="worker threads (default WORKER_CONCURRENCY)")

    serve = add("serve", _serve, "run the webhook receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    work = add("work", _work, "run a Celery worker")
    work.add_argument("--concurrency", type=int, help="threads (default WORKER_CONCURRENCY)")

    rulestools.add_commands(add)
    admin.add_commands(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command not in SERVICES:
        # `ticket-worker decisions | head` ends quietly. Never in a server: a client that
        # hangs up would kill it.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        settings = Settings()
        code = int(args.handler(args, settings))
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            print(f"ticket-worker: error: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 1
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except TicketWorkerError as exc:
        print(f"ticket-worker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def print_json(data: object) -> None:
    """Pretty JSON on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def existing_file(value: str) -> Path:
    """argparse type: a path that must exist."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or folder")
    return path


if __name__ == "__main__":
    sys.exit(main())
