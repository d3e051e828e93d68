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

from worker.errors import RulesError, TicketWorkerError
from worker.ops import (
    admin_commands,
    console_command,
    diff_command,
    rule_commands,
    service_commands,
    shadow_report,
)
from worker.ops.service_commands import SERVICES
from worker.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


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

    service_commands.add_commands(add)
    rule_commands.add_commands(add)
    diff_command.add_commands(add)
    admin_commands.add_commands(add)
    shadow_report.add_command(add)
    console_command.add_commands(add)
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
